"""Per-class figures of a class-conditional generator, from fixed features and logits (NumPy).

Pooled figures (FID, KID, precision/recall over all images) score a generator that draws a perfect dog when asked
for a cat as well as one that draws the cat. These compare the images generated for class c with the real images of
class c, and ask a classifier of the dataset's classes whether the generated images show the class they were
generated with:

- intra-class FID (Miyato & Koyama 2018, cGANs with Projection Discriminator, sec. 5): the FID of each class
  (`scores.frechet_distance`, TF-GAN's), and its mean over the classes;
- intra-class KID: `scores.kernel_distance` per class, TF-GAN's unbiased block estimator, which stays unbiased at
  the small counts of one class (FID is biased upwards there);
- class accuracy: top-1 and top-5 of the classifier's logits against the generating labels, overall and per class
  (`class_accuracy`); chance is 1 / classes;
- improved precision and recall per class (`manifold.precision_recall_density_coverage`, k = 3) where the counts
  allow it: at least k + 1 images of each side, so that every image has a k-th nearest other image (`MIN_KNN`).

A class with fewer images than the feature dimension plus one has a rank-deficient covariance (n images span at most
n - 1 dimensions), which inflates its FID (`rank_deficient`); such classes are flagged, not refused.
"""

import os

import numpy as np

from sagan_tf.evaluation.metrics import manifold, scores

#: Logits of TF-GAN's Inception (the 2015-12-05 Inception graph): 0 is a background class, 1..1000 the ImageNet
#: 2012 classes in the order of the graph's label map (`imagenet_2012_challenge_label_map_proto.pbtxt` of
#: inception-2015-12-05.tgz; not sorted by synset), 1001..1007 unused.
INCEPTION_NUM_LOGITS = 1008
#: The ImageNet synset of each of those logits, shipped with the package (the label map, one "synset index" a line).
INCEPTION_LABEL_MAP_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "classifiers",
                                        "assets", "inception_imagenet_label_map.txt")


def top_k_correct(logits, labels, k=1):
    """Whether each row's label is among its k largest logits.

    A tie counts for the label: row i is correct when fewer than k logits are strictly larger than the label's.

    Args:
      logits: [n, num_classes] array.
      labels: [n] integer labels in [0, num_classes).
      k: how many of the largest logits count, 1 <= k <= num_classes.

    Returns:
      [n] bool array.

    Raises:
      ValueError: shapes that do not match, labels out of range, a bad k.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"Expected logits [n, num_classes] and labels [n]. Received: logits.shape={logits.shape}, "
                         f"labels.shape={labels.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be an integer in [1, {logits.shape[1]}]. Received: k={k!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"Labels must be in [0, {logits.shape[1]}). Received: labels in "
                         f"[{labels.min()}, {labels.max()}]")
    own = logits[np.arange(len(labels)), labels.astype(np.int64)]
    return np.sum(logits > own[:, None], axis=1) < k


def class_accuracy(logits, labels, classes=None):
    """Top-1 (and top-5 with more than 5 classes) accuracy of `logits` against `labels`, overall and per class.

    Args:
      logits: [n, num_classes] logits whose columns are the dataset's classes in label order (see
        `inception_imagenet_logits` for Inception on ImageNet).
      labels: [n] the labels the images were generated with (or the real labels).
      classes: the classes to report per class (default: those in `labels`, ascending).

    Returns:
      {"top1": float, "top5": float or None, "chance": 1 / num_classes, "count": n,
       "per_class": {class: {"count", "top1", "top5"}}} (a class without images gets None figures).
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    num_classes = logits.shape[1] if logits.ndim == 2 else 0
    top1 = top_k_correct(logits, labels, 1)
    top5 = top_k_correct(logits, labels, 5) if num_classes > 5 else None
    classes = np.unique(labels) if classes is None else np.asarray(classes, np.int64)

    def mean(values):
        return float(np.mean(values)) if values is not None and values.size else None

    per_class = {}
    for c in classes:
        rows = labels == c
        per_class[int(c)] = {"count": int(rows.sum()), "top1": mean(top1[rows]),
                             "top5": mean(top5[rows]) if top5 is not None else None}
    return {"top1": mean(top1), "top5": mean(top5), "chance": 1.0 / num_classes, "count": int(len(labels)),
            "per_class": per_class}


def rank_deficient(count, feature_dim):
    """Whether `count` images give a rank-deficient d x d covariance (rank <= count - 1 < d): FID is inflated."""
    return count - 1 < feature_dim


