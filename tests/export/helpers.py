"""Tiny configs and generators for the export tests, and a clean environment for child processes."""

import dataclasses
import os
import pathlib
import sys

import numpy as np

from sagan_tf.config import get_preset
from sagan_tf.restore import build_generator

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tiny_config(num_classes=4, **overrides):
    """synthetic32 with a few channels: 32x32 images, attention at 16x16, latent size 8."""
    return dataclasses.replace(get_preset("synthetic32"), num_classes=num_classes, latent_dim=8,
                               g_channels=(16, 16, 8, 8), d_channels=(8, 16, 16, 16), batch_size=4, **overrides)


def random_generator(config, seed=0):
    """A generator whose every variable is random: batch-norm statistics, spectral-norm vectors, class-wise
    gains and biases and the attention gamma (zero at initialisation, which would leave attention out) too."""
    generator = build_generator(config)
    rng = np.random.default_rng(seed)
    for variable in generator.trainable_variables:
        if not variable.path.endswith("kernel"):
            variable.assign(variable.numpy() + rng.normal(0.0, 0.2, variable.shape).astype("float32"))
    for variable in generator.non_trainable_variables:
        if "variance" in variable.path:
            values = rng.uniform(0.5, 1.5, variable.shape)
        elif variable.path.endswith("/u"):  # a unit vector, as the power iteration keeps it
            values = rng.normal(size=variable.shape)
            values /= np.linalg.norm(values)
        else:
            values = rng.normal(0.0, 0.3, variable.shape)
        variable.assign(values.astype("float32"))
    return generator


def subprocess_environment():
    """Environment for a child Python that can import the repository but has not imported anything yet."""
    return dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


PYTHON = sys.executable
