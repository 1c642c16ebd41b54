"""Custom Keras layers of SAGAN: spectral normalization, self-attention, conditional batch norm."""

from sagan_tf.layers.conditional_batch_norm import ConditionalBatchNorm
from sagan_tf.layers.self_attention import SelfAttention
from sagan_tf.layers.spectral_normalization import SpectralNormalization

__all__ = ["ConditionalBatchNorm", "SelfAttention", "SpectralNormalization"]
