"""A bounded, uniformly random subset of a stream of activations (for KID)."""

import numpy as np

from sagan_tf.metrics import scores


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
