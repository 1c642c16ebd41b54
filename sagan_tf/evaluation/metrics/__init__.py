"""GAN evaluation: FID, Inception Score and KID computed by TF-GAN, streaming, precision/recall/density/coverage
(`manifold`), and cached real statistics. The classifiers whose features they compare (TF-GAN's Inception, domain
classifiers trained on a dataset's own images) live in `sagan_tf.evaluation.classifiers`.

    from sagan_tf.evaluation import classifiers, metrics
    classifier = classifiers.load_classifier("/path/to/inception")     # or a TF-Hub handle, a .keras file,
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

from sagan_tf._lazy import lazy_exports

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
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
