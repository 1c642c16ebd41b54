"""`--classifier=domain` of training.run and training.evaluate: train the dataset's domain classifier once per
(dataset, image size), cache it, then reuse it.

The cache is `EvalConfig.classifier_dir` (default `$SAGAN_TF_CACHE/domain_classifiers`, beside the real statistics
in `$SAGAN_TF_CACHE/real_stats`); a classifier's file name holds a hash of the dataset's fingerprint and the image
size (`sagan_tf.metrics.domain_classifier.cache_path`), so changing the images of a folder trains a new one. The
library (`sagan_tf.evaluation.load_classifier_for`) then finds the cached file, checks its card, and loads it.
"""

import os

from sagan_tf import data
from sagan_tf.metrics import domain_classifier
from sagan_tf.metrics.classifier_loader import DOMAIN_CLASSIFIER


def ensure_domain_classifier(dataset, image_size, config, data_dir=None, print_fn=print):
    """Trains and caches the domain classifier of `dataset` at `image_size` when `config` asks for one and it is
    not cached yet.

    Args:
      dataset: a `sagan_tf.data` name or `Dataset` (a folder's scan is reused).
      image_size: the size of the evaluated images.
      config: an `EvalConfig` (or None: nothing to do); acts only when `config.classifier` is "domain".
      data_dir: TFDS data directory, or the base of a relative folder path.
      print_fn: where progress lines go.

    Returns:
      The path of the cached classifier, or None when `config` does not ask for the domain classifier.

    Raises:
      DatasetError: the dataset cannot be read or is too small to train a classifier.
      InsufficientAccuracyError: the classifier learned too little.
    """
    if config is None or config.classifier != DOMAIN_CLASSIFIER:
        return None
    dataset = data.resolve(dataset, data_dir)
    directory = config.classifier_dir or domain_classifier.default_cache_dir()
    path = domain_classifier.cache_path(directory, dataset.name, image_size, dataset.fingerprint())
    if os.path.exists(path):
        return path
    from training import train_classifier

    print_fn(f"No domain classifier of {dataset.name} at {image_size}x{image_size} in {directory}: training one "
             "(once; later runs reuse it).")
    train_classifier.train_domain_classifier(dataset, image_size, path, data_dir=data_dir, log_fn=print_fn)
    return path


__all__ = ["ensure_domain_classifier"]
