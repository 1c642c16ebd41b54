"""The generator as a SavedModel for TensorFlow Serving: its signatures and the export functions (`signatures`), the
class-name lookup of `generate_by_name` (`class_names`), and the request cap chosen from a memory budget (`memory`).

Importing this package is cheap: the submodules (TensorFlow) load on first use."""

from sagan_tf._lazy import lazy_exports

_EXPORTS = {
    "export_generator": "signatures",
    "export_generator_with_limits": "signatures",
    "export_run": "signatures",
    "export_keras_file": "signatures",
    "GeneratorServingModule": "signatures",
    "SERVING_SIGNATURE": "signatures",
    "GENERATE_SIGNATURE": "signatures",
    "GENERATE_BY_NAME_SIGNATURE": "signatures",
    "CLASS_NAMES_SIGNATURE": "signatures",
    "LIMITS_SIGNATURE": "signatures",
    "Z_INPUT": "signatures",
    "LABELS_INPUT": "signatures",
    "CLASSES_INPUT": "signatures",
    "BATCH_SIZE_INPUT": "signatures",
    "SEED_INPUT": "signatures",
    "TRUNCATION_INPUT": "signatures",
    "IMAGES_OUTPUT": "signatures",
    "PNG_OUTPUT": "signatures",
    "LABELS_OUTPUT": "signatures",
    "CLASS_NAMES_OUTPUT": "signatures",
    "MAX_BATCH_SIZE_OUTPUT": "signatures",
    "MAX_CLASS_NAME_LENGTH_OUTPUT": "signatures",
    "CLASS_NAMES_ASSET": "signatures",
    "EXPORT_INFO_ASSET": "signatures",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
