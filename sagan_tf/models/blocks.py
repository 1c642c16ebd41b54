"""Building blocks of the SAGAN generator and discriminator.

Residual blocks follow the official SAGAN code (brain-research/self-attention-gan); the DCGAN-style stages
follow `sagan_models.py` of heykeetae/Self-Attention-GAN (both summarised in BUILD.md, Reference architectures).
Every convolution and linear layer is spectrally normalized (Miyato et al. 2018; SAGAN section 4.1 applies it to
both G and D).
"""

import keras
from keras import ops

from sagan_tf.layers import BatchNorm, ConditionalBatchNorm, SpectralNormalization


def spectral_norm(layer, enabled=True):
    """Wraps `layer` in `SpectralNormalization` when `enabled`, with the same dtype policy.

    Args:
      layer: a layer with a `kernel` or `embeddings` weight.
      enabled: whether to wrap.

    Returns:
      The wrapped (or the unchanged) layer.
    """
    if not enabled:
        return layer
    return SpectralNormalization(layer, dtype=layer.dtype_policy, name=f"sn_{layer.name}")


def make_batch_norm(num_classes, momentum, epsilon, synchronized, dtype, name):
    """Conditional batch norm (one gamma/beta row per class) when `num_classes > 0`, else plain `BatchNorm`.

    Both keep their moving statistics identical across `tf.distribute` replicas (see `sagan_tf.layers.BatchNorm`).

    Args:
      num_classes: number of classes; 0 for an unconditional model.
      momentum: momentum of the moving statistics.
      epsilon: variance epsilon.
      synchronized: compute batch statistics across replicas.
      dtype: dtype policy of the layer.
      name: layer name.

    Returns:
      A `ConditionalBatchNorm` or a `BatchNorm`.
    """
    if num_classes:
        return ConditionalBatchNorm(num_classes, momentum=momentum, epsilon=epsilon, synchronized=synchronized,
                                    dtype=dtype, name=name)
    return BatchNorm(momentum=momentum, epsilon=epsilon, synchronized=synchronized, dtype=dtype, name=name)


def apply_batch_norm(layer, x, labels, training):
    """Calls a layer made by `make_batch_norm`, passing labels only to conditional batch norm."""
    if isinstance(layer, ConditionalBatchNorm):
        return layer(x, labels, training=training)
    return layer(x, training=training)


def upsample_nearest(x):
    """Nearest-neighbour 2x upsampling of an NHWC map."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def conv(filters, kernel_size, dtype, name, strides=1, padding="same", transpose=False):
    """A Conv2D (or Conv2DTranspose) with the project's defaults (Glorot-uniform kernel, bias)."""
    layer_class = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return layer_class(filters, kernel_size, strides=strides, padding=padding, dtype=dtype, name=name)


