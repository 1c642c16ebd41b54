"""The JAX side of tests/models/test_jax_step.py, run as `KERAS_BACKEND=jax python jax_step_checks.py WORKDIR`.

A pytest process has one Keras backend (TensorFlow), so the JAX checks run here, once per test module, in a process
where TensorFlow cannot be imported, and write WORKDIR/results.json for the tests to read:

  parity: the JAX train steps of `backend_parity.train` on the config and inputs the test wrote (its TensorFlow
    steps ran in the test process), state in WORKDIR/jax.npz.
  reproducible: two models built and trained with `fit` from the same seeds under mixed_bfloat16 end with the same
    state, bit for bit; their logs are finite.
  errors: the message of each refused setting, or None where nothing was raised; latents_error: what
    `latents.truncated_latents` (TensorFlow's random ops) raises without TensorFlow.
  imports: the backend-neutral modules imported, with TensorFlow unimportable.
"""

import json
import os
import sys

sys.modules["tensorflow"] = None  # as on a machine without TensorFlow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import backend_parity  # noqa: E402
from sagan_tf import augment, latents, layers, losses, models, regularizers  # noqa: E402,F401
from sagan_tf.config import ExperimentConfig  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402


def error_of(make):
    try:
        make()
    except ValueError as error:
        return str(error)
    return None


def seeded_run(config, images, labels):
    """The state after two `fit` steps of a model built from seed 1 (weights and noise)."""
    keras.utils.set_random_seed(1)
    model = build_sagan(config, seed=1)
    history = model.fit(images, labels, batch_size=config.training.batch_size, epochs=1, verbose=0)
    finite = all(np.isfinite(values).all() for values in history.history.values())
    return [np.asarray(v.numpy()) for v in model.variables], finite


def main(workdir):
    assert keras.backend.backend() == "jax", keras.backend.backend()
    # The second seeded model compiles the same step: read it back from the cache instead of compiling it again.
    jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    with open(os.path.join(workdir, "config.json")) as f:
        values = json.load(f)
    config = ExperimentConfig.from_dict(values["config"])
    results = {"imports": sorted(name for name in sys.modules if name.startswith("sagan_tf"))}
    results["parity_seconds"] = backend_parity.train(config, "jax", workdir, values["steps"], values["seed"])

    plain = config.replace(augment="none", lecam_weight=0.0, orthogonal_reg=0.0, fake_labels="uniform")
    rng = np.random.default_rng(0)
    batch = plain.training.batch_size
    images = rng.uniform(-1, 1, (2 * batch, plain.model.image_size, plain.model.image_size, 3)).astype("float32")
    labels = rng.integers(0, plain.model.num_classes, (2 * batch,)).astype("int32")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    first, first_finite = seeded_run(plain, images, labels)
    second, second_finite = seeded_run(plain, images, labels)
    keras.mixed_precision.set_global_policy("float32")
    results["reproducible"] = {
        "identical": len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second)),
        "finite": first_finite and second_finite, "variables": len(first)}

    def uneven_batch():
        model = build_sagan(plain.replace(d_steps=2), seed=0)
        model.train_on_batch(images[:3], labels[:3])

    def mixed_float16():
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            build_sagan(plain, seed=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")

    results["errors"] = {
        "grad_accumulation": error_of(lambda: build_sagan(plain.replace(grad_accumulation=2), seed=0)),
        "uneven_batch": error_of(uneven_batch),
        "mixed_float16": error_of(mixed_float16),
        "synchronized_batch_norm": error_of(lambda: layers.BatchNorm(synchronized=True)),
    }
    try:
        latents.truncated_latents(2, 8, seed=0, truncation=1.0)
        results["latents_error"] = None
    except ImportError as error:
        results["latents_error"] = str(error)
    results["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
