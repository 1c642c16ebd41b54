"""The SAGAN self-attention (non-local) block."""

import keras
from keras import ops

from sagan_tf.layers.spectral_normalization import SpectralNormalization


@keras.saving.register_keras_serializable(package="sagan_tf")
class SelfAttention(keras.layers.Layer):
    """Self-attention over the spatial positions of an NHWC feature map (SAGAN, section 3).

    With `x` of shape `(batch, H, W, C)`, 1x1 convolutions project `x` to queries
    `f = theta(x)` (`C // key_ratio` channels), keys `g = phi(x)` (`C // key_ratio`) and values
    `h = g(x)` (`C // value_ratio`). The attention map is (eq. 1)

        beta = softmax(s, axis=keys),   s = f g^T     (no 1/sqrt(d) scaling, as in the paper),

    the attended values are `o = beta h` (eq. 2), optionally mapped back to `C` channels by a
    1x1 output convolution, and the block returns (eq. 3)

        y = gamma * o + x,

    with a scalar `gamma` initialised to 0, so a fresh block is the identity. With
    `pool_keys=True` the keys and values are 2x2 max-pooled (stride 2) first, giving `H*W/4`
    keys, as in the official code's `sn_non_local_block_sim`. The defaults reproduce that block
    (theta/phi to C/8, g to C/2, SN 1x1 convolutions without bias, SN output convolution).
    `SelfAttention(value_ratio=1, pool_keys=False, use_spectral_norm=False, use_bias=True,
    output_projection=False)` reproduces the PyTorch `Self_Attn` module of the smaller
    LSUN/CelebA variant (no output convolution, values with C channels).

    The attention logits and the softmax are computed in float32 under mixed precision.

    Args:
      key_ratio: channel reduction of the queries and keys: they have `C // key_ratio` channels.
      value_ratio: channel reduction of the values: they have `C // value_ratio` channels.
        Must be 1 when `output_projection=False`.
      pool_keys: whether to 2x2 max-pool the keys and values (needs even H and W).
      use_spectral_norm: whether to wrap every 1x1 convolution in `SpectralNormalization`.
      use_bias: whether the 1x1 convolutions have biases.
      output_projection: whether to map the attended values back to `C` channels with a 1x1
        convolution before the residual sum.
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
      x: the feature map, shape `(batch, H, W, C)`.
      return_attention_scores: whether to also return the attention map.
      training: passed to the 1x1 convolutions (spectral normalization updates its power-iteration
        vector only in training).

    Returns:
      `y` with the shape of `x`; with `return_attention_scores=True`, the pair `(y, scores)`
      where `scores` (float32) has shape `(batch, H*W, number of keys)` and each row sums to 1.
    """

    def __init__(
        self,
        key_ratio=8,
        value_ratio=2,
        pool_keys=True,
        use_spectral_norm=True,
        use_bias=False,
        output_projection=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg_name, value in (("key_ratio", key_ratio), ("value_ratio", value_ratio)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"Argument `{arg_name}` must be an integer >= 1. "
                    f"Received: {arg_name}={value}"
                )
        if not output_projection and value_ratio != 1:
            raise ValueError(
                "Without an output projection the values must keep all C channels, so "
                "`value_ratio` must be 1 when `output_projection=False`. "
                f"Received: value_ratio={value_ratio}"
            )
        self.key_ratio = key_ratio
        self.value_ratio = value_ratio
        self.pool_keys = bool(pool_keys)
        self.use_spectral_norm = bool(use_spectral_norm)
        self.use_bias = bool(use_bias)
        self.output_projection = bool(output_projection)
        self.supports_masking = False

    def _conv1x1(self, filters, name):
        conv = keras.layers.Conv2D(
            filters,
            kernel_size=1,
            use_bias=self.use_bias,
            name=name,
            dtype=self.dtype_policy,
        )
        if self.use_spectral_norm:
            return SpectralNormalization(conv, name=f"sn_{name}", dtype=self.dtype_policy)
        return conv

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "SelfAttention expects an NHWC feature map of rank 4. "
                f"Received: input_shape={input_shape}"
            )
        _, height, width, channels = input_shape
        if channels is None:
            raise ValueError(
                "The channel dimension of the input must be known. "
                f"Received: input_shape={input_shape}"
            )
        if channels // self.key_ratio < 1 or channels % self.key_ratio:
            raise ValueError(
                f"The number of channels ({channels}) must be a positive multiple of "
                f"`key_ratio` ({self.key_ratio}). Received: input_shape={input_shape}"
            )
        if channels % self.value_ratio:
            raise ValueError(
                f"The number of channels ({channels}) must be divisible by "
                f"`value_ratio` ({self.value_ratio}). Received: input_shape={input_shape}"
            )
        if self.pool_keys and any(d is not None and d % 2 for d in (height, width)):
            raise ValueError(
                "With `pool_keys=True` the keys are 2x2 max-pooled, so the height and width "
                f"must be even. Received: input_shape={input_shape}"
            )
        self._channels = channels
        self._key_channels = channels // self.key_ratio
        self._value_channels = channels // self.value_ratio

        self.theta_conv = self._conv1x1(self._key_channels, "theta")
        self.phi_conv = self._conv1x1(self._key_channels, "phi")
        self.g_conv = self._conv1x1(self._value_channels, "g")
        for conv in (self.theta_conv, self.phi_conv, self.g_conv):
            conv.build(input_shape)
        if self.output_projection:
            self.output_conv = self._conv1x1(channels, "output")
            self.output_conv.build(tuple(input_shape[:3]) + (self._value_channels,))
        else:
            self.output_conv = None
        self.gamma = self.add_weight(
            name="gamma", shape=(), initializer="zeros", trainable=True
        )

    def call(self, x, return_attention_scores=False, training=None):
        batch, height, width = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        queries = self.theta_conv(x, training=training)
        keys = self.phi_conv(x, training=training)
        values = self.g_conv(x, training=training)
        if self.pool_keys:
            keys = ops.max_pool(keys, pool_size=2, strides=2, padding="valid")
            values = ops.max_pool(values, pool_size=2, strides=2, padding="valid")
        queries = ops.reshape(queries, (batch, -1, self._key_channels))
        keys = ops.reshape(keys, (batch, -1, self._key_channels))
        values = ops.reshape(values, (batch, -1, self._value_channels))

        # Logits and softmax in float32: with bfloat16 logits of magnitude ~10 the rounding
        # error alone would move attention weights by several percent.
        logits = ops.matmul(
            ops.cast(queries, "float32"),
            ops.transpose(ops.cast(keys, "float32"), (0, 2, 1)),
        )
        scores = ops.softmax(logits, axis=-1)  # eq. 1: (batch, H*W, keys)
        attended = ops.matmul(ops.cast(scores, values.dtype), values)  # eq. 2
        attended = ops.reshape(attended, (batch, height, width, self._value_channels))
        if self.output_conv is not None:
            attended = self.output_conv(attended, training=training)
        outputs = self.gamma * attended + x  # eq. 3
        if return_attention_scores:
            return outputs, scores
        return outputs

    def get_config(self):
        config = {
            "key_ratio": self.key_ratio,
            "value_ratio": self.value_ratio,
            "pool_keys": self.pool_keys,
            "use_spectral_norm": self.use_spectral_norm,
            "use_bias": self.use_bias,
            "output_projection": self.output_projection,
        }
        return {**super().get_config(), **config}
