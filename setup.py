"""Installs sagan_tf: the library (`sagan_tf`) and its entry points (`training`, `export`)."""

import pathlib

import setuptools

ROOT = pathlib.Path(__file__).parent

setuptools.setup(
    name="sagan_tf",
    version="0.1.0",
    description="Self-Attention GAN (Zhang et al. 2019) in Keras 3 / TensorFlow: train, evaluate, serve.",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.14",
    packages=setuptools.find_packages(include=["sagan_tf", "sagan_tf.*", "training", "training.*",
                                               "export", "export.*"]),
    include_package_data=True,
    # The classifier for FID/IS on the synthetic dataset (sagan_tf.evaluation.classifiers.load_classifier("synthetic"))
    # and the class map of TF-GAN's Inception logits (sagan_tf.evaluation.metrics.per_class).
    package_data={"sagan_tf.evaluation.classifiers": ["assets/*.keras", "assets/*.txt"]},
    install_requires=[
        # The standard wheel runs on CPU and, with the CUDA libraries present, on GPU.
        "tensorflow>=2.16,<2.22",
        # 3.8: new variables default to aggregation "none" (3.7: "mean"), which the EMA generator's weights,
        # assigned in replica context, rely on (tests/models/test_aggregation.py).
        "keras>=3.8,<4",
        "tensorflow-datasets>=4.9,<5",
        # Viewing the training events (TensorFlow 2.21 no longer installs it).
        "tensorboard>=2.16,<2.22",
        # Loads TF-GAN's Inception module from a handle or a local copy (sagan_tf.evaluation.classifiers).
        "tensorflow-hub>=0.16,<0.17",
        # The last release; only its eval subpackage is used, through sagan_tf.evaluation.metrics (BUILD.md fact 1).
        "tensorflow-gan==2.1.0",
        "tensorflow-probability>=0.24,<0.26",
        # tensorflow-probability imports tf_keras; sagan_tf itself never does.
        "tf-keras>=2.16,<2.22",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "absl-py>=2.0,<3",
        "pillow>=10,<14",
        # The truncation sweep's plot (sagan_tf.sampling.plots, `training.evaluate --truncation`) and
        # benchmarks/quality.py.
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        # gRPC requests to TensorFlow Serving from export/client.py (REST needs nothing more).
        "serving": ["tensorflow-serving-api>=2.16,<2.22"],
        "test": [
            "tensorflow-serving-api>=2.16,<2.22",
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",
            # Executes examples/colab_quickstart.ipynb in the test suite.
            "nbclient>=0.10,<0.12",
            "nbformat>=5.10,<6",
            "ipykernel>=6.29,<8",
            # The JAX train step's tests (tests/models/test_jax_step.py run it in a KERAS_BACKEND=jax subprocess);
            # the range holds JAX 0.10 (the newest CPU wheel on some mirrors) and 0.11.
            "jax[cpu]>=0.4.30,<0.13",
        ],
    },
)
