"""Custom Keras layers of SAGAN: spectral normalization, self-attention, (conditional) batch norm."""

from sagan_tf.layers.batch_norm import BatchNorm, moving_statistics
from sagan_tf.layers.conditional_batch_norm import ConditionalBatchNorm
from sagan_tf.layers.replicas import average_across_replicas
from sagan_tf.layers.self_attention import SelfAttention
from sagan_tf.layers.spectral_normalization import SpectralNormalization, frozen_power_iteration

__all__ = ["BatchNorm", "ConditionalBatchNorm", "SelfAttention", "SpectralNormalization", "average_across_replicas",
           "frozen_power_iteration", "moving_statistics"]
