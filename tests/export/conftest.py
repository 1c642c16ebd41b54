"""Exports of tiny generators, shared by the export tests."""

import keras
import pytest
import tensorflow as tf

from sagan_tf import serving
from tests.tiny import CLASS_NAMES, random_generator, tiny_model


@pytest.fixture(scope="session", params=["conditional", "unconditional"])
def exported(request, tmp_path_factory):
    """(generator, config, version directory, loaded SavedModel) for a conditional and an unconditional model."""
    config = tiny_model(32, num_classes=4 if request.param == "conditional" else 0)
    keras.utils.set_random_seed(1)
    generator = random_generator(config)
    base = tmp_path_factory.mktemp(f"export_{request.param}")
    class_names = CLASS_NAMES if config.conditional else None
    path = serving.export_generator(generator, config, str(base), 1, info={"note": "test"}, class_names=class_names)
    return generator, config, path, tf.saved_model.load(path)
