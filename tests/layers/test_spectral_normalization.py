"""Tests of SpectralNormalization against NumPy references (Miyato et al. 2018, eq. (8) and (12))."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers.spectral_normalization import SpectralNormalization
from tests.keras_checks import assert_config_round_trip, assert_keras_file_round_trip

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded():
    """Deterministic weights, u and inputs in every test, whatever the test order."""
    global RNG
    RNG = np.random.default_rng(0)
    keras.utils.set_random_seed(0)


# ----------------------------------------------------------------------------------------------------
# NumPy references.


def np_weight_matrix(kernel, transposed):
    """(-1, output units) matrix of a kernel; transposed-conv kernels hold the outputs on axis -2."""
    if transposed:
        kernel = np.swapaxes(kernel, -1, -2)
    return kernel.reshape(-1, kernel.shape[-1])


def np_from_weight_matrix(matrix, shape, transposed):
    """Inverse of `np_weight_matrix`."""
    if transposed:
        moved = (*shape[:-2], shape[-1], shape[-2])
        return np.swapaxes(matrix.reshape(moved), -1, -2)
    return matrix.reshape(shape)


def np_sigma_uv(kernel, u, transposed):
    """sigma = v^T W_mat u with v = W_mat u / ||W_mat u|| (float64)."""
    w_mat = np_weight_matrix(kernel.astype(np.float64), transposed)
    w_u = w_mat @ u.astype(np.float64)
    v = w_u / np.linalg.norm(w_u)
    return float(v @ w_u), v


def np_normalized(kernel, u, transposed):
    sigma, _ = np_sigma_uv(kernel, u, transposed)
    return kernel.astype(np.float64) / sigma


def np_power_iteration(kernel, u, steps, transposed):
    w_mat = np_weight_matrix(kernel.astype(np.float64), transposed)
    u = u.astype(np.float64)
    for _ in range(steps):
        v = w_mat @ u
        v /= np.linalg.norm(v)
        u = w_mat.T @ v
        u /= np.linalg.norm(u)
    return u


def np_sn_gradient(kernel, u, grad_normalized, transposed):
    """dL/dW of L(W / sigma(W)), sigma = v^T W_mat u with u, v constants.

    With W_bar = W / sigma and G = dL/dW_bar: dW_bar_kl/dW_ij = delta_ki delta_lj / sigma
    - W_kl / sigma^2 * dsigma/dW_ij and dsigma/dW_mat = v u^T, so
    dL/dW = (G - <G, W_bar> v u^T) / sigma, with v u^T mapped back to the kernel's layout.
    """
    sigma, v = np_sigma_uv(kernel, u, transposed)
    w_bar = kernel / sigma
    outer = np_from_weight_matrix(np.outer(v, u), kernel.shape, transposed)
    return (grad_normalized - np.sum(grad_normalized * w_bar) * outer) / sigma


def np_conv2d(x, w, b):
    """'valid', stride-1 Conv2D: kernel (kh, kw, in, out)."""
    kh, kw = w.shape[:2]
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = sum(np.einsum("nhwi,io->nhwo", x[:, a:a + oh, c:c + ow], w[a, c])
              for a in range(kh) for c in range(kw))
    return out + b


def np_conv2d_transpose(x, w, b, stride):
    """'valid' Conv2DTranspose, kernel (kh, kw, out, in): input pixel (h, w) feeds stride*(h, w) + (a, c)."""
    kh, kw, out_ch = w.shape[:3]
    n, h, wd = x.shape[:3]
    out = np.zeros((n, (h - 1) * stride + kh, (wd - 1) * stride + kw, out_ch))
    for a in range(kh):
        for c in range(kw):
            out[:, a:a + (h - 1) * stride + 1:stride, c:c + (wd - 1) * stride + 1:stride] += np.einsum(
                "nhwi,oi->nhwo", x, w[a, c])
    return out + b


def np_conv2d_transpose_kernel_grad(x, r, kernel_shape, stride):
    """G[a, c, o, i] = d sum(conv_transpose(x, W) * r) / dW[a, c, o, i]."""
    kh, kw = kernel_shape[:2]
    h, wd = x.shape[1:3]
    grad = np.zeros(kernel_shape)
    for a in range(kh):
        for c in range(kw):
            r_ac = r[:, a:a + (h - 1) * stride + 1:stride, c:c + (wd - 1) * stride + 1:stride]
            grad[a, c] = np.einsum("nhwi,nhwo->oi", x, r_ac)
    return grad


# ----------------------------------------------------------------------------------------------------
# Layers under test: (factory, input, NumPy forward with the normalized weight, transposed kernel?).

CASES = {
    "dense": (lambda **kw: keras.layers.Dense(4, bias_initializer="random_normal", **kw),
              lambda: RNG.normal(size=(3, 6)).astype("float32"),
              lambda x, w, b: x @ w + b, False),
    "conv2d": (lambda **kw: keras.layers.Conv2D(4, 3, bias_initializer="random_normal", **kw),
               lambda: RNG.normal(size=(2, 5, 5, 3)).astype("float32"),
               np_conv2d, False),
    "conv2d_transpose": (
        lambda **kw: keras.layers.Conv2DTranspose(4, 3, strides=2, bias_initializer="random_normal", **kw),
        lambda: RNG.normal(size=(2, 3, 3, 5)).astype("float32"),
        lambda x, w, b: np_conv2d_transpose(x, w, b, 2), True),
    "embedding": (lambda **kw: keras.layers.Embedding(7, 4, **kw),
                  lambda: RNG.integers(0, 7, size=(3, 5)).astype("int32"),
                  lambda x, w, b: w[x], False),
}


def make(case, **layer_kwargs):
    factory, make_input, forward, transposed = CASES[case]
    layer = SpectralNormalization(factory(**layer_kwargs))
    x = make_input()
    layer(x)
    return layer, x, forward, transposed


def weights_of(layer):
    """(kernel, bias or 0, u) as NumPy arrays."""
    inner = layer.layer
    kernel = (inner.embeddings if isinstance(inner, keras.layers.Embedding) else inner.kernel).numpy()
    bias = inner.bias.numpy() if getattr(inner, "bias", None) is not None else 0.0
    return kernel, bias, layer.u.numpy()


def numpy_of(x):
    return keras.ops.convert_to_numpy(x)


# ----------------------------------------------------------------------------------------------------
# Numbers.


@pytest.mark.parametrize("case", list(CASES))
def test_converges_to_unit_spectral_norm_and_matches_numpy(case):
    layer, x, forward, transposed = make(case)
    weight = layer.layer.embeddings if case == "embedding" else layer.layer.kernel
    weight.assign(RNG.normal(size=weight.shape))  # far from normalized, so the test can fail
    kernel, bias, u0 = weights_of(layer)
    np.testing.assert_allclose(np.linalg.norm(u0), 1.0, rtol=1e-6)
    train_step = tf.function(lambda inputs: layer(inputs, training=True))
    for _ in range(50):
        train_output = numpy_of(train_step(x))
    kernel_after, _, u = weights_of(layer)
    np.testing.assert_array_equal(kernel_after, kernel)  # the variable keeps the unnormalized W
    np.testing.assert_allclose(u, np_power_iteration(kernel, u0, 50, transposed), atol=1e-5)

    normalized = numpy_of(layer.normalized_weight())
    np.testing.assert_allclose(normalized, np_normalized(kernel, u, transposed), rtol=1e-5, atol=1e-6)
    top = np.linalg.svd(np_weight_matrix(normalized, transposed), compute_uv=False)[0]
    assert abs(top - 1.0) < 1e-3
    assert np.linalg.svd(np_weight_matrix(kernel, transposed), compute_uv=False)[0] > 1.5
    # The health signal: sigma of the raw weight, ||W_mat u||, which the power iteration drove to the top singular
    # value of W_mat.
    raw = np_weight_matrix(kernel, transposed)
    np.testing.assert_allclose(float(layer.spectral_norm()), np.linalg.norm(raw @ u), rtol=1e-5)
    np.testing.assert_allclose(float(layer.spectral_norm()), np.linalg.svd(raw, compute_uv=False)[0], rtol=1e-3)

    expected = forward(x, np_normalized(kernel, u, transposed), bias)
    np.testing.assert_allclose(numpy_of(layer(x)), expected, rtol=1e-4, atol=1e-5)
    # The training call used the u it stored, so training and inference outputs agree.
    np.testing.assert_allclose(train_output, expected, rtol=1e-4, atol=1e-5)


def test_inference_uses_stored_u_and_changes_no_state():
    layer, x, forward, _ = make("dense")
    kernel, bias, u = weights_of(layer)
    for training in (False, None):
        np.testing.assert_allclose(
            numpy_of(layer(x, training=training)),
            forward(x, np_normalized(kernel, u, False), bias), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(layer.u.numpy(), u)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layer(inputs))
    model.predict(x, verbose=0)
    model(x)
    np.testing.assert_array_equal(layer.u.numpy(), u)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)

    output = numpy_of(layer(x, training=True))
    updated = np_power_iteration(kernel, u, 1, False)
    np.testing.assert_allclose(layer.u.numpy(), updated, atol=1e-6)
    np.testing.assert_allclose(output, forward(x, np_normalized(kernel, updated, False), bias),
                               rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(layer.u.numpy() - u)) > 1e-3
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)


def test_more_power_iterations_per_call():
    layer = SpectralNormalization(keras.layers.Dense(4), power_iterations=3)
    x = RNG.normal(size=(2, 6)).astype("float32")
    layer(x)
    kernel, _, u = weights_of(layer)
    layer(x, training=True)
    np.testing.assert_allclose(layer.u.numpy(), np_power_iteration(kernel, u, 3, False), atol=1e-6)


def finite_difference(f, w, step=1e-6):
    grad = np.zeros_like(w)
    for index in np.ndindex(*w.shape):
        delta = np.zeros_like(w)
        delta[index] = step
        grad[index] = (f(w + delta) - f(w - delta)) / (2 * step)
    return grad


def test_gradient_flows_through_sigma_dense():
    layer, x, _, _ = make("dense")
    kernel, _, u = weights_of(layer)
    r = RNG.normal(size=(3, 4)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) * r)
    grads = tape.gradient(loss, [layer.layer.kernel.value, layer.layer.bias.value])
    grad, grad_bias = [g.numpy() for g in grads]
    np.testing.assert_allclose(grad_bias, r.sum(axis=0), rtol=1e-5)

    g_bar = x.astype(np.float64).T @ r  # dL/dW_bar for L = sum((x W_bar + b) * r)
    expected = np_sn_gradient(kernel, u, g_bar, False)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)
    # It differs from the gradient that ignores sigma's dependence on W.
    _, v = np_sigma_uv(kernel, u, False)
    assert np.max(np.abs(expected - g_bar / np_sigma_uv(kernel, u, False)[0])) > 1e-2

    # The analytic formula itself, against central differences of L(W / (v^T W u)) with u, v fixed.
    numeric = finite_difference(lambda w: np.sum(g_bar * w / (v @ w @ u)), kernel.astype(np.float64))
    np.testing.assert_allclose(expected, numeric, rtol=1e-6, atol=1e-7)


def test_gradient_flows_through_sigma_conv2d_transpose_in_training():
    layer, x, _, _ = make("conv2d_transpose")
    kernel = layer.layer.kernel.numpy()
    r = RNG.normal(size=(2, 7, 7, 4)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * r)
    grad = tape.gradient(loss, layer.layer.kernel.value).numpy()
    u = layer.u.numpy()  # the u this call updated and used
    g_bar = np_conv2d_transpose_kernel_grad(x.astype(np.float64), r.astype(np.float64), kernel.shape, 2)
    np.testing.assert_allclose(grad, np_sn_gradient(kernel, u, g_bar, True), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# Execution contexts.


def copy_of(layer, case, **layer_kwargs):
    """A second layer of the same case with the same weights (u included)."""
    other, x, _, _ = make(case, **layer_kwargs)
    other.set_weights(layer.get_weights())
    return other, x


def test_jit_compile_matches_eager():
    eager, x, _, _ = make("conv2d")
    jitted, _ = copy_of(eager, "conv2d")
    step = tf.function(lambda inputs: jitted(inputs, training=True), jit_compile=True)
    for _ in range(2):
        expected = numpy_of(eager(x, training=True))
        actual = numpy_of(step(x))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jitted.u.numpy(), eager.u.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("how", ["global_policy", "dtype_argument"])
def test_mixed_precision_normalizes_in_float32(how):
    reference, x, _, _ = make("conv2d")
    if how == "global_policy":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        mixed, _ = copy_of(reference, "conv2d")
    else:
        mixed = SpectralNormalization(CASES["conv2d"][0](dtype="mixed_bfloat16"), dtype="mixed_bfloat16")
        mixed(x)
        mixed.set_weights(reference.get_weights())
    reference_output = numpy_of(reference(x, training=True))
    output = mixed(x, training=True)
    assert keras.backend.standardize_dtype(output.dtype) == "bfloat16"
    assert mixed.u.dtype == "float32" and mixed.layer.kernel.dtype == "float32"
    # u came from a float32 power iteration on the float32 kernel (a bfloat16 kernel would be off by ~1e-3).
    np.testing.assert_allclose(mixed.u.numpy(), reference.u.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(numpy_of(mixed.normalized_weight()), numpy_of(reference.normalized_weight()),
                               rtol=0, atol=1e-6)
    assert mixed(keras.Input(x.shape[1:])).dtype == "bfloat16"  # the symbolic output spec agrees
    output = numpy_of(keras.ops.cast(output, "float32"))
    np.testing.assert_allclose(output, reference_output, rtol=0, atol=0.03 * np.abs(reference_output).max())


def test_mirrored_strategy_keeps_u_identical_on_replicas(mirrored_strategy):
    single, _, _, _ = make("dense")
    u0 = single.u.numpy()
    x = RNG.normal(size=(4, 6)).astype("float32")
    with mirrored_strategy.scope():
        replicated = SpectralNormalization(keras.layers.Dense(4))
        replicated.build((None, 6))
    replicated.set_weights(single.get_weights())
    parts = [x[:2], x[2:]]
    inputs = mirrored_strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(parts[context.replica_id_in_sync_group]))

    @tf.function
    def step(inputs):
        return mirrored_strategy.run(lambda t: replicated(t, training=True), args=(inputs,))

    outputs = mirrored_strategy.experimental_local_results(step(inputs))
    expected = numpy_of(single(x, training=True))
    np.testing.assert_allclose(np.concatenate([o.numpy() for o in outputs]), expected, rtol=1e-5, atol=1e-6)
    replica_u = [v.numpy() for v in mirrored_strategy.experimental_local_results(replicated.u.value)]
    assert len(replica_u) == 2
    np.testing.assert_array_equal(replica_u[0], replica_u[1])
    np.testing.assert_allclose(replica_u[0], single.u.numpy(), rtol=0, atol=1e-6)
    assert np.max(np.abs(replica_u[0] - u0)) > 1e-3


def test_outer_stateless_scope_sees_mapped_values_and_receives_updates():
    """As in Keras's JAX trainer: all state comes from, and all updates go to, an outer StatelessScope."""
    layer, x, forward, _ = make("dense")
    kernel, bias, u = weights_of(layer)
    new_kernel = RNG.normal(size=kernel.shape).astype("float32")
    new_bias = RNG.normal(size=bias.shape).astype("float32")
    new_u = RNG.normal(size=u.shape).astype("float32")
    values = {id(layer.layer.kernel): new_kernel, id(layer.layer.bias): new_bias, id(layer.u): new_u}
    mapped = [(var, tf.constant(values[id(var)])) for var in layer.variables]
    r = RNG.normal(size=(3, 4)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch([value for _, value in mapped])
        with keras.StatelessScope(state_mapping=mapped) as scope:
            output = layer(x, training=True)
            loss = tf.reduce_sum(output * r)
    updated_u = np_power_iteration(new_kernel, new_u, 1, False)
    np.testing.assert_allclose(numpy_of(scope.get_current_value(layer.u)), updated_u, atol=1e-6)
    expected = forward(x, np_normalized(new_kernel, updated_u, False), new_bias)
    np.testing.assert_allclose(numpy_of(output), expected, rtol=1e-4, atol=1e-5)
    grad_kernel, grad_bias = tape.gradient(loss, [mapped[1][1], mapped[2][1]])
    np.testing.assert_allclose(grad_bias.numpy(), r.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(grad_kernel.numpy(), np_sn_gradient(new_kernel, updated_u, x.T @ r, False),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(layer.u.numpy(), u)  # the real variables were not touched
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)


def test_wrapped_layer_losses_are_kept():
    layer = SpectralNormalization(keras.layers.Dense(4, activity_regularizer=keras.regularizers.L2(0.1)))
    x = RNG.normal(size=(3, 6)).astype("float32")
    output = numpy_of(layer(x))
    assert len(layer.losses) == 1
    # What Keras makes of the activity regularizer on that output: 0.1 * sum(output ** 2), divided by the batch size
    # in Keras 3.15 but not in 3.8, the oldest Keras setup.py allows.
    reference = keras.layers.Identity(activity_regularizer=keras.regularizers.L2(0.1))
    reference(output)
    np.testing.assert_allclose(numpy_of(layer.losses[0]), numpy_of(reference.losses[0]), rtol=1e-5)
    assert numpy_of(layer.losses[0]) in (pytest.approx(0.1 * np.sum(output ** 2) / 3, rel=1e-5),
                                         pytest.approx(0.1 * np.sum(output ** 2), rel=1e-5))


# ----------------------------------------------------------------------------------------------------
# Validation and serialization.


@pytest.mark.parametrize("kwargs, match", [
    ({"power_iterations": 0}, "power_iterations=0"),
    ({"power_iterations": 1.5}, "power_iterations=1.5"),
    ({"power_iterations": True}, "power_iterations=True"),
    ({"epsilon": 0.0}, "epsilon=0.0"),
    ({"epsilon": -1e-3}, "epsilon=-0.001"),
])
def test_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralNormalization(keras.layers.Dense(2), **kwargs)


def test_rejects_layer_without_weight_to_normalize():
    with pytest.raises(ValueError, match="`kernel` or `embeddings`.*Received: layer=Dropout"):
        SpectralNormalization(keras.layers.Dropout(0.5))(np.zeros((1, 2), "float32"))
    built = keras.layers.LayerNormalization()
    built.build((None, 3))
    with pytest.raises(ValueError, match="Received: layer=LayerNormalization"):
        SpectralNormalization(built)


def test_config_round_trip():
    layer = SpectralNormalization(keras.layers.Conv2DTranspose(4, 3), power_iterations=2, epsilon=1e-8,
                                  name="sn")
    rebuilt = assert_config_round_trip(layer)
    assert rebuilt.power_iterations == 2 and rebuilt.epsilon == 1e-8
    assert isinstance(rebuilt.layer, keras.layers.Conv2DTranspose) and rebuilt.layer.filters == 4


def test_keras_file_round_trip(tmp_path):
    image = keras.Input((6, 6, 3))
    label = keras.Input((), dtype="int32")
    features = SpectralNormalization(keras.layers.Conv2D(4, 3), power_iterations=2)(image)
    logits = SpectralNormalization(keras.layers.Dense(5))(keras.layers.Flatten()(features))
    embedded = SpectralNormalization(keras.layers.Embedding(3, 5))(label)
    model = keras.Model([image, label], keras.layers.Add()([logits, embedded]))
    x = RNG.normal(size=(2, 6, 6, 3)).astype("float32")
    y = np.array([0, 2], "int32")
    for _ in range(3):
        model([x, y], training=True)
    loaded = assert_keras_file_round_trip(model, ([x, y],), tmp_path)
    for original, restored in zip(model.layers, loaded.layers):
        if isinstance(original, SpectralNormalization):
            np.testing.assert_array_equal(restored.u.numpy(), original.u.numpy())
