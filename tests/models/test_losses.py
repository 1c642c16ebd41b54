"""sagan_tf.models.losses: the adversarial losses against NumPy, and their reduction over the global batch."""

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.models import losses


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=8).astype("float32") * 3, rng.normal(size=8).astype("float32") * 3
    # SAGAN eq. 4.
    np.testing.assert_allclose(losses.hinge_discriminator_loss(real, fake),
                               np.maximum(0, 1 - real) + np.maximum(0, 1 + fake), rtol=1e-6)
    np.testing.assert_allclose(losses.hinge_generator_loss(fake), -fake)
    # Goodfellow et al. 2014, in the log-sigmoid form.
    np.testing.assert_allclose(losses.non_saturating_discriminator_loss(real, fake),
                               -np.log(sigmoid(real)) - np.log(1 - sigmoid(fake)), rtol=1e-5)
    np.testing.assert_allclose(losses.non_saturating_generator_loss(fake), -np.log(sigmoid(fake)), rtol=1e-5)


def test_the_table_and_unknown_names():
    assert losses.get_losses("hinge") == (losses.hinge_discriminator_loss, losses.hinge_generator_loss)
    assert sorted(losses.LOSSES) == ["hinge", "non_saturating"]
    with pytest.raises(ValueError, match="Known losses: hinge, non_saturating"):
        losses.get_losses("wasserstein")


def test_global_mean_divides_by_the_global_batch():
    values = np.arange(6, dtype="float32")
    np.testing.assert_allclose(losses.global_mean(values, 12), values.sum() / 12, rtol=1e-6)
    assert losses.global_mean(np.array([1, 2], "int32"), 4).dtype == "float32"


def test_global_mean_summed_over_replicas_is_the_global_batch_mean(mirrored_strategy):
    # What tf.distribute does with gradients: each replica's value is summed. Each replica holds half the batch.
    values = np.random.default_rng(1).normal(size=8).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(values).batch(8)
    batch = next(iter(mirrored_strategy.experimental_distribute_dataset(dataset)))
    per_replica = mirrored_strategy.run(lambda x: losses.global_mean(x, 8), args=(batch,))
    shards = [t.numpy() for t in mirrored_strategy.experimental_local_results(batch)]
    assert [len(s) for s in shards] == [4, 4]
    total = mirrored_strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    np.testing.assert_allclose(total.numpy(), values.mean(), rtol=1e-6)
    # A per-replica mean (ops.mean) would come out twice as large after the sum (BUILD.md fact 4).
    naive = mirrored_strategy.run(lambda x: tf.reduce_mean(x), args=(batch,))
    np.testing.assert_allclose(mirrored_strategy.reduce(tf.distribute.ReduceOp.SUM, naive, axis=None).numpy(),
                               2 * values.mean(), rtol=1e-5)
