"""The SAGAN generator."""

import keras
from keras import ops

from sagan_tf.config import as_model_config
from sagan_tf.layers import SelfAttention
from sagan_tf.models import blocks


def make_self_attention(attention_config, dtype, name):
    """A `SelfAttention` layer with the options of a config's `AttentionConfig`."""
    return SelfAttention(
        key_ratio=attention_config.key_ratio,
        value_ratio=attention_config.value_ratio,
        pool_keys=attention_config.pool_keys,
        use_spectral_norm=attention_config.use_spectral_norm,
        use_bias=attention_config.use_bias,
        output_projection=attention_config.output_projection,
        dtype=dtype,
        name=name,
    )


def attention_grid(scores, height, width, pool_keys):
    """Reshapes `SelfAttention` scores (batch, H*W, keys) to (batch, H, W, key_H, key_W)."""
    key_height, key_width = (height // 2, width // 2) if pool_keys else (height, width)
    return ops.reshape(scores, (-1, height, width, key_height, key_width))


@keras.saving.register_keras_serializable(package="sagan_tf")
class Generator(keras.Model):
    """Maps latent vectors (and class labels) to images in [-1, 1].

    Residual block type (official SAGAN code): SN linear z -> base map; up-blocks with (conditional) batch norm;
    self-attention (paper section 3) after the stages named by `g_attention_resolutions`; BN - ReLU - SNconv3x3 -
    tanh. DCGAN block type (heykeetae/Self-Attention-GAN): SN ConvTranspose stages from a 1x1 map of z, BN - ReLU,
    attention, a final ConvTranspose and tanh.

    Args:
      config: a `ModelConfig` (or an `ExperimentConfig`, whose model is used, or the dict form).

    Call args:
      z: float tensor (batch, latent_dim).
      labels: int tensor (batch,) of class ids, or float class weights (batch, num_classes) that blend the classes'
        conditional batch-norm parameters (see `ConditionalBatchNorm`; `sagan_tf.sampling.interpolation`); required when
        the config has classes, ignored otherwise.
      training: batch-norm statistics and spectral-norm power iteration update in training mode only.
      return_attention_scores: also return the attention maps (eq. 1) of every self-attention layer.

    Returns:
      float32 images (batch, image_size, image_size, 3) in [-1, 1]. With `return_attention_scores=True`, the pair
      `(images, scores)` where `scores` is a dict, in forward order, from each attention layer's name to its
      float32 softmax weights of shape (batch, H, W, key_H, key_W): the weight that the query at feature-map
      position (h, w) gives the key at (key_h, key_w). H, W is the layer's feature-map size; the key grid is
      (H / 2, W / 2) when the layer pools its keys (`AttentionConfig.pool_keys`), else (H, W). Each query's
      weights sum to 1.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = as_model_config(config)
        cfg = self.config
        dtype = self.dtype_policy
        norm_args = dict(num_classes=cfg.num_classes, momentum=cfg.batch_norm_momentum,
                         epsilon=cfg.batch_norm_epsilon, synchronized=cfg.synchronized_batch_norm)
        resolutions = cfg.generator_resolutions()
        self.stages = []
        if cfg.block_type == "residual":
            base = cfg.g_base_resolution
            self.input_layer = blocks.spectral_norm(
                keras.layers.Dense(base * base * cfg.g_channels[0], dtype=dtype, name="input_dense"))
            for i, filters in enumerate(cfg.g_channels[1:]):
                self.stages.append(blocks.GeneratorResBlock(filters, dtype=dtype, name=f"block{i + 1}", **norm_args))
            output_momentum = cfg.output_batch_norm_momentum
            self.output_norm = blocks.make_batch_norm(
                0, cfg.batch_norm_momentum if output_momentum is None else output_momentum, cfg.batch_norm_epsilon,
                cfg.synchronized_batch_norm, dtype, name="output_bn")
            self.output_conv = blocks.spectral_norm(blocks.conv(3, 3, dtype, "output_conv"),
                                                    enabled=cfg.output_spectral_norm)
        else:
            self.input_layer = blocks.GeneratorDeconvBlock(cfg.g_channels[0], strides=1, dtype=dtype,
                                                           name="block0", **norm_args)
            for i, filters in enumerate(cfg.g_channels[1:]):
                self.stages.append(blocks.GeneratorDeconvBlock(filters, strides=2, dtype=dtype,
                                                               name=f"block{i + 1}", **norm_args))
            self.output_norm = None
            self.output_conv = blocks.spectral_norm(
                blocks.conv(3, 4, dtype, "output_deconv", strides=2, transpose=True),
                enabled=cfg.output_spectral_norm)
        # attention_layers[i] follows stage i (None: no attention there); the first stage reaching a resolution.
        stage_resolutions = resolutions[1:1 + len(self.stages)]
        self.attention_layers = []
        self._attention_stages = []
        for resolution in cfg.g_attention_resolutions:
            index = stage_resolutions.index(resolution)
            self._attention_stages.append(index)
            self.attention_layers.append(make_self_attention(cfg.attention, dtype, f"attention{resolution}"))

    def build(self, z_shape, labels_shape=None):
        # Build every sublayer by tracing `call` on symbolic inputs, so `.keras` files can load weights into it.
        z = keras.KerasTensor((None, self.config.latent_dim), dtype=self.compute_dtype)
        labels = keras.KerasTensor((None,), dtype="int32")
        self.call(z, labels, training=False)

    def call(self, z, labels=None, training=None, return_attention_scores=False):
        cfg = self.config
        if cfg.conditional and labels is None:
            raise ValueError(f"Generator '{cfg.name}' is class-conditional ({cfg.num_classes} classes): pass labels.")
        if not cfg.conditional:
            labels = None
        z = ops.cast(z, self.compute_dtype)
        if cfg.block_type == "residual":
            h = self.input_layer(z, training=training)
            h = ops.reshape(h, (-1, cfg.g_base_resolution, cfg.g_base_resolution, cfg.g_channels[0]))
        else:
            h = self.input_layer(ops.reshape(z, (-1, 1, 1, cfg.latent_dim)), labels, training=training)
        scores = {}
        for index, stage in enumerate(self.stages):
            h = stage(h, labels, training=training)
            if index in self._attention_stages:
                attention = self.attention_layers[self._attention_stages.index(index)]
                if return_attention_scores:
                    h, layer_scores = attention(h, return_attention_scores=True, training=training)
                    scores[attention.name] = attention_grid(layer_scores, h.shape[1], h.shape[2],
                                                            attention.pool_keys)
                else:
                    h = attention(h, training=training)
        if self.output_norm is not None:
            h = ops.relu(self.output_norm(h, training=training))
        h = self.output_conv(h, training=training)
        images = ops.cast(ops.tanh(h), "float32")
        if return_attention_scores:
            return images, scores
        return images

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
