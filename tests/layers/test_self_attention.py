"""SelfAttention against a NumPy implementation of SAGAN eqs. 1-3."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers.self_attention import SelfAttention
from sagan_tf.layers.spectral_normalization import SpectralNormalization
from tests.keras_checks import assert_config_round_trip, assert_keras_file_round_trip

# (batch, H, W, C): H != W so that a swapped height and width would show.
SHAPE = (2, 4, 6, 16)


def _effective_conv(conv):
    """(kernel as a (C_in, C_out) matrix, bias or zeros) of a 1x1 conv, with or without SN."""
    if isinstance(conv, SpectralNormalization):
        kernel = keras.ops.convert_to_numpy(conv.normalized_weight())
        inner = conv.layer
    else:
        kernel = keras.ops.convert_to_numpy(conv.kernel)
        inner = conv
    assert kernel.shape[:2] == (1, 1)
    kernel = kernel[0, 0].astype(np.float64)
    bias = np.zeros(kernel.shape[1])
    if inner.use_bias:
        bias = keras.ops.convert_to_numpy(inner.bias).astype(np.float64)
    return kernel, bias


def _max_pool_2x2(a):
    b, h, w, c = a.shape
    return a.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _numpy_attention(layer, x):
    """y = gamma * o + x, o = softmax(f g^T) h (eqs. 1-3), from the layer's effective weights."""
    x = x.astype(np.float64)
    b, h, w, c = x.shape

    def conv(sublayer, inputs):
        kernel, bias = _effective_conv(sublayer)
        return inputs @ kernel + bias

    queries = conv(layer.theta_conv, x)
    keys = conv(layer.phi_conv, x)
    values = conv(layer.g_conv, x)
    if layer.pool_keys:
        keys, values = _max_pool_2x2(keys), _max_pool_2x2(values)
    queries = queries.reshape(b, h * w, -1)
    keys = keys.reshape(b, -1, keys.shape[-1])
    values = values.reshape(b, -1, values.shape[-1])
    logits = queries @ keys.transpose(0, 2, 1)
    scores = np.exp(logits - logits.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    attended = (scores @ values).reshape(b, h, w, -1)
    if layer.output_projection:
        attended = conv(layer.output_conv, attended)
    gamma = float(keras.ops.convert_to_numpy(layer.gamma))
    return gamma * attended + x, scores


def _randomize(layer, rng, gamma=0.7):
    """Random biases (zeros by default would hide bias bugs) and a non-zero gamma."""
    for sub in (layer.theta_conv, layer.phi_conv, layer.g_conv, layer.output_conv):
        if sub is None:
            continue
        inner = sub.layer if isinstance(sub, SpectralNormalization) else sub
        if inner.use_bias:
            inner.bias.assign(rng.normal(size=inner.bias.shape).astype("float32"))
    layer.gamma.assign(gamma)


CASES = [
    # pool_keys, output_projection, use_spectral_norm, use_bias, value_ratio
    (True, True, True, False, 2),  # official sn_non_local_block_sim
    (False, True, True, False, 2),
    (True, True, False, True, 2),
    (True, False, False, True, 1),
    (False, False, False, True, 1),  # Self_Attn of heykeetae/Self-Attention-GAN
]


@pytest.mark.parametrize("pool_keys,output_projection,use_sn,use_bias,value_ratio", CASES)
def test_matches_numpy(pool_keys, output_projection, use_sn, use_bias, value_ratio):
    rng = np.random.default_rng(0)
    x = rng.normal(size=SHAPE).astype("float32")
    layer = SelfAttention(
        key_ratio=4,
        value_ratio=value_ratio,
        pool_keys=pool_keys,
        use_spectral_norm=use_sn,
        use_bias=use_bias,
        output_projection=output_projection,
    )
    layer.build(SHAPE)
    _randomize(layer, rng)
    if use_sn:
        layer(x, training=True)  # moves u away from its initial value
    y, scores = layer(x, return_attention_scores=True, training=False)
    expected_y, expected_scores = _numpy_attention(layer, x)

    keys = SHAPE[1] * SHAPE[2] // (4 if pool_keys else 1)
    assert scores.shape == (SHAPE[0], SHAPE[1] * SHAPE[2], keys)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(y, expected_y, rtol=1e-4, atol=1e-5)
    # The attention term is not negligible, so the comparison above tests it.
    assert np.abs(expected_y - x).max() > 0.1


def test_spectral_norm_wraps_every_conv():
    layer = SelfAttention()
    layer.build((1, 4, 4, 16))
    convs = (layer.theta_conv, layer.phi_conv, layer.g_conv, layer.output_conv)
    assert all(isinstance(c, SpectralNormalization) for c in convs)
    assert [c.layer.filters for c in convs] == [2, 2, 8, 16]
    assert not any(c.layer.use_bias for c in convs)
    plain = SelfAttention(use_spectral_norm=False, value_ratio=1, output_projection=False)
    plain.build((1, 4, 4, 16))
    assert plain.output_conv is None
    assert isinstance(plain.theta_conv, keras.layers.Conv2D)


def test_gamma_is_a_zero_scalar_and_identity_at_init():
    rng = np.random.default_rng(1)
    x = rng.normal(size=SHAPE).astype("float32")
    layer = SelfAttention(key_ratio=4)
    y = layer(x, training=True)
    assert layer.gamma.shape == ()
    assert layer.gamma.name == "gamma"
    assert layer.gamma.trainable
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), x)