def knn_allowed(real_count, generated_count, k=manifold.DEFAULT_K):
    """Whether precision and recall can be computed: at least k + 1 images on each side (each image needs a k-th
    nearest other image for its ball's radius)."""
    return min(real_count, generated_count) >= k + 1


def per_class_figures(real_features, generated_features, k=manifold.DEFAULT_K, kid_max_block_size=1024):
    """FID, KID, precision and recall of one class's generated features against its real ones.

    Args:
      real_features: [n_real, d] features of the class's real images.
      generated_features: [n_generated, d] features of the images generated for the class.
      k: the k of precision and recall.
      kid_max_block_size: the largest block of KID's estimator (as the pooled KID).

    Returns:
      {"count_real", "count_generated", "fid", "kid", "precision", "recall", "rank_deficient"}; a figure the
      counts do not allow is None (FID and KID need 2 images of each side, precision/recall k + 1).
    """
    real = np.asarray(real_features, np.float64)
    generated = np.asarray(generated_features, np.float64)
    n_real, n_generated = len(real), len(generated)
    dim = real.shape[1] if real.ndim == 2 else generated.shape[1]
    enough = min(n_real, n_generated) >= 2
    figures = {"count_real": n_real, "count_generated": n_generated,
               "fid": scores.frechet_distance(real, generated) if enough else None,
               "kid": (scores.kernel_distance(real, generated, max_block_size=kid_max_block_size)
                       if enough and _kid_allowed(n_real, n_generated, kid_max_block_size) else None),
               "precision": None, "recall": None,
               "rank_deficient": bool(rank_deficient(min(n_real, n_generated), dim))}
    if knn_allowed(n_real, n_generated, k):
        manifold_figures = manifold.precision_recall_density_coverage(real, generated, k=k)
        figures["precision"], figures["recall"] = manifold_figures["precision"], manifold_figures["recall"]
    return figures


def _kid_allowed(n_real, n_generated, max_block_size):
    blocks = -(-max(n_real, n_generated) // max_block_size)
    return min(n_real, n_generated) // blocks >= 2


def mean_over_classes(values):
    """The mean of the values that are not None (None when none is)."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def inception_label_map(path=None):
    """{synset: logit index} of TF-GAN's Inception: the shipped `INCEPTION_LABEL_MAP_PATH` (lines "n01440764 449"),
    or another file of that form.

    Raises:
      ValueError: not 1000 distinct synsets mapped onto the logits 1..1000.
    """
    with open(path or INCEPTION_LABEL_MAP_PATH) as handle:
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    mapping = {synset: int(index) for synset, index in rows}
    if len(mapping) != 1000 or sorted(mapping.values()) != list(range(1, 1001)):
        raise ValueError(f"An Inception label map maps 1000 synsets onto the logits 1..1000. Received: {len(rows)} "
                         f"lines, {len(mapping)} distinct synsets, in {path or INCEPTION_LABEL_MAP_PATH}")
    return mapping


def inception_logit_indices(synsets, label_map):
    """The column of Inception's 1008 logits of each dataset label: `label_map[synsets[label]]`.

    Args:
      synsets: the dataset's class synsets in label order (TFDS imagenet2012: sorted, "n01440764" is label 0).
      label_map: {synset: logit index}, e.g. `inception_label_map()`.

    Returns:
      [len(synsets)] int64 array of indices in 1..1000.

    Raises:
      ValueError: a synset the label map does not hold.
    """
    missing = [s for s in synsets if s not in label_map]
    if missing:
        raise ValueError(f"Inception's label map has no logit for {missing[:3]} ({len(missing)} classes); class "
                         "accuracy with Inception needs the ImageNet 2012 synsets as the dataset's class names.")
    return np.asarray([label_map[s] for s in synsets], np.int64)


def inception_imagenet_logits(logits, indices):
    """Inception's [n, 1008] logits reduced to [n, len(indices)], column j holding the logit of dataset label j
    (the background logit 0 and the unused 1001..1007 are dropped, so a prediction is always a dataset class)."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != INCEPTION_NUM_LOGITS:
        raise ValueError(f"TF-GAN's Inception returns {INCEPTION_NUM_LOGITS} logits. Received: "
                         f"logits.shape={logits.shape}")
    return logits[:, np.asarray(indices, np.int64)]


__all__ = ["INCEPTION_NUM_LOGITS", "INCEPTION_LABEL_MAP_PATH", "top_k_correct", "class_accuracy", "rank_deficient",
           "knn_allowed", "per_class_figures", "mean_over_classes", "inception_label_map", "inception_logit_indices",
           "inception_imagenet_logits"]
