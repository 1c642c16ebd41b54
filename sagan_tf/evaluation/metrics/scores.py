"""FID, Inception Score and KID, computed by TF-GAN's evaluation functions.

All functions take NumPy arrays (or anything `np.asarray` accepts, e.g. eager tensors), compute in
float64 and return Python floats. References:

- FID: Heusel et al. 2017 (arXiv:1706.08500), |m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)), with
  unbiased (n - 1) covariances, as in TF-GAN.
- Inception Score: Salimans et al. 2016 (arXiv:1606.03498), exp(E_x KL(p(y|x) || p(y))).
- KID: Binkowski et al. 2018 (arXiv:1801.01401), unbiased MMD^2 with the kernel
  k(x, y) = (x.y / d + 1)^3, TF-GAN's block estimator (arXiv:1307.1954) with blocks of at most
  `max_block_size` samples.
"""

import numpy as np

from sagan_tf.evaluation.metrics import tfgan_bridge


def _tf():
    import tensorflow as tf

    return tf


def validate_activations(name, activations, min_samples):
    """Returns `activations` as a 2-D float64 array, or raises a ValueError saying what is wrong."""
    array = np.asarray(activations, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D [num_samples, feature_dim]. Received: {name}.shape={array.shape}"
        )
    if array.shape[0] < min_samples:
        raise ValueError(
            f"`{name}` needs at least {min_samples} samples. Received: {name}.shape={array.shape}"
        )
    if array.shape[1] < 1:
        raise ValueError(f"`{name}` has no features. Received: {name}.shape={array.shape}")
    return array


def _validate_pair(real_activations, fake_activations, min_samples):
    real = validate_activations("real_activations", real_activations, min_samples)
    fake = validate_activations("fake_activations", fake_activations, min_samples)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            "`real_activations` and `fake_activations` must have the same feature dimension. "
            f"Received: real_activations.shape={real.shape}, fake_activations.shape={fake.shape}"
        )
    return real, fake


def frechet_distance(real_activations, fake_activations):
    """Frechet (Inception) Distance between two sets of activations (Heusel et al. 2017, eq. 6).

    Calls TF-GAN's `frechet_classifier_distance_from_activations` in float64.

    Args:
        real_activations: [n1, d] array, n1 >= 2.
        fake_activations: [n2, d] array, n2 >= 2.

    Returns:
        The FID as a Python float.
    """
    real, fake = _validate_pair(real_activations, fake_activations, min_samples=2)
    tf = _tf()
    cm = tfgan_bridge.classifier_metrics()
    return float(
        cm.frechet_classifier_distance_from_activations(tf.constant(real), tf.constant(fake))
    )


def frechet_distance_from_statistics(mean1, covariance1, mean2, covariance2):
    """FID from means and (unbiased) covariances, with the same formula and square root as TF-GAN.

    |m1 - m2|^2 + Tr(C1) + Tr(C2) - 2 Tr((C1 C2)^(1/2)), where the last trace is TF-GAN's
    `trace_sqrt_product` (SVD-based square roots of symmetric matrices). Used by the streaming
    accumulators; equals `frechet_distance` when the statistics come from the same activations.

    Args:
        mean1: [d] mean of the first set.
        covariance1: [d, d] covariance of the first set.
        mean2: [d] mean of the second set.
        covariance2: [d, d] covariance of the second set.

    Returns:
        The FID as a Python float.
    """
    m1 = np.asarray(mean1, dtype=np.float64)
    m2 = np.asarray(mean2, dtype=np.float64)
    c1 = np.asarray(covariance1, dtype=np.float64)
    c2 = np.asarray(covariance2, dtype=np.float64)
    d = m1.shape[0] if m1.ndim == 1 else None
    if m1.ndim != 1 or m2.shape != m1.shape or c1.shape != (d, d) or c2.shape != (d, d):
        raise ValueError(
            "Expected means of shape [d] and covariances of shape [d, d] with the same d. Received: "
            f"mean1.shape={m1.shape}, covariance1.shape={c1.shape}, mean2.shape={m2.shape}, "
            f"covariance2.shape={c2.shape}"
        )
    tf = _tf()
    cm = tfgan_bridge.classifier_metrics()
    sqrt_trace = float(cm.trace_sqrt_product(tf.constant(c1), tf.constant(c2)))
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * sqrt_trace)


