"""The SAGAN discriminator with a projection head (Miyato & Koyama 2018)."""

import keras
from keras import ops

from sagan_tf.models import blocks
from sagan_tf.config import as_model_config
from sagan_tf.models.generator import make_self_attention


@keras.saving.register_keras_serializable(package="sagan_tf")
class Discriminator(keras.Model):
    """Maps images (and class labels) to one real/fake logit per image.

    Residual block type (official SAGAN code): optimized first block, residual down-blocks, self-attention after the
    stages named by `d_attention_resolutions`, ReLU, global sum pooling, SN linear to one logit. DCGAN block type
    (heykeetae/Self-Attention-GAN): SN Conv 4x4 stride-2 stages with LeakyReLU, attention, a final 4x4 'valid'
    convolution to one logit. When the config has classes, the projection term <SN embedding(y), phi(x)> is added to
    the logit, with phi(x) the globally sum-pooled features of the last stage.

    Args:
      config: a `ModelConfig` (or an `ExperimentConfig`, whose model is used, or the dict form).

    Call args:
      images: float tensor (batch, image_size, image_size, 3) in [-1, 1].
      labels: int tensor (batch,) of class ids; required when the config has classes, ignored otherwise.
      training: spectral-norm power iteration updates in training mode only.

    Returns:
      float32 logits of shape (batch,).
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = as_model_config(config)
        cfg = self.config
        dtype = self.dtype_policy
        self.stages = []
        for i, (filters, downsample) in enumerate(zip(cfg.d_channels, cfg.d_downsample)):
            if cfg.block_type == "residual":
                stage = blocks.DiscriminatorResBlock(filters, downsample=downsample, first=(i == 0), dtype=dtype,
                                                     name=f"block{i}")
            else:
                stage = blocks.DiscriminatorConvBlock(filters, negative_slope=cfg.leaky_relu_slope, dtype=dtype,
                                                      name=f"block{i}")
            self.stages.append(stage)
        if cfg.block_type == "residual":
            output_layer = keras.layers.Dense(1, dtype=dtype, name="output_dense")
        else:
            output_layer = blocks.conv(1, 4, dtype, "output_conv", padding="valid")
        self.output_layer = blocks.spectral_norm(output_layer, enabled=cfg.output_spectral_norm)
        self.embedding = None
        if cfg.conditional:
            self.embedding = blocks.spectral_norm(
                keras.layers.Embedding(cfg.num_classes, cfg.d_channels[-1], embeddings_initializer="glorot_uniform",
                                       dtype=dtype, name="class_embedding"))
        stage_resolutions = cfg.discriminator_resolutions()
        self.attention_layers = []
        self._attention_stages = []
        for resolution in cfg.d_attention_resolutions:
            self._attention_stages.append(stage_resolutions.index(resolution))
            self.attention_layers.append(make_self_attention(cfg.attention, dtype, f"attention{resolution}"))

    def build(self, images_shape, labels_shape=None):
        # Build every sublayer by tracing `call` on symbolic inputs, so `.keras` files can load weights into it.
        size = self.config.image_size
        images = keras.KerasTensor((None, size, size, 3), dtype=self.compute_dtype)
        self.call(images, keras.KerasTensor((None,), dtype="int32"), training=False)

    def call(self, images, labels=None, training=None):
        cfg = self.config
        if cfg.conditional and labels is None:
            raise ValueError(f"Discriminator '{cfg.name}' is class-conditional ({cfg.num_classes} classes): "
                             "pass labels.")
        h = ops.cast(images, self.compute_dtype)
        for index, stage in enumerate(self.stages):
            h = stage(h, training=training)
            if index in self._attention_stages:
                h = self.attention_layers[self._attention_stages.index(index)](h, training=training)
        if cfg.block_type == "residual":
            features = ops.sum(ops.relu(h), axis=(1, 2))
            logits = ops.squeeze(self.output_layer(features, training=training), axis=-1)
        else:
            logits = ops.reshape(self.output_layer(h, training=training), (-1,))
            # The projection's phi(x); an unconditional DCGAN discriminator has no projection to feed.
            features = ops.sum(h, axis=(1, 2)) if self.embedding is not None else None
        if self.embedding is not None:
            class_embedding = self.embedding(labels, training=training)
            logits = logits + ops.sum(class_embedding * features, axis=-1)
        return ops.cast(logits, "float32")

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
