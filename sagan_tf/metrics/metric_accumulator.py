"""FID, Inception Score and KID of generated samples, accumulated batch by batch."""

from sagan_tf.metrics import scores
from sagan_tf.metrics.activation_reservoir import ActivationReservoir
from sagan_tf.metrics.frechet_accumulator import FrechetAccumulator
from sagan_tf.metrics.inception_score_accumulator import InceptionScoreAccumulator


class MetricAccumulator:
    """Feeds each batch of (features, logits) of generated images to the three streaming metrics.

    Memory does not grow with the number of samples: O(d^2) for FID, O(num_splits * num_classes) for
    the Inception Score, and `kid_capacity * d` float32 values for KID's reservoir (see the classes).

    Args:
        num_splits: Inception Score splits (needs `num_samples` when > 1).
        num_samples: total number of samples that will be added (optional when num_splits is 1).
        kid_capacity: size of the KID reservoir of generated features (0 disables KID).
        kid_max_block_size: block size of TF-GAN's KID estimator.
        seed: seed of the KID reservoir.

    Example:

        acc = MetricAccumulator(num_splits=10, num_samples=50_000)
        for _ in range(50_000 // 500):
            acc.update(*classifier(generator(noise(500))))
        acc.result(real_statistics)  # {"fid": ..., "inception_score": ..., "kid": ...}
    """

    def __init__(self, num_splits=1, num_samples=None, kid_capacity=10_000, kid_max_block_size=1024, seed=0):
        self.frechet = FrechetAccumulator()
        self.inception = InceptionScoreAccumulator(num_splits, num_samples)
        self.reservoir = ActivationReservoir(kid_capacity, seed) if kid_capacity else None
        self.kid_max_block_size = kid_max_block_size

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

    def result(self, real_statistics):
        """Returns {"fid", "inception_score", "kid"} (Python floats; kid is None when disabled).

        Args:
            real_statistics: the `RealStatistics` of the real data, with the same feature dimension.
        """
        if real_statistics.feature_dim != self.frechet.feature_dim:
            raise ValueError(
                "Real and generated features differ in dimension. Received: "
                f"real={real_statistics.feature_dim}, generated={self.frechet.feature_dim}"
            )
        kid = None
        if self.reservoir is not None and real_statistics.kid_subset.shape[0]:
            kid = scores.kernel_distance(
                real_statistics.kid_subset, self.reservoir.samples(), self.kid_max_block_size
            )
        return {
            "fid": self.frechet.frechet_distance(real_statistics.mean, real_statistics.covariance),
            "inception_score": self.inception.result(),
            "kid": kid,
        }
