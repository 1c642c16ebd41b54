"""The streaming accumulators give the one-shot TF-GAN results, in memory that does not grow."""

import numpy as np
import pytest

from sagan_tf.evaluation import metrics


def batches(array, sizes):
    start = 0
    for size in sizes:
        yield array[start : start + size]
        start += size
    assert start == len(array)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_streaming_frechet_equals_one_shot(rng):
    # A large common offset: the shifted sums must keep the covariance exact.
    real = rng.normal(size=(150, 10)) + 1000.0
    fake = rng.normal(scale=1.5, size=(130, 10)) @ rng.normal(size=(10, 10)) + 1000.2
    acc_real, acc_fake = metrics.FrechetAccumulator(), metrics.FrechetAccumulator()
    for b in batches(real, [1, 49, 100]):
        acc_real.update(b)
    for b in batches(fake, [64, 0, 64, 2]):
        acc_fake.update(b.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(acc_real.mean, real.mean(0), rtol=1e-12)
    np.testing.assert_allclose(acc_real.covariance, np.cov(real, rowvar=False), atol=1e-9)
    one_shot = metrics.frechet_distance(real, fake.astype(np.float32).astype(np.float64))
    streamed = acc_fake.frechet_distance(acc_real.mean, acc_real.covariance)
    np.testing.assert_allclose(streamed, one_shot, rtol=1e-7)
    assert acc_real.count == 150 and acc_fake.count == 130


def test_streaming_frechet_errors():
    acc = metrics.FrechetAccumulator()
    with pytest.raises(ValueError, match="at least 2"):
        _ = acc.covariance
    acc.update(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="feature dimension 4"):
        acc.update(np.zeros((3, 5)))


@pytest.mark.parametrize("num_splits", [1, 4])
def test_streaming_inception_score_equals_one_shot(rng, num_splits):
    logits = rng.normal(scale=4.0, size=(90, 11))
    acc = metrics.InceptionScoreAccumulator(num_splits, num_samples=90 if num_splits > 1 else None)
    for b in batches(logits, [7, 30, 1, 52]):  # Batches straddle the split boundaries 22, 45, 67.
        acc.update(b)
    np.testing.assert_allclose(
        acc.split_scores(), metrics.inception_score_splits(logits, num_splits), rtol=1e-10
    )
    np.testing.assert_allclose(acc.result(), metrics.inception_score(logits, num_splits), rtol=1e-10)


def test_streaming_inception_score_needs_the_sample_count_for_splits():
    with pytest.raises(ValueError, match="num_samples"):
        metrics.InceptionScoreAccumulator(num_splits=10)
    acc = metrics.InceptionScoreAccumulator(num_splits=2, num_samples=4)
    acc.update(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="num_samples=4"):
        acc.split_scores()
    with pytest.raises(ValueError, match="More samples"):
        acc.update(np.zeros((2, 5)))


def test_streaming_inception_score_of_confident_logits_is_num_classes():
    acc = metrics.InceptionScoreAccumulator()
    for start in range(0, 60, 8):
        labels = np.arange(start, min(start + 8, 60)) % 6
        acc.update(200.0 * np.eye(6)[labels])
    np.testing.assert_allclose(acc.result(), 6.0, rtol=1e-9)


def test_reservoir_keeps_everything_below_capacity(rng):
    x = rng.normal(size=(30, 3))
    reservoir = metrics.ActivationReservoir(capacity=40, seed=3)
    for b in batches(x, [10, 20]):
        reservoir.update(b)
    np.testing.assert_array_equal(reservoir.samples(shuffle=False), x.astype(np.float32))
    shuffled = reservoir.samples()
    assert not np.array_equal(shuffled, x.astype(np.float32))
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(x.astype(np.float32), axis=0))


def test_reservoir_is_bounded_and_uniform():
    # Row i carries the value i; over many seeds each row should be kept with probability 10 / 100.
    rows = np.arange(100, dtype=np.float32)[:, None]
    kept = np.zeros(100)
    for seed in range(300):
        reservoir = metrics.ActivationReservoir(capacity=10, seed=seed)
        for b in batches(rows, [7, 13, 50, 30]):
            reservoir.update(b)
        samples = reservoir.samples()
        assert samples.shape == (10, 1) and len(np.unique(samples)) == 10
        kept[samples[:, 0].astype(int)] += 1
    frequency = kept / 300
    # Binomial(300, 0.1) has a standard deviation of 0.017 in frequency; halves average 50 rows.
    assert abs(frequency[:50].mean() - 0.1) < 0.01 and abs(frequency[50:].mean() - 0.1) < 0.01
    assert frequency.max() < 0.25 and frequency.min() > 0.01


def test_streaming_metrics_equal_one_shot(rng):
    real = rng.normal(size=(80, 6))
    fake = rng.normal(loc=0.3, size=(70, 6))
    logits = rng.normal(size=(70, 5))
    real_stats = metrics.RealStatistics.from_activations(real, kid_subset_size=100, seed=1)
    acc = metrics.MetricAccumulator(num_splits=2, num_samples=70, kid_capacity=100)
    for f, l in zip(batches(fake, [20, 20, 30]), batches(logits, [20, 20, 30])):
        acc.update(f, l)
    result = acc.result(real_stats)
    np.testing.assert_allclose(result["fid"], metrics.frechet_distance(real, fake), rtol=1e-7)
    np.testing.assert_allclose(result["inception_score"], metrics.inception_score(logits, 2), rtol=1e-10)
    # One KID block (<= 1024 samples): the estimate does not depend on the order of the samples.
    np.testing.assert_allclose(result["kid"], metrics.kernel_distance(real, fake), rtol=1e-5)
