"""Running sums for the Inception Score over any number of samples."""

import numpy as np

from sagan_tf.metrics import scores


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
