"""The statistics of real-data activations that FID and KID compare against, savable as `.npz`."""

import json
import os

import numpy as np

from sagan_tf.run import atomic_write
from sagan_tf.evaluation.metrics import scores
from sagan_tf.evaluation.metrics.accumulators import ActivationReservoir, FrechetAccumulator


class RealStatistics:
    """Mean, unbiased covariance and sample count of real activations, plus a random subset for KID.

    Args:
        mean: [d] float64 mean.
        covariance: [d, d] float64 unbiased (n - 1) covariance.
        count: number of real samples the mean and covariance were computed from (>= 2).
        kid_subset: [m, d] float32 uniformly random real activations for KID (m may be 0).
        metadata: a JSON-serializable dict (e.g. the cache key); saved with the statistics.
    """

    def __init__(self, mean, covariance, count, kid_subset=None, metadata=None):
        mean = np.asarray(mean, np.float64)
        covariance = np.asarray(covariance, np.float64)
        if mean.ndim != 1 or covariance.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(
                "Expected `mean` of shape [d] and `covariance` of shape [d, d]. "
                f"Received: mean.shape={mean.shape}, covariance.shape={covariance.shape}"
            )
        if int(count) < 2:
            raise ValueError(f"`count` must be at least 2. Received: count={count}")
        d = mean.shape[0]
        kid_subset = np.zeros((0, d), np.float32) if kid_subset is None else kid_subset
        kid_subset = np.asarray(kid_subset, np.float32)
        if kid_subset.ndim != 2 or kid_subset.shape[1] != d:
            raise ValueError(
                f"Expected `kid_subset` of shape [m, {d}]. Received: kid_subset.shape={kid_subset.shape}"
            )
        self.mean = mean
        self.covariance = covariance
        self.count = int(count)
        self.kid_subset = kid_subset
        self.metadata = dict(metadata or {})
        json.dumps(self.metadata)  # Fail now, not at save time, if it cannot be saved.

    @property
    def feature_dim(self):
        return self.mean.shape[0]

    @classmethod
    def from_feature_batches(cls, batches, kid_subset_size=10_000, seed=0, metadata=None):
        """Computes the statistics in one pass over [batch, d] feature batches, in bounded memory.

        Args:
            batches: an iterable of [batch, d] arrays (e.g. `classifier(images)[0]` per batch).
            kid_subset_size: size of the reservoir-sampled KID subset (0 to keep none).
            seed: seed of the reservoir sampling.
            metadata: stored with the statistics.

        Returns:
            A `RealStatistics`.
        """
        accumulator = FrechetAccumulator()
        reservoir = ActivationReservoir(kid_subset_size, seed) if kid_subset_size else None
        for batch in batches:
            accumulator.update(batch)
            if reservoir is not None:
                reservoir.update(batch)
        kid_subset = reservoir.samples() if reservoir is not None and reservoir.count else None
        if accumulator.count < 2:
            raise ValueError(f"Need at least 2 real samples. Received: count={accumulator.count}")
        return cls(accumulator.mean, accumulator.covariance, accumulator.count, kid_subset, metadata)

    @classmethod
    def from_activations(cls, activations, kid_subset_size=10_000, seed=0, metadata=None):
        """Computes the statistics of a [n, d] array of activations (see `from_feature_batches`)."""
        activations = scores.validate_activations("activations", activations, min_samples=2)
        return cls.from_feature_batches([activations], kid_subset_size, seed, metadata)

    def save(self, path):
        """Writes the statistics to `path` (a `.npz` file), atomically (via a temporary file)."""
        with atomic_write.replacing(os.path.abspath(os.fspath(path)), unique=True) as temporary:
            with open(temporary, "wb") as f:
                np.savez(
                    f,
                    mean=self.mean,
                    covariance=self.covariance,
                    count=np.int64(self.count),
                    kid_subset=self.kid_subset,
                    metadata=np.array(json.dumps(self.metadata, sort_keys=True)),
                )

    @classmethod
    def load(cls, path):
        """Reads statistics written by `save`."""
        with np.load(os.fspath(path), allow_pickle=False) as data:
            return cls(
                data["mean"],
                data["covariance"],
                int(data["count"]),
                data["kid_subset"],
                json.loads(str(data["metadata"])),
            )
