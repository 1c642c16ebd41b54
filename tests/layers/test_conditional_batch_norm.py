"""ConditionalBatchNorm against NumPy batch normalization with per-class affine rows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import average_across_replicas, moving_statistics
from sagan_tf.layers.conditional_batch_norm import ConditionalBatchNorm
from tests.keras_checks import assert_config_round_trip, assert_keras_file_round_trip

NUM_CLASSES = 5
EPSILON = 1e-5


def _numpy_cbn(x, labels, gamma, beta, mean=None, variance=None, epsilon=EPSILON):
    """Batch norm over all but the last axis (biased variance) with gamma[labels], beta[labels]."""
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    if mean is None:
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
    row_shape = (-1,) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    g = gamma[labels].reshape(row_shape)
    b = beta[labels].reshape(row_shape)
    return (x - mean) / np.sqrt(variance + epsilon) * g + b


def _layer_with_random_affine(shape, rng, **kwargs):
    layer = ConditionalBatchNorm(NUM_CLASSES, **kwargs)
    layer.build(shape, (shape[0],))
    gamma = rng.uniform(0.5, 2.0, size=layer.gamma.shape).astype("float32")
    beta = rng.normal(size=layer.beta.shape).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer, gamma, beta


def _data(shape, rng, loc=3.0, scale=2.0):
    x = (loc + scale * rng.normal(size=shape)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=shape[0]).astype("int32")
    return x, labels


def _np(t):
    return keras.ops.convert_to_numpy(t)


def test_weights():
    layer = ConditionalBatchNorm(NUM_CLASSES)
    layer(np.zeros((2, 3, 3, 7), "float32"), np.zeros((2,), "int32"))
    assert layer.gamma.shape == (NUM_CLASSES, 7) and layer.beta.shape == (NUM_CLASSES, 7)
    np.testing.assert_array_equal(_np(layer.gamma), 1.0)
    np.testing.assert_array_equal(_np(layer.beta), 0.0)
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]


@pytest.mark.parametrize("shape", [(8, 6), (4, 3, 5, 6)])
def test_training_matches_numpy(shape):
    rng = np.random.default_rng(0)
    x, labels = _data(shape, rng)
    layer, gamma, beta = _layer_with_random_affine(shape, rng, momentum=0.9)
    y = layer(x, labels, training=True)
    np.testing.assert_allclose(y, _numpy_cbn(x, labels, gamma, beta), rtol=1e-4, atol=1e-4)
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(layer.moving_mean, 0.1 * x.mean(axis=axes), rtol=1e-5)
    np.testing.assert_allclose(
        layer.moving_variance, 0.9 + 0.1 * x.astype(np.float64).var(axis=axes), rtol=1e-5
    )


@pytest.mark.parametrize("shape", [(8, 6), (4, 3, 5, 6)])
def test_inference_uses_moving_statistics(shape):
    rng = np.random.default_rng(1)
    momentum = 0.8
    layer, gamma, beta = _layer_with_random_affine(shape, rng, momentum=momentum)
    axes = tuple(range(len(shape) - 1))
    mean, variance = np.zeros(shape[-1]), np.ones(shape[-1])
    for step in range(3):
        x, labels = _data(shape, rng, loc=step)
        layer(x, labels, training=True)
        mean = momentum * mean + (1 - momentum) * x.mean(axis=axes)
        variance = momentum * variance + (1 - momentum) * x.astype(np.float64).var(axis=axes)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, variance, rtol=1e-5)

    x, labels = _data(shape, rng, loc=-1.0)
    y = layer(x, labels, training=False)
    expected = _numpy_cbn(x, labels, gamma, beta, mean, variance)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    # Inference changes no statistics, and differs from batch statistics on this batch.
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-5, atol=1e-6)
    assert np.abs(expected - _numpy_cbn(x, labels, gamma, beta)).max() > 0.1


def test_frozen_layer_uses_moving_statistics():
    rng = np.random.default_rng(2)
    shape = (6, 4)
    layer, gamma, beta = _layer_with_random_affine(shape, rng)
    layer.moving_mean.assign(np.full(4, 0.5, "float32"))
    layer.moving_variance.assign(np.full(4, 2.0, "float32"))
    layer.trainable = False
    x, labels = _data(shape, rng)
    y = layer(x, labels, training=True)
    expected = _numpy_cbn(x, labels, gamma, beta, np.full(4, 0.5), np.full(4, 2.0))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean, 0.5)


@pytest.mark.parametrize("training", [True, False])
def test_classes_get_their_own_affine(training):
    """One example under labels a and b: out_b = gamma_b / gamma_a * (out_a - beta_a) + beta_b."""
    rng = np.random.default_rng(3)
    shape = (2, 3, 3, 4)
    layer, gamma, beta = _layer_with_random_affine(shape, rng)
    example = rng.normal(size=shape[1:]).astype("float32")
    x = np.stack([example, example])
    a, b = 1, 3
    y = _np(layer(x, np.array([a, b], "int32"), training=training)).astype(np.float64)
    predicted_b = gamma[b] / gamma[a] * (y[0] - beta[a]) + beta[b]
    np.testing.assert_allclose(y[1], predicted_b, rtol=1e-5, atol=1e-5)
    assert np.abs(y[1] - y[0]).min() > 1e-3


def test_gradient_reaches_only_the_rows_of_the_labels():
    rng = np.random.default_rng(4)
    shape = (4, 2, 2, 3)
    layer, _, _ = _layer_with_random_affine(shape, rng)
    x, _ = _data(shape, rng)
    labels = np.array([0, 2, 2, 0], "int32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, labels, training=True) ** 2)
    grad_gamma, grad_beta = tape.gradient(loss, [layer.gamma.value, layer.beta.value])
    grad_gamma = tf.convert_to_tensor(grad_gamma).numpy()
    grad_beta = tf.convert_to_tensor(grad_beta).numpy()
    for grad in (grad_gamma, grad_beta):
        assert np.abs(grad[[0, 2]]).min() > 0
        np.testing.assert_array_equal(grad[[1, 3, 4]], 0.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_classes": 0}, "num_classes=0"),
        ({"num_classes": 2.0}, "num_classes=2.0"),
        ({"num_classes": 3, "momentum": 1.0}, "momentum=1.0"),
        ({"num_classes": 3, "momentum": -0.1}, "momentum=-0.1"),
        ({"num_classes": 3, "epsilon": 0.0}, "epsilon=0.0"),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConditionalBatchNorm(**kwargs)


def test_labels_rank_validation():
    layer = ConditionalBatchNorm(3)
    with pytest.raises(ValueError, match=r"labels.shape=\(2, 1\)"):
        layer(np.zeros((2, 4), "float32"), np.zeros((2, 1), "int32"))
    layer(np.zeros((2, 4), "float32"), np.zeros((2,), "int32"))
    with pytest.raises(ValueError, match=r"labels.shape=\(\)"):
        layer(np.zeros((2, 4), "float32"), np.int32(0))


def test_class_weights_blend_the_rows_and_one_hot_rows_are_the_classes():
    rng = np.random.default_rng(11)
    shape = (6, 3, 3, 4)
    layer, gamma, beta = _layer_with_random_affine(shape, rng)
    x, labels = _data(shape, rng)
    t = np.linspace(0.0, 1.0, shape[0])
    weights = np.zeros((shape[0], NUM_CLASSES), "float32")
    weights[np.arange(shape[0]), 1] = 1 - t
    weights[np.arange(shape[0]), 3] += t
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    layer.moving_mean.assign(mean)
    layer.moving_variance.assign(variance)
    blended = keras.ops.convert_to_numpy(layer(x, weights, training=False))
    row_shape = (-1, 1, 1, 4)
    g = (weights.astype(np.float64) @ gamma).reshape(row_shape)
    b = (weights.astype(np.float64) @ beta).reshape(row_shape)
    expected = (x - mean) / np.sqrt(variance + EPSILON) * g + b
    np.testing.assert_allclose(blended, expected, rtol=1e-5, atol=1e-5)
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[labels]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, one_hot, training=False)),
                                  keras.ops.convert_to_numpy(layer(x, labels, training=False)))
    with pytest.raises(ValueError, match=r"class weights of shape \(batch, 5\)"):
        layer(x, np.zeros((6, 4), "float32"))


def test_dynamic_batch():
    rng = np.random.default_rng(5)
    x_in = keras.Input(shape=(3, 3, 4))
    label_in = keras.Input(shape=(), dtype="int32")
    layer = ConditionalBatchNorm(NUM_CLASSES)
    model = keras.Model([x_in, label_in], layer(x_in, label_in))
    gamma = rng.uniform(0.5, 2, size=(NUM_CLASSES, 4)).astype("float32")
    beta = rng.normal(size=(NUM_CLASSES, 4)).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    for batch in (1, 3):
        x, labels = _data((batch, 3, 3, 4), rng)
        y = model([x, labels], training=True)
        np.testing.assert_allclose(y, _numpy_cbn(x, labels, gamma, beta), rtol=1e-4, atol=1e-4)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, 3, 3, 4), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ]
    )
    def serve(x, labels):
        return layer(x, labels, training=False)

    x, labels = _data((3, 3, 3, 4), rng)
    expected = _numpy_cbn(
        x, labels, gamma, beta, _np(layer.moving_mean), _np(layer.moving_variance)
    )
    np.testing.assert_allclose(serve(x, labels), expected, rtol=1e-4, atol=1e-4)


def test_config_round_trip():
    layer = ConditionalBatchNorm(7, momentum=0.9, epsilon=1e-3, synchronized=True, name="cbn")
    rebuilt = assert_config_round_trip(layer)
    assert (rebuilt.num_classes, rebuilt.momentum, rebuilt.epsilon, rebuilt.synchronized) == (
        7,
        0.9,
        1e-3,
        True,
    )


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    x_in = keras.Input(shape=(2, 2, 4))
    label_in = keras.Input(shape=(), dtype="int32")
    layer = ConditionalBatchNorm(NUM_CLASSES, momentum=0.5)
    model = keras.Model([x_in, label_in], layer(x_in, label_in))
    layer.gamma.assign(rng.uniform(0.5, 2, size=(NUM_CLASSES, 4)).astype("float32"))
    layer.beta.assign(rng.normal(size=(NUM_CLASSES, 4)).astype("float32"))
    x, labels = _data((4, 2, 2, 4), rng)
    model([x, labels], training=True)  # non-trivial moving statistics
    loaded = assert_keras_file_round_trip(model, ([x, labels],), tmp_path)
    np.testing.assert_array_equal(_np(loaded.layers[-1].moving_mean), _np(layer.moving_mean))


def test_mixed_precision():
    rng = np.random.default_rng(7)
    shape = (4, 3, 3, 6)
    layer, gamma, beta = _layer_with_random_affine(shape, rng, dtype="mixed_bfloat16")
    # A large offset relative to the spread: statistics in bfloat16 would lose the spread.
    x, labels = _data(shape, rng, loc=40.0, scale=1.0)
    y = layer(x, labels, training=True)
    assert all(v.dtype == "float32" for v in layer.weights)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    # The layer sees the input rounded to bfloat16 (Keras autocasts it); from there on float32.
    x_bf16 = _np(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    expected = _numpy_cbn(x_bf16, labels, gamma, beta)
    y32 = _np(keras.ops.cast(y, "float32"))
    np.testing.assert_allclose(y32, expected, rtol=1e-2, atol=2e-2)
    np.testing.assert_allclose(
        layer.moving_mean, 0.01 * x_bf16.astype(np.float64).mean(axis=(0, 1, 2)), rtol=1e-4
    )


def _run_distributed(strategy, layer, x, labels):
    """A training call on each replica with half of the batch; returns the outputs per replica."""
    halves = np.split(x, 2), np.split(labels, 2)
    dist_x = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(halves[0][ctx.replica_id_in_sync_group])
    )
    dist_labels = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(halves[1][ctx.replica_id_in_sync_group])
    )

    def replica_step(xa, la):
        outputs = layer(xa, la, training=True)
        average_across_replicas(moving_statistics(layer))  # what SAGAN.train_step does at the end of a step
        return outputs

    @tf.function
    def step(a, b):
        return strategy.run(replica_step, args=(a, b))

    return [_np(t) for t in strategy.experimental_local_results(step(dist_x, dist_labels))]


@pytest.mark.parametrize("synchronized", [True, False])
def test_mirrored_strategy(mirrored_strategy, synchronized):
    rng = np.random.default_rng(8)
    shape = (8, 2, 2, 3)
    x, labels = _data(shape, rng)
    x[4:] = 3.0 * x[4:] - 5.0  # replicas see different statistics
    with mirrored_strategy.scope():
        layer, gamma, beta = _layer_with_random_affine(
            shape, rng, momentum=0.5, synchronized=synchronized
        )
    outputs = _run_distributed(mirrored_strategy, layer, x, labels)
    assert len(outputs) == 2
    x64 = x.astype(np.float64)
    axes = (0, 1, 2)
    if synchronized:
        whole = _numpy_cbn(x, labels, gamma, beta)
        expected = [whole[:4], whole[4:]]
        expected_mean = 0.5 * x64.mean(axis=axes)
        expected_variance = 0.5 + 0.5 * x64.var(axis=axes)
    else:
        expected = [
            _numpy_cbn(x[:4], labels[:4], gamma, beta),
            _numpy_cbn(x[4:], labels[4:], gamma, beta),
        ]
        # Each replica writes its own update; averaging them makes every copy their mean.
        expected_mean = 0.5 * (x64[:4].mean(axis=axes) + x64[4:].mean(axis=axes)) / 2
        expected_variance = 0.5 + 0.5 * (x64[:4].var(axis=axes) + x64[4:].var(axis=axes)) / 2
    for actual, wanted in zip(outputs, expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean, expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance, expected_variance, rtol=1e-4)
    for values in (layer.moving_mean.value.values, layer.moving_variance.value.values):
        np.testing.assert_array_equal(_np(values[0]), _np(values[1]))
