"""Residual and DCGAN blocks against NumPy references built from the layers' effective weights."""

import keras
import numpy as np
import pytest

from sagan_tf.models import blocks
from tests import numpy_reference as ref


def effective(sn_layer):
    """(W / sigma, bias) of a spectrally normalized layer, as NumPy arrays."""
    kernel = keras.ops.convert_to_numpy(sn_layer.normalized_weight())
    bias = sn_layer.layer.bias
    return kernel, (None if bias is None else keras.ops.convert_to_numpy(bias))


def randomize_batch_norm(layer, rng):
    """Random moving statistics and affine parameters, so that inference exercises all of them."""
    for weight in layer.weights:
        shape = weight.shape
        if "variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            weight.assign(rng.normal(size=shape).astype("float32"))


def batch_norm_inference(layer, x, labels):
    """NumPy inference batch norm with a layer's moving statistics and (per-class) gamma/beta."""
    values = {w.path.split("/")[-1]: keras.ops.convert_to_numpy(w) for w in layer.weights}
    gamma, beta = values["gamma"], values["beta"]
    if gamma.ndim == 2:  # conditional: one row per class
        gamma, beta = gamma[labels][:, None, None, :], beta[labels][:, None, None, :]
    return ref.batch_norm(x, values["moving_mean"], values["moving_variance"], gamma, beta, layer.epsilon)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_generator_res_block_matches_numpy(num_classes):
    rng = np.random.default_rng(0)
    block = blocks.GeneratorResBlock(6, num_classes=num_classes, epsilon=1e-3)
    x = rng.normal(size=(2, 4, 4, 5)).astype("float32")
    labels = np.array([0, 2], dtype="int32")
    block(x, labels, training=False)
    randomize_batch_norm(block.norm1, rng)
    randomize_batch_norm(block.norm2, rng)
    actual = keras.ops.convert_to_numpy(block(x, labels, training=False))

    w1, b1 = effective(block.conv1)
    w2, b2 = effective(block.conv2)
    w3, b3 = effective(block.shortcut_conv)
    h = ref.relu(batch_norm_inference(block.norm1, x, labels))
    h = ref.conv2d_same(ref.upsample_nearest(h), w1, b1)
    h = ref.relu(batch_norm_inference(block.norm2, h, labels))
    h = ref.conv2d_same(h, w2, b2)
    expected = h + ref.conv2d_same(ref.upsample_nearest(x), w3, b3)
    assert actual.shape == (2, 8, 8, 6)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "first,downsample,in_channels,filters",
    [(True, True, 3, 6), (False, True, 4, 6), (False, False, 6, 6), (False, False, 4, 6)],
)
def test_discriminator_res_block_matches_numpy(first, downsample, in_channels, filters):
    rng = np.random.default_rng(1)
    block = blocks.DiscriminatorResBlock(filters, downsample=downsample, first=first)
    x = rng.normal(size=(2, 8, 8, in_channels)).astype("float32")
    actual = keras.ops.convert_to_numpy(block(x, training=False))

    w1, b1 = effective(block.conv1)
    w2, b2 = effective(block.conv2)
    h = x if first else ref.relu(x)
    h = ref.conv2d_same(ref.relu(ref.conv2d_same(h, w1, b1)), w2, b2)
    if first:
        w3, b3 = effective(block.shortcut_conv)
        expected = ref.avg_pool2(h) + ref.conv2d_same(ref.avg_pool2(x), w3, b3)
    else:
        if downsample:
            h = ref.avg_pool2(h)
        shortcut = x
        if downsample or in_channels != filters:
            w3, b3 = effective(block.shortcut_conv)
            shortcut = ref.conv2d_same(x, w3, b3)
            if downsample:
                shortcut = ref.avg_pool2(shortcut)
        else:
            assert block.shortcut_conv is None  # identity shortcut, as in the official code
        expected = h + shortcut
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_discriminator_conv_block_matches_numpy():
    rng = np.random.default_rng(2)
    block = blocks.DiscriminatorConvBlock(5, negative_slope=0.1)
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    actual = keras.ops.convert_to_numpy(block(x, training=False))
    kernel, bias = effective(block.conv)
    # TF 'same' padding of a 4x4 stride-2 conv on an even input pads 1 before, so it is the stride-1 'same'
    # convolution sampled at even positions.
    h = ref.conv2d_same(x, kernel, bias)[:, ::2, ::2, :]
    expected = np.where(h > 0, h, 0.1 * h)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_generator_deconv_block_doubles_resolution_and_first_stage_makes_4x4():
    first = blocks.GeneratorDeconvBlock(8, strides=1)
    h = first(np.ones((2, 1, 1, 16), "float32"), training=False)
    assert tuple(h.shape) == (2, 4, 4, 8)
    stage = blocks.GeneratorDeconvBlock(4, strides=2, num_classes=2)
    out = keras.ops.convert_to_numpy(stage(h, np.array([0, 1], "int32"), training=True))
    assert out.shape == (2, 8, 8, 4)
    assert out.min() >= 0.0  # ends with ReLU
    # Training-mode batch norm with gamma=1, beta=0 zero-centres each channel before the ReLU: about half
    # the activations are positive.
    assert 0.2 < (out > 0).mean() < 0.8
