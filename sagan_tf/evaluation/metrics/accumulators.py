"""Streaming accumulators: FID, Inception Score and KID of generated samples, batch by batch, in bounded memory.

- `FrechetAccumulator`: running mean and covariance of activations, for FID over any number of samples.
- `InceptionScoreAccumulator`: running sums for the Inception Score over any number of samples.
- `ActivationReservoir`: a bounded, uniformly random subset of a stream of activations (for KID).
- `MetricAccumulator`: feeds each batch of (features, logits) to the three; its result adds precision, recall,
  density and coverage (`manifold`) of the reservoir's features when asked to.
"""

import numpy as np

from sagan_tf.evaluation.metrics import manifold, scores


class FrechetAccumulator:
    """Accumulates count, sum and sum of outer products of activations in float64.

    Memory is O(d^2) whatever the number of samples (32 MiB for Inception's d = 2048). Sums are taken
    around a fixed shift (the mean of the first batch), which keeps the covariance
    (S - n m m^T) / (n - 1) accurate when the activations have a large mean.

    Args:
        feature_dim: optional expected feature dimension d; taken from the first batch if None.

    Example:

        acc = FrechetAccumulator()
        for batch in batches:
            acc.update(classifier(batch)[0])
        fid = acc.frechet_distance(real_statistics.mean, real_statistics.covariance)
    """

    def __init__(self, feature_dim=None):
        if feature_dim is not None and (not isinstance(feature_dim, (int, np.integer)) or feature_dim < 1):
            raise ValueError(
                f"`feature_dim` must be a positive integer or None. Received: feature_dim={feature_dim}"
            )
        self.feature_dim = None if feature_dim is None else int(feature_dim)
        self.count = 0
        self._shift = None
        self._sum = None
        self._sum_outer = None

    def update(self, activations):
        """Adds a [batch, d] batch of activations."""
        batch = scores.validate_activations("activations", activations, min_samples=0)
        if self.feature_dim is None:
            self.feature_dim = batch.shape[1]
        if batch.shape[1] != self.feature_dim:
            raise ValueError(
                f"Expected activations with feature dimension {self.feature_dim}. "
                f"Received: activations.shape={batch.shape}"
            )
        if batch.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = batch.mean(axis=0)
            self._sum = np.zeros(self.feature_dim, np.float64)
            self._sum_outer = np.zeros((self.feature_dim, self.feature_dim), np.float64)
        centered = batch - self._shift
        self.count += batch.shape[0]
        self._sum += centered.sum(axis=0)
        self._sum_outer += centered.T @ centered

    def _require(self, min_samples):
        if self.count < min_samples:
            raise ValueError(
                f"Needs at least {min_samples} accumulated samples. Received: count={self.count}"
            )

    @property
    def mean(self):
        """[d] float64 mean of the activations seen so far."""
        self._require(1)
        return self._shift + self._sum / self.count

    @property
    def covariance(self):
        """[d, d] float64 unbiased (n - 1) covariance, as TF-GAN's FID uses."""
        self._require(2)
        centered_mean = self._sum / self.count
        cov = (self._sum_outer - self.count * np.outer(centered_mean, centered_mean)) / (self.count - 1)
        return (cov + cov.T) / 2.0

    def frechet_distance(self, mean, covariance):
        """FID between the accumulated activations and a set with the given mean and covariance."""
        return scores.frechet_distance_from_statistics(mean, covariance, self.mean, self.covariance)


