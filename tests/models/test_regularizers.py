"""sagan_tf.models.regularizers: LeCam's penalty and anchors and BigGAN's orthogonal regularization against NumPy."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from sagan_tf.models import regularizers
from sagan_tf.layers.spectral_normalization import SpectralNormalization
from sagan_tf.models import Generator
from tests.tiny import tiny_model


def test_lecam_penalty_matches_numpy():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=16).astype("float32") * 2, rng.normal(size=16).astype("float32") * 2
    anchor_real, anchor_fake = 0.7, -0.4
    expected = np.maximum(real - anchor_fake, 0) ** 2 + np.maximum(anchor_real - fake, 0) ** 2
    np.testing.assert_allclose(regularizers.lecam_penalty(real, fake, anchor_real, anchor_fake), expected, rtol=1e-6)
    # No gradient reaches the anchors; the logits get 2 relu(D(x) - alpha_F) and -2 relu(alpha_R - D(G(z))).
    real_t, fake_t, anchors = tf.constant(real), tf.constant(fake), tf.Variable([anchor_real, anchor_fake])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real_t, fake_t])
        total = tf.reduce_sum(regularizers.lecam_penalty(real_t, fake_t, anchors[0], anchors[1]))
    assert tape.gradient(total, anchors) is None
    np.testing.assert_allclose(tape.gradient(total, real_t), 2 * np.maximum(real - anchor_fake, 0), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, fake_t), -2 * np.maximum(anchor_real - fake, 0), rtol=1e-6)


def test_lecam_anchors_are_the_bias_corrected_moving_averages():
    anchors = regularizers.LeCamAnchors(decay=0.99)
    assert [float(a) for a in anchors.anchors()] == [0.0, 0.0]  # no history yet
    means = np.random.default_rng(1).normal(size=(30, 2))
    ema = np.zeros(2)
    for t, (real, fake) in enumerate(means, start=1):
        anchors.update(real, fake)
        ema = 0.99 * ema + 0.01 * np.array([real, fake])
        np.testing.assert_allclose([float(a) for a in anchors.anchors()], ema / (1 - 0.99 ** t), rtol=1e-4)
    # After one update the corrected average is that update's means exactly.
    first = regularizers.LeCamAnchors()
    first.update(1.5, -2.0)
    np.testing.assert_allclose([float(a) for a in first.anchors()], [1.5, -2.0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        regularizers.LeCamAnchors(decay=1.0)


def numpy_orthogonal_penalty(filters):
    """||W^T W * (1 - I)||_F^2 for W with one column per filter: `filters` is (number of filters, ...)."""
    w = filters.reshape(len(filters), -1).T.astype(np.float64)
    gram = w.T @ w
    return np.sum((gram * (1 - np.eye(len(gram)))) ** 2)


def test_orthogonal_penalty_matches_numpy_and_its_gradient_is_biggans_direction():
    rng = np.random.default_rng(2)
    kernels = [rng.normal(size=(3, 3, 4, 5)).astype("float32"), rng.normal(size=(6, 7)).astype("float32")]
    expected = sum(numpy_orthogonal_penalty(np.moveaxis(kernel, -1, 0)) for kernel in kernels)
    assert float(regularizers.orthogonal_penalty([(k, -1) for k in kernels])) == pytest.approx(expected, rel=1e-5)
    # Filters on axis -2 (a transposed convolution's kernel): the same penalty as with them moved last.
    moved = [(np.ascontiguousarray(np.swapaxes(kernels[0], -1, -2)), -2), (kernels[1], -1)]
    assert float(regularizers.orthogonal_penalty(moved)) == pytest.approx(expected, rel=1e-5)
    # Orthonormal filters (and any scaling of each) cost nothing: only the off-diagonal inner products count.
    q, _ = np.linalg.qr(rng.normal(size=(9, 4)))
    scaled = (q * [1, 2, 3, 4]).astype("float32")
    assert float(regularizers.orthogonal_penalty([(scaled, -1)])) == pytest.approx(0, abs=1e-9)
    assert float(regularizers.orthogonal_penalty([(scaled.T.copy(), -2)])) == pytest.approx(0, abs=1e-9)
    # The gradient is 4 W (W^T W * (1 - I)): twice BigGAN's released update 2 W (W^T W * (1 - I)).
    variable = tf.Variable(kernels[1])
    with tf.GradientTape() as tape:
        penalty = regularizers.orthogonal_penalty([(variable, -1)])
    w = kernels[1].astype(np.float64)
    expected = 4 * w @ ((w.T @ w) * (1 - np.eye(7)))
    np.testing.assert_allclose(tape.gradient(penalty, variable), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("layer_class", [keras.layers.Conv2D, keras.layers.Conv2DTranspose])
def test_orthogonal_regularization_constrains_the_filters_of_convolutions_and_transposed_ones(layer_class):
    # 3 input channels, 5 filters: the penalty is a 5x5 Gram matrix's, whichever way the kernel is laid out.
    layer = SpectralNormalization(layer_class(5, 4, strides=2, padding="same", use_bias=False))
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    kernel = layer.layer.kernel.numpy()
    # Which axis holds the filters, read from the layer's outputs rather than from its kernel's layout: zeroing the
    # weights of output channel 2 zeroes that channel only.
    axis = [a for a in (-1, -2) if kernel.shape[a] == 5]
    assert len(axis) == 1, kernel.shape
    zeroed = kernel.copy()
    np.moveaxis(zeroed, axis[0], 0)[2] = 0.0
    layer.layer.kernel.assign(zeroed)
    z = keras.ops.convert_to_numpy(layer(x))
    assert np.all(z[..., 2] == 0) and np.all(z[..., [0, 1, 3, 4]] != 0)
    layer.layer.kernel.assign(kernel)
    filters = np.moveaxis(kernel, axis[0], 0)  # (5, ...): filter f makes output channel f
    assert np.abs(y[..., 2]).max() > 0
    chosen = regularizers.orthogonal_kernels(layer)
    assert [(variable.path, axis) for variable, axis in chosen] == [(layer.layer.kernel.path, axis[0])]
    assert float(regularizers.orthogonal_penalty(chosen)) == pytest.approx(numpy_orthogonal_penalty(filters), rel=1e-5)


def test_the_orthogonal_weights_are_the_generators_kernels():
    generator = Generator(tiny_model())
    generator(np.zeros((1, 8), "float32"), np.zeros((1,), "int32"))
    chosen = [variable.path for variable, axis in regularizers.orthogonal_kernels(generator) if axis == -1]
    assert len(chosen) == len(regularizers.orthogonal_kernels(generator))  # no transposed convolutions here
    assert chosen and all(path.endswith("kernel") for path in chosen)
    assert any("input_dense" in path for path in chosen) and any("attention" in path for path in chosen)
    # Not the class-conditional gains and biases (per-class tables), the biases or the attention gamma.
    left_out = {variable.path for variable in generator.trainable_variables} - set(chosen)
    assert any(path.endswith("bn1/gamma") for path in left_out) and all(not p.endswith("kernel") for p in left_out)


def test_a_dcgan_generators_transposed_kernels_are_regularized_over_their_output_channels():
    config = tiny_model(block_type="dcgan", num_classes=0, image_size=32, g_channels=(16, 8, 8),
                        g_attention_resolutions=(8,), d_channels=(8, 8, 16), d_downsample=(True, True, True),
                        d_attention_resolutions=(8,))
    generator = Generator(config)
    generator(np.zeros((1, 8), "float32"), None)
    chosen = regularizers.orthogonal_kernels(generator)
    transposed = [(variable, axis) for variable, axis in chosen if axis == -2]
    # The stages' transposed convolutions: (4, 4, filters, input channels), e.g. 8 -> 16 -> 8 -> 8 -> 3 channels.
    assert [tuple(variable.shape[2:]) for variable, _ in transposed] == [(16, 8), (8, 16), (8, 8), (3, 8)]
    expected = sum(numpy_orthogonal_penalty(np.moveaxis(variable.numpy(), axis, 0)) for variable, axis in chosen)
    assert float(regularizers.orthogonal_penalty(chosen)) == pytest.approx(expected, rel=1e-5)
