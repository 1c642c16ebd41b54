"""sagan_tf.sampling.latents: truncated-normal latents, a pure function of (shape, seed, truncation), against SciPy."""

import re

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from sagan_tf.sampling import latents


@pytest.mark.parametrize("truncation", [0.5, 2.0])
def test_truncated_normal_matches_scipy(truncation):
    z = latents.truncated_normal([400, 500], 123, truncation).numpy()
    assert z.dtype == np.float32 and np.abs(z).max() <= truncation
    reference = stats.truncnorm(-truncation, truncation)
    assert stats.kstest(z.ravel(), reference.cdf).statistic < 0.004
    assert abs(z.mean()) < 0.005
    assert abs(z.var() - reference.var()) < 0.005
    np.testing.assert_array_equal(z, latents.truncated_normal([400, 500], 123, truncation).numpy())
    assert np.mean(z != latents.truncated_normal([400, 500], 124, truncation).numpy()) > 0.99


def test_truncated_normal_extremes_stay_finite():
    tiny = latents.truncated_normal([1000], 0, 1e-3).numpy()
    assert np.abs(tiny).max() <= 1e-3 and np.abs(tiny).max() > 0.9e-3
    huge = latents.truncated_normal([100_000], 0, 1e6).numpy()
    assert np.isfinite(huge).all()
    assert stats.kstest(huge, stats.norm.cdf).statistic < 0.01
    # An infinite truncation is no truncation: finite standard-normal latents.
    untruncated = latents.truncated_latents(1000, 100, 0, float("inf")).numpy()
    assert np.isfinite(untruncated).all()
    assert stats.kstest(untruncated.ravel().astype(np.float64), stats.norm.cdf).pvalue > 1e-3


@pytest.mark.parametrize("truncation", [1e-6, 0.3, 0.7, 2.0, 40.0])
def test_truncated_latents_follow_the_truncated_normal(truncation):
    z = latents.truncated_latents(100, 40, seed=5, truncation=truncation).numpy()
    assert z.shape == (100, 40) and z.dtype == np.float32
    assert np.isfinite(z).all() and np.abs(z).max() <= np.float32(truncation)
    # The bound in float64: the float32 truncation generate takes (0.7 -> 0.699999988...), not the Python float.
    bound = float(np.float32(truncation))
    reference = stats.truncnorm(-bound, bound)
    assert stats.kstest(z.ravel().astype(np.float64), reference.cdf).pvalue > 1e-3


def test_truncated_latents_are_a_pure_function_of_their_arguments():
    first = latents.truncated_latents(6, 16, seed=3, truncation=0.8).numpy()
    np.testing.assert_array_equal(first, latents.truncated_latents(6, 16, seed=3, truncation=0.8).numpy())
    # NumPy integers name the same latents as Python ints.
    np.testing.assert_array_equal(first, latents.truncated_latents(np.int64(6), np.int32(16), np.int64(3),
                                                                   np.float32(0.8)).numpy())
    for other in (dict(seed=4, truncation=0.8), dict(seed=3, truncation=0.9), dict(seed=-3, truncation=0.8),
                  dict(seed=3 + 2**32, truncation=0.8)):
        assert np.mean(first != latents.truncated_latents(6, 16, **other).numpy()) > 0.99, other


def test_truncated_latents_are_what_the_generate_graph_draws():
    # GeneratorServingModule traces truncated_normal on an int32 [batch, latent_dim] shape, an int64 seed and a
    # float32 truncation, all tensors; truncated_latents must give those latents bit for bit.
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64),
                                  tf.TensorSpec([], tf.float32)])
    def graph_latents(batch_size, seed, truncation):
        return latents.truncated_normal(tf.stack([batch_size, 8]), seed, truncation)

    for batch, seed, truncation in [(1, 0, 1.0), (5, 11, 0.7), (3, 2**40 + 1, 0.1), (4, -9, 1e-4), (2, 1, 1e30)]:
        expected = graph_latents(tf.constant(batch), tf.constant(seed, tf.int64), tf.constant(truncation)).numpy()
        z = latents.truncated_latents(batch, 8, seed, truncation).numpy()
        np.testing.assert_array_equal(z, expected, err_msg=f"batch={batch} seed={seed} truncation={truncation}")


@pytest.mark.parametrize("kwargs, received", [
    (dict(truncation=0.0), "Received: truncation=0.0"),
    (dict(truncation=-1.0), "Received: truncation=-1.0"),
    (dict(truncation=float("nan")), "Received: truncation=nan"),
    (dict(truncation=1e-50), "Received: truncation=1e-50"),  # 0 in float32, which generate would refuse
    (dict(truncation="0.5"), "Received: truncation='0.5'"),
    (dict(truncation=[0.5]), "Received: truncation=[0.5]"),
    (dict(batch_size=0), "Received: batch_size=0"),
    (dict(batch_size=2.0), "Received: batch_size=2.0"),
    (dict(batch_size=True), "Received: batch_size=True"),
    (dict(latent_dim=0), "Received: latent_dim=0"),
    (dict(seed=1.5), "Received: seed=1.5"),
    (dict(seed=2**63), f"Received: seed={2**63}"),
])
def test_truncated_latents_reject_bad_arguments(kwargs, received):
    args = {**dict(batch_size=2, latent_dim=4, seed=0, truncation=1.0), **kwargs}
    with pytest.raises(ValueError, match=re.escape(received)):
        latents.truncated_latents(**args)


def test_truncated_normal_rejects_a_nonpositive_number():
    with pytest.raises(ValueError, match="Received: truncation=0"):
        latents.truncated_normal([2], 0, 0)
