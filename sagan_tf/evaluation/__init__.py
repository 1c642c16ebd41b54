"""Measuring a generator: the evaluation of a run (`evaluator`: `Evaluator`, `EvalConfig`, the real statistics and
the classifier a dataset is measured with; with the class accuracy of a class-conditional run whose classifier's
logits are the dataset's classes, `class_logits`), the same figures per class with the class accuracy of a
class-conditional run (`per_class_evaluator`), the figures themselves (`metrics`: FID, IS, KID, precision/recall,
density/coverage) and the classifiers whose features they compare (`classifiers`).

Importing this package is cheap: the submodules (TensorFlow, TF-GAN, TF-Hub) load on first use."""

from sagan_tf._lazy import lazy_exports

_EXPORTS = {
    "Evaluator": "evaluator",
    "EvalConfig": "evaluator",
    "evaluate_generator": "evaluator",
    "real_statistics": "evaluator",
    "load_classifier_for": "evaluator",
    "default_classifier": "evaluator",
    "generator_inputs": "evaluator",
    "label_probabilities": "evaluator",
    "qualified_figures": "evaluator",
    "recorded_truncation": "evaluator",
    "describe_resize": "evaluator",
    "KID_SUBSET_SIZE": "evaluator",
    "KID_MAX_BLOCK_SIZE": "evaluator",
    "FIGURES": "evaluator",
    "NEAREST_NEIGHBOUR_FIGURES": "evaluator",
    "CLASS_ACCURACY_FIGURES": "evaluator",
    "cache_dir": "cache_dirs",
    "CACHE_ENV": "cache_dirs",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