def split_bounds(num_samples, num_splits):
    """Returns the [start, end) sample ranges of `num_splits` contiguous, near-equal splits."""
    return [
        (i * num_samples // num_splits, (i + 1) * num_samples // num_splits)
        for i in range(num_splits)
    ]


def validate_num_splits(num_splits, num_samples):
    """Raises a ValueError unless 1 <= num_splits <= num_samples."""
    if not isinstance(num_splits, (int, np.integer)) or num_splits < 1:
        raise ValueError(f"`num_splits` must be a positive integer. Received: num_splits={num_splits}")
    if num_samples is not None and num_splits > num_samples:
        raise ValueError(
            "`num_splits` cannot exceed the number of samples. "
            f"Received: num_splits={num_splits}, num_samples={num_samples}"
        )


def inception_score_splits(logits, num_splits=1):
    """Per-split Inception Scores (Salimans et al. 2016, sec. 4), via TF-GAN.

    The samples are cut into `num_splits` contiguous, near-equal splits (as in the original Inception
    Score code); each split's score is TF-GAN's `classifier_score_from_logits`, computed in float64.

    Args:
        logits: [n, num_classes] classifier logits (not probabilities).
        num_splits: number of splits, 1 <= num_splits <= n.

    Returns:
        A list of `num_splits` Python floats.
    """
    array = validate_activations("logits", logits, min_samples=1)
    validate_num_splits(num_splits, array.shape[0])
    tf = _tf()
    cm = tfgan_bridge.classifier_metrics()
    return [
        float(cm.classifier_score_from_logits(tf.constant(array[start:end])))
        for start, end in split_bounds(array.shape[0], num_splits)
    ]


def inception_score(logits, num_splits=1):
    """Inception Score, exp(E_x KL(p(y|x) || p(y))), averaged over `num_splits` splits.

    `num_splits=1` is TF-GAN's definition (one marginal p(y) over all samples); the numbers reported in
    papers (including SAGAN's) use 10 splits of 5,000 samples.

    Args:
        logits: [n, num_classes] classifier logits.
        num_splits: number of contiguous splits, 1 <= num_splits <= n.

    Returns:
        The mean of the per-split scores, a Python float.
    """
    return float(np.mean(inception_score_splits(logits, num_splits)))


def _validate_kid_sizes(num_real, num_fake, max_block_size):
    if not isinstance(max_block_size, (int, np.integer)) or max_block_size < 2:
        raise ValueError(
            f"`max_block_size` must be an integer >= 2. Received: max_block_size={max_block_size}"
        )
    num_blocks = -(-max(num_real, num_fake) // max_block_size)
    if min(num_real, num_fake) // num_blocks < 2:
        raise ValueError(
            "KID's block estimator needs at least 2 real and 2 fake samples per block; with "
            f"{num_blocks} block(s) of at most {max_block_size} samples that requires at least "
            f"{2 * num_blocks} samples in each set. Received: num_real={num_real}, "
            f"num_fake={num_fake}, max_block_size={max_block_size}"
        )


def kernel_distance(real_activations, fake_activations, max_block_size=1024):
    """Kernel (Inception) Distance, TF-GAN's unbiased block estimator of MMD^2 (Binkowski et al. 2018).

    Kernel k(x, y) = (x.y / d + 1)^3. The samples are split into ceil(max(n1, n2) / max_block_size)
    blocks in order, so both sets should be in random order.

    Args:
        real_activations: [n1, d] array.
        fake_activations: [n2, d] array.
        max_block_size: largest block; the estimate with one block is the plain unbiased MMD^2.

    Returns:
        The KID as a Python float (it can be slightly negative: the estimator is unbiased).
    """
    real, fake = _validate_pair(real_activations, fake_activations, min_samples=2)
    _validate_kid_sizes(real.shape[0], fake.shape[0], max_block_size)
    tf = _tf()
    cm = tfgan_bridge.classifier_metrics()
    return float(
        cm.kernel_classifier_distance_from_activations(
            tf.constant(real), tf.constant(fake), max_block_size=int(max_block_size)
        )
    )