class GeneratorResBlock(keras.layers.Layer):
    """Up-sampling residual block of the SAGAN generator.

    main: BN(y) - ReLU - nearest x2 - SNconv3x3 - BN(y) - ReLU - SNconv3x3; shortcut: nearest x2 - SNconv1x1
    (computed as SNconv1x1 - nearest x2, which is the same function).
    BN is conditional on the labels y when the model has classes (official code, `block` in `generator`).

    Args:
      filters: output channels.
      num_classes: number of classes (0: plain batch norm).
      momentum: batch-norm momentum.
      epsilon: batch-norm epsilon.
      synchronized: synchronized batch statistics across replicas.
    """

    def __init__(self, filters, num_classes=0, momentum=0.99, epsilon=1e-5, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_classes = num_classes
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
        dtype = self.dtype_policy
        norm_args = (num_classes, momentum, epsilon, synchronized, dtype)
        self.norm1 = make_batch_norm(*norm_args, name="bn1")
        self.conv1 = spectral_norm(conv(filters, 3, dtype, "conv1"))
        self.norm2 = make_batch_norm(*norm_args, name="bn2")
        self.conv2 = spectral_norm(conv(filters, 3, dtype, "conv2"))
        self.shortcut_conv = spectral_norm(conv(filters, 1, dtype, "shortcut_conv"))

    def call(self, x, labels=None, training=None):
        """Returns the block output at twice the input resolution with `filters` channels."""
        h = ops.relu(apply_batch_norm(self.norm1, x, labels, training))
        h = self.conv1(upsample_nearest(h), training=training)
        h = ops.relu(apply_batch_norm(self.norm2, h, labels, training))
        h = self.conv2(h, training=training)
        # A 1x1 convolution commutes with nearest upsampling: applying it first is the same map at 1/4 the FLOPs.
        return h + upsample_nearest(self.shortcut_conv(x, training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_classes": self.num_classes,
                "momentum": self.momentum, "epsilon": self.epsilon, "synchronized": self.synchronized}


class DiscriminatorResBlock(keras.layers.Layer):
    """Residual block of the SAGAN discriminator (official code, `block` and `optimized_block`).

    Regular block: ReLU - SNconv3x3 - ReLU - SNconv3x3 - [avg-pool 2x2]; shortcut SNconv1x1 - [avg-pool] when it
    downsamples or changes the width, identity otherwise. The first ("optimized") block takes images, so it starts
    with the convolution and pools the shortcut before its 1x1 convolution.

    Args:
      filters: output channels.
      downsample: halve the resolution.
      first: build the optimized first block (always downsamples).
    """

    def __init__(self, filters, downsample=True, first=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.downsample = downsample
        self.first = first
        dtype = self.dtype_policy
        self.conv1 = spectral_norm(conv(filters, 3, dtype, "conv1"))
        self.conv2 = spectral_norm(conv(filters, 3, dtype, "conv2"))
        self.pool = keras.layers.AveragePooling2D(2, dtype=dtype, name="pool") if first or downsample else None
        self.shortcut_conv = None

    def build(self, input_shape):
        if self.first or self.downsample or input_shape[-1] != self.filters:
            self.shortcut_conv = spectral_norm(conv(self.filters, 1, self.dtype_policy, "shortcut_conv"))

    def call(self, x, training=None):
        """Returns the block output (half the resolution when downsampling) with `filters` channels."""
        h = x if self.first else ops.relu(x)
        h = self.conv2(ops.relu(self.conv1(h, training=training)), training=training)
        if self.first:
            return self.pool(h) + self.shortcut_conv(self.pool(x), training=training)
        if self.downsample:
            h = self.pool(h)
        shortcut = x
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_conv(x, training=training)
            if self.downsample:
                shortcut = self.pool(shortcut)
        return h + shortcut

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "downsample": self.downsample,
                "first": self.first}


class GeneratorDeconvBlock(keras.layers.Layer):
    """DCGAN-style generator stage: SN ConvTranspose 4x4 - BN(y) - ReLU (`Generator.l1` to `l4` in
    `sagan_models.py` of heykeetae/Self-Attention-GAN).

    Args:
      filters: output channels.
      strides: 1 for the first stage (1x1 latent to 4x4, 'valid'), 2 for the others (doubles the resolution).
      num_classes: number of classes (0: plain batch norm).
      momentum: batch-norm momentum.
      epsilon: batch-norm epsilon.
      synchronized: synchronized batch statistics across replicas.
    """

    def __init__(self, filters, strides=2, num_classes=0, momentum=0.99, epsilon=1e-5, synchronized=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.num_classes = num_classes
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
        dtype = self.dtype_policy
        padding = "valid" if strides == 1 else "same"
        self.deconv = spectral_norm(conv(filters, 4, dtype, "deconv", strides=strides, padding=padding,
                                         transpose=True))
        self.norm = make_batch_norm(num_classes, momentum, epsilon, synchronized, dtype, name="bn")

    def call(self, x, labels=None, training=None):
        """Returns the stage output."""
        h = self.deconv(x, training=training)
        return ops.relu(apply_batch_norm(self.norm, h, labels, training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "num_classes": self.num_classes, "momentum": self.momentum, "epsilon": self.epsilon,
                "synchronized": self.synchronized}


class DiscriminatorConvBlock(keras.layers.Layer):
    """DCGAN-style discriminator stage: SN Conv 4x4 stride 2 - LeakyReLU (`Discriminator.l1` to `l4` in
    `sagan_models.py` of heykeetae/Self-Attention-GAN).

    Args:
      filters: output channels.
      negative_slope: LeakyReLU slope (0.1 in the reference).
    """

    def __init__(self, filters, negative_slope=0.1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.negative_slope = negative_slope
        self.conv = spectral_norm(conv(filters, 4, self.dtype_policy, "conv", strides=2))

    def call(self, x, training=None):
        """Returns the stage output at half the input resolution."""
        y = self.conv(x, training=training)
        # LeakyReLU written out so that its gradient at exactly 0 is the slope on every backend: `ops.leaky_relu`'s
        # is 0.1 on TensorFlow and 1 on JAX, and DiffAugment's cutout makes exact zeros (a zero-bias conv of a blank
        # patch) at the start of training.
        return ops.where(ops.greater(y, 0), y, y * ops.cast(self.negative_slope, y.dtype))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "negative_slope": self.negative_slope}
