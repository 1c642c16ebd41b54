"""A directory of `RealStatistics` files keyed by (dataset, split, image size, classifier id)."""

import hashlib
import json
import logging
import os
import re

from sagan_tf.evaluation.metrics.real_statistics import RealStatistics


class StatisticsCache:
    """Computes real-data statistics once per key and loads them from disk afterwards.

    The key is (dataset, split, image_size, classifier_id): the same images seen by the same classifier
    give the same statistics. Files are `<directory>/<readable key>-<hash>.npz`, written atomically, and
    the full key is stored in each file and checked on load.

    Args:
        directory: where the `.npz` files live (created when needed).

    Example:

        cache = StatisticsCache(os.path.join(model_dir, "real_statistics"))
        stats = cache.get_or_compute(
            "cifar10", "train", 32, classifier.classifier_id,
            lambda: RealStatistics.from_feature_batches(classifier(b)[0] for b in images))
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)

    @staticmethod
    def key(dataset, split, image_size, classifier_id):
        """Returns the cache key as a JSON-serializable dict."""
        if isinstance(image_size, (list, tuple)):
            image_size = [int(s) for s in image_size]
        else:
            image_size = int(image_size)
        return {
            "dataset": str(dataset),
            "split": str(split),
            "image_size": image_size,
            "classifier_id": str(classifier_id),
        }

    def path(self, dataset, split, image_size, classifier_id):
        """Returns the file that holds the statistics of this key."""
        key = self.key(dataset, split, image_size, classifier_id)
        encoded = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]
        readable = re.sub(r"[^A-Za-z0-9._]+", "_", f"{key['dataset']}-{key['split']}-{key['image_size']}")
        return os.path.join(self.directory, f"{readable.strip('_')[:80]}-{digest}.npz")

    def get_or_compute(self, dataset, split, image_size, classifier_id, compute_fn):
        """Loads the statistics of this key, or calls `compute_fn()` and saves its result.

        Args:
            dataset: dataset name (e.g. "cifar10", "imagenet2012").
            split: dataset split (e.g. "train").
            image_size: resolution of the images given to the classifier (int or (h, w)).
            classifier_id: `Classifier.classifier_id` of the classifier used.
            compute_fn: a function of no arguments returning `RealStatistics`.

        Returns:
            The `RealStatistics`, with the key in its metadata.
        """
        key = self.key(dataset, split, image_size, classifier_id)
        path = self.path(dataset, split, image_size, classifier_id)
        if os.path.exists(path):
            statistics = RealStatistics.load(path)
            if statistics.metadata.get("cache_key") == key:
                return statistics
            logging.warning("Ignoring %s: its stored key differs from %s.", path, key)
        statistics = compute_fn()
        if not isinstance(statistics, RealStatistics):
            raise TypeError(
                "`compute_fn` must return a RealStatistics. "
                f"Received: {type(statistics).__name__}"
            )
        statistics.metadata = {**statistics.metadata, "cache_key": key}
        statistics.save(path)
        return statistics
