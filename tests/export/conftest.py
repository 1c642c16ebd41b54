"""Exports of tiny generators, shared by the export tests."""

import keras
import pytest
import tensorflow as tf

from sagan_tf.serving import class_names, signatures as serving
from tests.tiny import CLASS_NAMES, random_generator, tiny_model


def export_tiny(kind, seed, directory, **export_kwargs):
    """(generator, config, version directory, loaded SavedModel) of a random tiny 32x32 generator, `kind`
    "conditional" (4 classes, named) or "unconditional", exported to `directory` as version 1."""
    config = tiny_model(32, num_classes=4 if kind == "conditional" else 0)
    keras.utils.set_random_seed(seed)
    generator = random_generator(config)
    class_names = CLASS_NAMES if config.conditional else None
    path = serving.export_generator(generator, config, str(directory), 1, class_names=class_names, **export_kwargs)
    return generator, config, path, tf.saved_model.load(path)


@pytest.fixture(scope="session", params=["conditional", "unconditional"])
def exported(request, tmp_path_factory):
    """(generator, config, version directory, loaded SavedModel) for a conditional and an unconditional model."""
    return export_tiny(request.param, 1, tmp_path_factory.mktemp(f"export_{request.param}"), info={"note": "test"})


#: The cap of the `capped` exports: small, so that a request at the cap and one over it are fast.
CAP = 4


@pytest.fixture(scope="session", params=["conditional", "unconditional"])
def capped(request, tmp_path_factory):
    """(config, version directory, loaded SavedModel) of tiny generators exported with max_batch_size=CAP."""
    return export_tiny(request.param, 2, tmp_path_factory.mktemp(f"capped_{request.param}"), max_batch_size=CAP)[1:]


@pytest.fixture(scope="session")
def old_export(tmp_path_factory):
    """(config, version directory, loaded SavedModel) of a conditional export as written before the cap existed: no
    `limits` signature, and no cap on `serving_default`, `generate` and `generate_by_name`."""
    signatures = serving.GeneratorServingModule.signatures
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serving.GeneratorServingModule, "_within_cap", lambda self, count, *tensors: list(tensors))
        patch.setattr(serving.GeneratorServingModule, "signatures",
                      lambda self: {k: v for k, v in signatures(self).items() if k != serving.LIMITS_SIGNATURE})
        return export_tiny("conditional", 4, tmp_path_factory.mktemp("old"))[1:]


@pytest.fixture(scope="session")
def export_before_name_bound(tmp_path_factory):
    """(config, version directory, loaded SavedModel) of a conditional export capped at CAP as written before the
    class-name bound: `limits` answers `max_batch_size` alone, the assets have no `max_class_name_length`, and
    `generate_by_name` looks for the closest names of an unknown name of any length."""
    limit_values = serving.GeneratorServingModule.limit_values
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_names.ClassNameLookup, "_within_length", lambda self, names: names)
        patch.setattr(serving.GeneratorServingModule, "limit_values",
                      lambda self: {serving.MAX_BATCH_SIZE_OUTPUT: limit_values(self)[serving.MAX_BATCH_SIZE_OUTPUT]})
        return export_tiny("conditional", 5, tmp_path_factory.mktemp("before_name_bound"), max_batch_size=CAP)[1:]