def test_gamma_gets_gradient_at_zero():
    """dL/dgamma = sum(w * o) at gamma = 0, so training can switch attention on."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=SHAPE).astype("float32")
    w = rng.normal(size=SHAPE).astype("float32")
    layer = SelfAttention(key_ratio=4, use_spectral_norm=False)
    layer.build(SHAPE)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * w)
    grad = tape.gradient(loss, layer.gamma.value)
    layer.gamma.assign(1.0)
    expected_o = _numpy_attention(layer, x)[0] - x
    np.testing.assert_allclose(float(grad), np.sum(w * expected_o), rtol=1e-4)
    assert abs(float(grad)) > 1e-3


@pytest.mark.parametrize("pool_keys", [True, False])
def test_global_receptive_field(pool_keys):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 8, 8, 16)).astype("float32")
    x_changed = x.copy()
    x_changed[0, 0, 0, :] += 10.0  # large, so that it also wins the 2x2 max-pool
    layer = SelfAttention(key_ratio=4, pool_keys=pool_keys)
    layer.build(x.shape)
    layer.gamma.assign(1.0)
    far = layer(x_changed)[0, -1, -1] - layer(x)[0, -1, -1]
    assert np.abs(keras.ops.convert_to_numpy(far)).max() > 1e-4

    conv = keras.layers.Conv2D(16, 3, padding="same")
    far_conv = conv(x_changed)[0, -1, -1] - conv(x)[0, -1, -1]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(far_conv), 0.0)


@pytest.mark.parametrize("pool_keys", [True, False])
def test_scores_are_distributions(pool_keys):
    rng = np.random.default_rng(4)
    x = (3.0 * rng.normal(size=SHAPE)).astype("float32")
    layer = SelfAttention(key_ratio=2, pool_keys=pool_keys)
    _, scores = layer(x, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    keys = SHAPE[1] * SHAPE[2] // (4 if pool_keys else 1)
    assert scores.shape == (SHAPE[0], SHAPE[1] * SHAPE[2], keys)
    assert scores.dtype == np.float32
    assert (scores >= 0).all()
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,shape,match",
    [
        ({"key_ratio": 0}, None, "key_ratio=0"),
        ({"value_ratio": 0}, None, "value_ratio=0"),
        ({"key_ratio": 2.5}, None, "key_ratio=2.5"),
        ({"value_ratio": 2, "output_projection": False}, None, "value_ratio=2"),
        ({"key_ratio": 8}, (1, 4, 4, 4), r"\(4\).*key_ratio"),
        ({"key_ratio": 8}, (1, 4, 4, 12), r"\(12\).*key_ratio"),
        ({"key_ratio": 1, "value_ratio": 5}, (1, 4, 4, 16), "value_ratio"),
        ({}, (1, 5, 4, 16), r"even.*\(1, 5, 4, 16\)"),
        ({}, (1, 4, 3, 16), r"even.*\(1, 4, 3, 16\)"),
        ({}, (1, 4, 16), "rank 4"),
    ],
)
def test_validation(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        layer = SelfAttention(**kwargs)
        layer(np.zeros(shape, "float32"))


def test_odd_size_allowed_without_pooling():
    layer = SelfAttention(key_ratio=4, pool_keys=False)
    _, scores = layer(np.ones((1, 5, 3, 16), "float32"), return_attention_scores=True)
    assert scores.shape == (1, 15, 15)


def test_dynamic_batch():
    rng = np.random.default_rng(5)
    layer = SelfAttention(key_ratio=4)
    inputs = keras.Input(shape=SHAPE[1:])
    model = keras.Model(inputs, layer(inputs, return_attention_scores=True))
    layer.gamma.assign(0.5)
    for batch in (1, 3):
        x = rng.normal(size=(batch,) + SHAPE[1:]).astype("float32")
        expected_y, expected_scores = _numpy_attention(layer, x)
        y, scores = model(x)
        np.testing.assert_allclose(y, expected_y, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-6)

    @tf.function(input_signature=[tf.TensorSpec((None,) + SHAPE[1:], tf.float32)])
    def serve(x):
        return layer(x)

    x = rng.normal(size=(3,) + SHAPE[1:]).astype("float32")
    np.testing.assert_allclose(serve(x), _numpy_attention(layer, x)[0], rtol=1e-4, atol=1e-5)


def test_config_round_trip():
    layer = SelfAttention(
        key_ratio=4,
        value_ratio=1,
        pool_keys=False,
        use_spectral_norm=False,
        use_bias=True,
        output_projection=False,
        name="attention",
    )
    rebuilt = assert_config_round_trip(layer)
    assert rebuilt.key_ratio == 4 and rebuilt.output_projection is False
    assert_config_round_trip(SelfAttention())


@pytest.mark.parametrize("use_sn", [True, False])
def test_keras_file_round_trip(tmp_path, use_sn):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 4, 4, 16)).astype("float32")
    inputs = keras.Input(shape=(4, 4, 16))
    layer = SelfAttention(key_ratio=4, use_spectral_norm=use_sn, use_bias=True)
    model = keras.Model(inputs, layer(inputs))
    _randomize(layer, rng, gamma=0.5)
    model(x, training=True)  # moves the power-iteration vectors
    loaded = assert_keras_file_round_trip(model, (x,), tmp_path)
    assert float(loaded.layers[-1].gamma.numpy()) == 0.5


def test_mixed_precision():
    rng = np.random.default_rng(7)
    x = rng.normal(size=SHAPE).astype("float32")
    layer = SelfAttention(key_ratio=4, dtype="mixed_bfloat16")
    layer.build(SHAPE)
    layer.gamma.assign(0.5)
    y, scores = layer(x, return_attention_scores=True)
    assert all(v.dtype == "float32" for v in layer.weights)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.sum(scores, axis=-1), 1.0, atol=1e-5)
    expected_y, expected_scores = _numpy_attention(layer, x)
    np.testing.assert_allclose(scores, expected_scores, atol=0.03)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(y, "float32")), expected_y, atol=0.05
    )


def test_mirrored_strategy(mirrored_strategy):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4,) + SHAPE[1:]).astype("float32")
    with mirrored_strategy.scope():
        layer = SelfAttention(key_ratio=4)
        layer.build(x.shape)
        layer.gamma.assign(0.5)
    expected = _numpy_attention(layer, x)[0]
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    dist_x = next(iter(mirrored_strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def step(inputs, training):
        return mirrored_strategy.run(lambda a: layer(a, training=training), args=(inputs,))

    result = step(dist_x, False)
    per_replica = mirrored_strategy.experimental_local_results(result)
    assert len(per_replica) == 2
    np.testing.assert_allclose(np.concatenate(per_replica), expected, rtol=1e-4, atol=1e-5)
    trained = mirrored_strategy.experimental_local_results(step(dist_x, True))
    assert np.isfinite(np.concatenate(trained)).all()
