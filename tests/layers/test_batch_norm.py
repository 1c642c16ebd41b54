"""BatchNorm against NumPy and Keras's BatchNormalization, and its moving statistics under MirroredStrategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import BatchNorm, average_across_replicas, moving_statistics
from tests.keras_checks import assert_config_round_trip, assert_keras_file_round_trip


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _random_layer(shape, rng, **kwargs):
    layer = BatchNorm(**kwargs)
    layer.build(shape)
    layer.gamma.assign(rng.uniform(0.5, 2.0, shape[-1:]).astype("float32"))
    layer.beta.assign(rng.normal(size=shape[-1:]).astype("float32"))
    return layer


def _numpy_bn(x, gamma, beta, mean=None, variance=None, epsilon=1e-5):
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    if mean is None:
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 5)])
def test_training_and_inference_match_numpy(shape):
    rng = np.random.default_rng(0)
    layer = _random_layer(shape, rng, momentum=0.8)
    gamma, beta = _np(layer.gamma), _np(layer.beta)
    mean, variance = np.zeros(shape[-1]), np.ones(shape[-1])
    axes = tuple(range(len(shape) - 1))
    for step in range(3):
        x = (step + 2.0 * rng.normal(size=shape)).astype("float32")
        np.testing.assert_allclose(layer(x, training=True), _numpy_bn(x, gamma, beta), rtol=1e-4, atol=1e-4)
        mean = 0.8 * mean + 0.2 * x.astype(np.float64).mean(axis=axes)
        variance = 0.8 * variance + 0.2 * x.astype(np.float64).var(axis=axes)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, variance, rtol=1e-5)
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(layer(x, training=False), _numpy_bn(x, gamma, beta, mean, variance), rtol=1e-4,
                               atol=1e-4)
    layer.trainable = False  # a frozen layer uses the moving statistics, also in training
    np.testing.assert_allclose(layer(x, training=True), _numpy_bn(x, gamma, beta, mean, variance), rtol=1e-4,
                               atol=1e-4)


def test_same_function_and_weights_as_keras_batch_normalization():
    rng = np.random.default_rng(1)
    shape = (6, 4, 4, 3)
    ours = _random_layer(shape, rng, momentum=0.9, epsilon=1e-3)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    theirs.build(shape)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    theirs.set_weights(ours.get_weights())
    for training in (True, True, False):
        x = rng.normal(1.0, 3.0, shape).astype("float32")
        np.testing.assert_allclose(ours(x, training=training), theirs(x, training=training), rtol=1e-4, atol=1e-4)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_mixed_precision_normalizes_in_float32():
    rng = np.random.default_rng(2)
    layer = _random_layer((4, 2, 2, 6), rng, dtype="mixed_bfloat16")
    x = (40.0 + rng.normal(size=(4, 2, 2, 6))).astype("float32")  # statistics in bfloat16 would lose the spread
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16" and all(w.dtype == "float32" for w in layer.weights)
    x_bf16 = _np(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    np.testing.assert_allclose(_np(keras.ops.cast(y, "float32")), _numpy_bn(x_bf16, _np(layer.gamma),
                                                                           _np(layer.beta)), rtol=1e-2, atol=2e-2)


def test_argument_validation_and_serialization(tmp_path):
    with pytest.raises(ValueError, match=r"`momentum` must be in \[0, 1\). Received: momentum=1.0"):
        BatchNorm(momentum=1.0)
    with pytest.raises(ValueError, match="`epsilon` must be positive. Received: epsilon=0"):
        BatchNorm(epsilon=0)
    with pytest.raises(ValueError, match="expects inputs of rank >= 2"):
        BatchNorm()(np.zeros((3,), "float32"))
    assert_config_round_trip(BatchNorm(momentum=0.5, epsilon=1e-3, synchronized=True, name="bn"))
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, BatchNorm(momentum=0.5)(inputs))
    x = np.random.default_rng(3).normal(size=(4, 2, 2, 3)).astype("float32")
    model(x, training=True)
    assert_keras_file_round_trip(model, (x,), tmp_path)


@pytest.mark.parametrize("synchronized", [False, True])
def test_replicas_hold_the_same_moving_statistics(mirrored_strategy, synchronized):
    rng = np.random.default_rng(4)
    shape = (8, 2, 2, 3)
    x = rng.normal(size=shape).astype("float32")
    x[4:] = 3.0 * x[4:] - 5.0  # the replicas' halves have different statistics
    with mirrored_strategy.scope():
        layer = _random_layer(shape, rng, momentum=0.5, synchronized=synchronized)
    halves = np.split(x, 2)
    inputs = mirrored_strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group]))

    def replica_step(part):
        outputs = layer(part, training=True)
        average_across_replicas(moving_statistics(layer))
        return outputs

    outputs = mirrored_strategy.experimental_local_results(
        tf.function(lambda t: mirrored_strategy.run(replica_step, args=(t,)))(inputs))
    gamma, beta = _np(layer.gamma), _np(layer.beta)
    x64, axes = x.astype(np.float64), (0, 1, 2)
    if synchronized:  # the global batch's statistics, so the copies agree without averaging
        assert moving_statistics(layer) == []
        expected = np.split(_numpy_bn(x, gamma, beta), 2)
        mean, variance = x64.mean(axis=axes), x64.var(axis=axes)
    else:  # each half normalized by its own statistics; the moving statistics get their mean
        expected = [_numpy_bn(half, gamma, beta) for half in halves]
        mean = (x64[:4].mean(axis=axes) + x64[4:].mean(axis=axes)) / 2
        variance = (x64[:4].var(axis=axes) + x64[4:].var(axis=axes)) / 2
    for actual, wanted in zip(outputs, expected):
        np.testing.assert_allclose(_np(actual), wanted, rtol=1e-4, atol=1e-4)
    for variable, value in ((layer.moving_mean, 0.5 * mean), (layer.moving_variance, 0.5 + 0.5 * variance)):
        copies = [_np(v) for v in variable.value.values]
        np.testing.assert_array_equal(copies[0], copies[1])
        np.testing.assert_allclose(copies[0], value, rtol=1e-4, atol=1e-5)


def test_without_averaging_the_replicas_drift_apart(mirrored_strategy):
    """What `average_across_replicas` is for: a layer's own update keeps a copy per replica."""
    with mirrored_strategy.scope():
        layer = BatchNorm()
        layer.build((4, 3))
    halves = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    inputs = mirrored_strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group]))
    tf.function(lambda t: mirrored_strategy.run(lambda part: layer(part, training=True), args=(t,)))(inputs)
    copies = [_np(v) for v in layer.moving_mean.value.values]
    np.testing.assert_allclose(copies[1] - copies[0], 0.01, rtol=1e-5)
