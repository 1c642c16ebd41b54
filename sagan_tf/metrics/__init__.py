"""GAN evaluation: FID, Inception Score and KID computed by TF-GAN, streaming, precision/recall/density/coverage
(`manifold`), and cached real statistics. The classifiers whose features they compare (TF-GAN's Inception, domain
classifiers trained on a dataset's own images) live in `sagan_tf.classifiers`; their public names are also
importable from here (`metrics.load_classifier`, `metrics.Classifier`, ...).

    from sagan_tf import metrics
    classifier = metrics.load_classifier("/path/to/inception")     # or a TF-Hub handle, a .keras file,
                                                                   # "synthetic" (the shipped classifier)
    real = metrics.StatisticsCache(cache_dir).get_or_compute(
        "cifar10", "train", 32, classifier.classifier_id,
        lambda: metrics.RealStatistics.from_feature_batches(classifier(b)[0] for b in real_images))
    acc = metrics.MetricAccumulator(nearest_k=3)
    for images in generated_batches:
        acc.update(*classifier(images))
    acc.result(real)        # {"fid", "inception_score", "kid", "precision", "recall", "density", "coverage"}

Importing this package is cheap: the submodules (TensorFlow, TF-GAN, TF-Hub) load on first use.
"""

import importlib

_EXPORTS = {
    "frechet_distance": "scores",
    "frechet_distance_from_statistics": "scores",
    "inception_score": "scores",
    "inception_score_splits": "scores",
    "kernel_distance": "scores",
    "precision_recall_density_coverage": "manifold",
    "nearest_neighbour_radii": "manifold",
    "FrechetAccumulator": "accumulators",
    "InceptionScoreAccumulator": "accumulators",
    "ActivationReservoir": "accumulators",
    "MetricAccumulator": "accumulators",
    "RealStatistics": "real_statistics",
    "StatisticsCache": "statistics_cache",
}
#: The classifiers' names, kept importable from `sagan_tf.metrics` where they were first published.
_CLASSIFIER_EXPORTS = ("Classifier", "load_classifier", "INCEPTION_HANDLE", "INCEPTION_CLASSIFIER",
                       "SYNTHETIC_CLASSIFIER", "DOMAIN_CLASSIFIER", "build_domain_classifier", "dataset_fingerprint",
                       "SYNTHETIC_CLASSIFIER_PATH", "SYNTHETIC_FEATURE_DIM", "build_synthetic_classifier")
_EXPORTS = {**{name: f"{__name__}.{module}" for name, module in _EXPORTS.items()},
            **{name: "sagan_tf.classifiers" for name in _CLASSIFIER_EXPORTS}}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
