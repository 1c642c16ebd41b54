"""The cache of trained domain classifiers, and `--classifier=domain`: train the dataset's classifier once per
(dataset, image size), then reuse it.

The cache is `EvalConfig.classifier_dir` (default `$SAGAN_TF_CACHE/domain_classifiers`, beside the real statistics
in `$SAGAN_TF_CACHE/real_stats`); a classifier's file name holds a hash of the dataset's fingerprint and the image
size (`cache_path`), so changing the images of a folder trains a new one. `sagan_tf.evaluation.load_classifier_for`
then finds the cached file, checks its card, and loads it.
"""

import hashlib
import json
import os
import re

from sagan_tf.evaluation import cache_dirs
from sagan_tf.evaluation.classifiers import train
from sagan_tf.evaluation.classifiers.card import CARD_FORMAT
from sagan_tf.evaluation.classifiers.fingerprint import fingerprint_key
from sagan_tf.evaluation.classifiers.sources import DOMAIN_CLASSIFIER

def cache_path(directory, dataset, image_size, fingerprint):
    """The `.keras` file of the cached domain classifier of these images at `image_size`.

    The name is readable (dataset and size) plus the first 16 hex digits of a SHA-256 of the fingerprint's
    identifying part (`fingerprint_key`), the image size and `CARD_FORMAT`.
    """
    key = json.dumps({"fingerprint": fingerprint_key(fingerprint), "image_size": int(image_size),
                      "format": CARD_FORMAT}, sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._]+", "_", os.path.basename(dataset.rstrip("/")) or dataset).strip("_")[:60]
    return os.path.join(directory, f"{readable}-{int(image_size)}-{digest}.keras")


def ensure_domain_classifier(dataset, image_size, config, print_fn=print):
    """Trains and caches the domain classifier of `dataset` at `image_size` when `config` asks for one and it is
    not cached yet.

    Args:
      dataset: a `sagan_tf.data.Dataset` (`data.resolve`; a folder's scan is reused).
      image_size: the size of the evaluated images.
      config: an `EvalConfig` (or None: nothing to do); acts only when `config.classifier` is "domain".
      print_fn: where progress lines go.

    Returns:
      The path of the cached classifier, or None when `config` does not ask for the domain classifier.

    Raises:
      DatasetError: the dataset cannot be read or is too small to train a classifier.
      InsufficientAccuracyError: the classifier learned too little.
    """
    if config is None or config.classifier != DOMAIN_CLASSIFIER:
        return None
    directory = config.classifier_dir or cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS)
    path = cache_path(directory, dataset.name, image_size, dataset.fingerprint())
    if os.path.exists(path):
        return path
    print_fn(f"No domain classifier of {dataset.name} at {image_size}x{image_size} in {directory}: training one "
             "(once; later runs reuse it).")
    train.train_domain_classifier(dataset, image_size, path, log_fn=print_fn)
    return path


__all__ = ["cache_path", "ensure_domain_classifier"]
