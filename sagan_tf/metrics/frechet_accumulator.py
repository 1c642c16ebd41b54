"""Running mean and covariance of activations, for FID over any number of samples."""

import numpy as np

from sagan_tf.metrics import scores


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
