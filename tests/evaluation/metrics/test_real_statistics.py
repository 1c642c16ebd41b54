"""RealStatistics: computed in one pass, saved/loaded as .npz, cached by (dataset, split, size, classifier)."""

import os

import numpy as np
import pytest

from sagan_tf.evaluation import metrics


@pytest.fixture
def activations():
    return np.random.default_rng(3).normal(size=(120, 5)) * [1.0, 2.0, 3.0, 0.5, 1.0] + 4.0


def test_from_feature_batches_matches_numpy(activations):
    stats = metrics.RealStatistics.from_feature_batches(
        (activations[i : i + 25] for i in range(0, 120, 25)), kid_subset_size=50, seed=0
    )
    assert stats.count == 120 and stats.feature_dim == 5
    np.testing.assert_allclose(stats.mean, activations.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(activations, rowvar=False), atol=1e-10)
    assert stats.kid_subset.shape == (50, 5) and stats.kid_subset.dtype == np.float32
    # The subset consists of real rows.
    rows = {tuple(r) for r in activations.astype(np.float32)}
    assert all(tuple(r) in rows for r in stats.kid_subset)


def test_save_load_round_trip(tmp_path, activations):
    stats = metrics.RealStatistics.from_activations(activations, kid_subset_size=30, metadata={"a": 1})
    path = tmp_path / "sub" / "stats.npz"
    stats.save(path)
    loaded = metrics.RealStatistics.load(path)
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.covariance, stats.covariance)
    np.testing.assert_array_equal(loaded.kid_subset, stats.kid_subset)
    assert loaded.count == 120 and loaded.metadata == {"a": 1}
    assert os.listdir(tmp_path / "sub") == ["stats.npz"]  # No temporary file left behind.


def test_invalid_statistics_raise():
    with pytest.raises(ValueError, match="covariance.shape"):
        metrics.RealStatistics(np.zeros(3), np.zeros((3, 2)), 10)
    with pytest.raises(ValueError, match="count"):
        metrics.RealStatistics(np.zeros(3), np.zeros((3, 3)), 1)
    with pytest.raises(ValueError, match="kid_subset"):
        metrics.RealStatistics(np.zeros(3), np.zeros((3, 3)), 10, kid_subset=np.zeros((4, 2)))


def test_cache_computes_once_per_key(tmp_path, activations):
    cache = metrics.StatisticsCache(tmp_path / "cache")
    calls = []

    def compute():
        calls.append(1)
        return metrics.RealStatistics.from_activations(activations * len(calls), kid_subset_size=10)

    first = cache.get_or_compute("cifar10", "train", 32, "savedmodel:abc", compute)
    second = cache.get_or_compute("cifar10", "train", 32, "savedmodel:abc", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(second.mean, first.mean)
    np.testing.assert_array_equal(second.covariance, first.covariance)
    np.testing.assert_array_equal(second.kid_subset, first.kid_subset)
    assert second.metadata["cache_key"] == {
        "dataset": "cifar10",
        "split": "train",
        "image_size": 32,
        "classifier_id": "savedmodel:abc",
    }
    # Each part of the key matters.
    for key in [
        ("cifar10", "test", 32, "savedmodel:abc"),
        ("cifar10", "train", 64, "savedmodel:abc"),
        ("celeb_a", "train", 32, "savedmodel:abc"),
        ("cifar10", "train", 32, "https://tfhub.dev/x/1"),
    ]:
        cache.get_or_compute(*key, compute)
    assert len(calls) == 5
    assert len(os.listdir(tmp_path / "cache")) == 5
    # A new cache object on the same directory (a new process) still finds the file.
    metrics.StatisticsCache(tmp_path / "cache").get_or_compute("cifar10", "train", 32, "savedmodel:abc", compute)
    assert len(calls) == 5


def test_cache_rejects_a_wrong_compute_fn(tmp_path):
    with pytest.raises(TypeError, match="RealStatistics"):
        metrics.StatisticsCache(tmp_path).get_or_compute("d", "s", 8, "c", lambda: np.zeros(3))