class InceptionScoreAccumulator:
    """Accumulates what the Inception Score needs, per split, without keeping logits.

    log IS = E_x KL(p(y|x) || p(y)) = E_x[sum_y p log p] - sum_y q log q, with q = E_x p(y|x)
    (the same decomposition TF-GAN's streaming `classifier_score_from_logits_streaming` uses). So each
    split keeps its sample count, the sum over samples of sum_y p log p, and the sum of p: memory
    O(num_splits * num_classes), float64.

    Splits are the contiguous, near-equal ranges of `inception_score(logits, num_splits)`, so with
    `num_splits > 1` the total `num_samples` must be known in advance; `result()` checks it was reached.

    Args:
        num_splits: number of splits (1 is TF-GAN's definition; papers report 10).
        num_samples: total number of samples that will be added; required when num_splits > 1.
    """

    def __init__(self, num_splits=1, num_samples=None):
        if num_samples is not None and (
            not isinstance(num_samples, (int, np.integer)) or num_samples < 1
        ):
            raise ValueError(
                f"`num_samples` must be a positive integer or None. Received: num_samples={num_samples}"
            )
        scores.validate_num_splits(num_splits, num_samples)
        if num_splits > 1 and num_samples is None:
            raise ValueError(
                "`num_samples` must be given when num_splits > 1, to place the split boundaries. "
                f"Received: num_splits={num_splits}, num_samples=None"
            )
        self.num_splits = int(num_splits)
        self.num_samples = None if num_samples is None else int(num_samples)
        self.count = 0
        self.num_classes = None
        self._counts = np.zeros(self.num_splits, np.int64)
        self._sum_plogp = np.zeros(self.num_splits, np.float64)
        self._sum_p = None
        if self.num_samples is None:
            self._ends = np.array([np.iinfo(np.int64).max])
        else:
            self._ends = np.array([end for _, end in scores.split_bounds(self.num_samples, num_splits)])

    def update(self, logits):
        """Adds a [batch, num_classes] batch of logits."""
        batch = scores.validate_activations("logits", logits, min_samples=0)
        if self.num_classes is None:
            self.num_classes = batch.shape[1]
            self._sum_p = np.zeros((self.num_splits, self.num_classes), np.float64)
        if batch.shape[1] != self.num_classes:
            raise ValueError(
                f"Expected logits with {self.num_classes} classes. Received: logits.shape={batch.shape}"
            )
        if self.num_samples is not None and self.count + batch.shape[0] > self.num_samples:
            raise ValueError(
                f"More samples than the declared num_samples={self.num_samples}. "
                f"Received: {self.count + batch.shape[0]} samples in total"
            )
        shifted = batch - batch.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        plogp = (p * log_p).sum(axis=1)
        split = np.searchsorted(self._ends, self.count + np.arange(batch.shape[0]), side="right")
        self._counts += np.bincount(split, minlength=self.num_splits)
        self._sum_plogp += np.bincount(split, weights=plogp, minlength=self.num_splits)
        for s in np.unique(split):
            self._sum_p[s] += p[split == s].sum(axis=0)
        self.count += batch.shape[0]

    def split_scores(self):
        """Returns the per-split Inception Scores, a list of Python floats."""
        if self.num_samples is not None and self.count != self.num_samples:
            raise ValueError(
                f"Expected num_samples={self.num_samples} samples before computing the score. "
                f"Received: count={self.count}"
            )
        if self.count == 0:
            raise ValueError("No logits were accumulated. Received: count=0")
        results = []
        for n, sum_plogp, sum_p in zip(self._counts, self._sum_plogp, self._sum_p):
            q = sum_p / n
            q_log_q = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum()
            results.append(float(np.exp(sum_plogp / n - q_log_q)))
        return results

    def result(self):
        """Returns the mean of the per-split Inception Scores, a Python float."""
        return float(np.mean(self.split_scores()))


class ActivationReservoir:
    """Reservoir sampling (Vitter's Algorithm R) of activation rows, with bounded memory.

    After n rows have been added, `samples()` is a uniformly random subset of min(n, capacity) of them,
    so TF-GAN's KID on it is an unbiased estimate of the KID on all n (with more variance when
    n > capacity). Memory: capacity * d float32 values (10,000 x 2048 Inception features = 78 MiB).
    While n <= capacity every row is kept.

    Args:
        capacity: the most rows kept.
        seed: seed of the NumPy generator choosing which rows to keep and shuffling them.
    """

    def __init__(self, capacity=10_000, seed=0):
        if not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"`capacity` must be a positive integer. Received: capacity={capacity}")
        self.capacity = int(capacity)
        self.seed = seed
        self.count = 0
        self._rng = np.random.default_rng(seed)
        self._buffer = None

    def update(self, activations):
        """Offers a [batch, d] batch of rows to the reservoir."""
        batch = np.asarray(scores.validate_activations("activations", activations, 0), np.float32)
        if self._buffer is None:
            self._buffer = np.zeros((self.capacity, batch.shape[1]), np.float32)
        if batch.shape[1] != self._buffer.shape[1]:
            raise ValueError(
                f"Expected activations with feature dimension {self._buffer.shape[1]}. "
                f"Received: activations.shape={batch.shape}"
            )
        positions = self.count + np.arange(batch.shape[0])
        fill = positions < self.capacity
        self._buffer[positions[fill]] = batch[fill]
        # Row t (0-based) beyond the capacity replaces a random slot with probability capacity / (t + 1).
        rest = np.flatnonzero(~fill)
        if rest.size:
            slots = self._rng.integers(0, positions[rest] + 1)
            keep = slots < self.capacity
            rest, slots = rest[keep], slots[keep]
            # When two rows of the batch draw the same slot, the later one wins, as in sequential order.
            last = np.unique(slots[::-1], return_index=True)[1]
            order = rest.size - 1 - last
            self._buffer[slots[order]] = batch[rest[order]]
        self.count += batch.shape[0]

    def samples(self, shuffle=True):
        """Returns the kept rows, [min(count, capacity), d] float32, in random order if `shuffle`.

        TF-GAN's KID cuts its inputs into blocks in order, so they should not be sorted; shuffling
        (with a generator seeded from `seed`, so the result is reproducible) guards against generators
        that produce samples sorted by class.
        """
        if self._buffer is None:
            raise ValueError("No activations were added. Received: count=0")
        kept = self._buffer[: min(self.count, self.capacity)]
        if shuffle:
            kept = kept[np.random.default_rng(self.seed).permutation(kept.shape[0])]
        return kept.copy()


