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


#: The cap of the `capped` exports: small, so that a request at the cap and one over it are fast.
CAP = 4


@pytest.fixture(scope="session", params=["conditional", "unconditional"])
def capped(request, tmp_path_factory):
    """(config, version directory, loaded SavedModel) of tiny generators exported with max_batch_size=CAP."""
    config = tiny_model(32, num_classes=4 if request.param == "conditional" else 0)
    keras.utils.set_random_seed(2)
    generator = random_generator(config)
    base = tmp_path_factory.mktemp(f"capped_{request.param}")
    class_names = CLASS_NAMES if config.conditional else None
    path = serving.export_generator(generator, config, str(base), 1, max_batch_size=CAP, class_names=class_names)
    return config, path, tf.saved_model.load(path)


@pytest.fixture(scope="session")
def old_export(tmp_path_factory):
    """(config, version directory, loaded SavedModel) of a conditional export as written before the cap existed: no
    `limits` signature, and no cap on `serving_default`, `generate` and `generate_by_name`."""
    config = tiny_model(32, num_classes=4)
    keras.utils.set_random_seed(4)
    generator = random_generator(config)
    signatures = serving.GeneratorServingModule.signatures
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serving.GeneratorServingModule, "_within_cap", lambda self, count, *tensors: list(tensors))
        patch.setattr(serving.GeneratorServingModule, "signatures",
                      lambda self: {k: v for k, v in signatures(self).items() if k != serving.LIMITS_SIGNATURE})
        path = serving.export_generator(generator, config, str(tmp_path_factory.mktemp("old")), 1,
                                        class_names=CLASS_NAMES)
    return config, path, tf.saved_model.load(path)