class MetricAccumulator:
    """Feeds each batch of (features, logits) of generated images to the three streaming metrics.

    Memory does not grow with the number of samples: O(d^2) for FID, O(num_splits * num_classes) for
    the Inception Score, and `kid_capacity * d` float32 values for the reservoir of generated features that KID and
    precision/recall/density/coverage use (see the classes and `manifold`).

    Args:
        num_splits: Inception Score splits (needs `num_samples` when > 1).
        num_samples: total number of samples that will be added (optional when num_splits is 1).
        kid_capacity: size of the reservoir of generated features (0 disables KID and precision/recall).
        kid_max_block_size: block size of TF-GAN's KID estimator.
        seed: seed of the reservoir.
        nearest_k: the k of precision, recall, density and coverage (k-NN balls); None leaves them out.

    Example:

        acc = MetricAccumulator(num_splits=10, num_samples=50_000, nearest_k=3)
        for _ in range(50_000 // 500):
            acc.update(*classifier(generator(noise(500))))
        acc.result(real_statistics)  # {"fid", "inception_score", "kid", "precision", "recall", "density", ...}
    """

    def __init__(self, num_splits=1, num_samples=None, kid_capacity=10_000, kid_max_block_size=1024, seed=0,
                 nearest_k=None):
        if nearest_k is not None and not kid_capacity:
            raise ValueError("Precision and recall need the reservoir of generated features; pass kid_capacity > 0. "
                             f"Received: kid_capacity={kid_capacity}, nearest_k={nearest_k}")
        self.frechet = FrechetAccumulator()
        self.inception = InceptionScoreAccumulator(num_splits, num_samples)
        self.reservoir = ActivationReservoir(kid_capacity, seed) if kid_capacity else None
        self.kid_max_block_size = kid_max_block_size
        self.nearest_k = nearest_k

    def update(self, features, logits):
        """Adds a batch: [batch, d] pool features and [batch, num_classes] logits."""
        if len(features) != len(logits):
            raise ValueError(
                "`features` and `logits` must have the same batch size. "
                f"Received: len(features)={len(features)}, len(logits)={len(logits)}"
            )
        self.frechet.update(features)
        self.inception.update(logits)
        if self.reservoir is not None:
            self.reservoir.update(features)

    def result(self, real_statistics, real_radii=None):
        """Returns {"fid", "inception_score", "kid"} (Python floats; kid is None when disabled), plus "precision",
        "recall", "density" and "coverage" when `nearest_k` is set.

        KID and the k-NN figures compare the reservoir's generated features with `real_statistics.kid_subset`; they
        are None when that subset is empty (the k-NN figures also when either set has `nearest_k` rows or fewer).

        Args:
            real_statistics: the `RealStatistics` of the real data, with the same feature dimension.
            real_radii: the k-NN radii of `real_statistics.kid_subset` (`manifold.nearest_neighbour_radii`), when
                already computed; None computes them.
        """
        if real_statistics.feature_dim != self.frechet.feature_dim:
            raise ValueError(
                "Real and generated features differ in dimension. Received: "
                f"real={real_statistics.feature_dim}, generated={self.frechet.feature_dim}"
            )
        real_subset = real_statistics.kid_subset
        fake_subset = self.reservoir.samples() if self.reservoir is not None and self.reservoir.count else None
        kid = None
        if fake_subset is not None and real_subset.shape[0]:
            kid = scores.kernel_distance(real_subset, fake_subset, self.kid_max_block_size)
        result = {
            "fid": self.frechet.frechet_distance(real_statistics.mean, real_statistics.covariance),
            "inception_score": self.inception.result(),
            "kid": kid,
        }
        if self.nearest_k is not None:
            figures = dict.fromkeys(("precision", "recall", "density", "coverage"))
            k = self.nearest_k
            if fake_subset is not None and min(fake_subset.shape[0], real_subset.shape[0]) > k:
                figures = manifold.precision_recall_density_coverage(real_subset, fake_subset, self.nearest_k,
                                                                     real_radii=real_radii)
            result.update(figures)
        return result
