"""Batch normalization whose moving statistics can be kept identical across `tf.distribute` replicas."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sagan_tf")
class BatchNorm(keras.layers.Layer):
    """Batch normalization (Ioffe & Szegedy 2015) of a channels-last input, with one gamma/beta per channel.

        out = gamma * (x - mean) / sqrt(variance + epsilon) + beta,

    where `mean` and `variance` are per-channel statistics over all other axes: those of the batch in training
    (biased variance, as in `keras.layers.BatchNormalization`) and the moving averages at inference,

        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + variance * (1 - momentum).

    The normalization runs in float32 under mixed precision; the output has the layer's compute dtype. A layer with
    `trainable=False` always uses the moving statistics. The weights (gamma, beta, moving_mean, moving_variance, in
    this order) are those of `keras.layers.BatchNormalization`.

    Under a `tf.distribute` strategy (what differs from `keras.layers.BatchNormalization`, whose replicas drift
    apart and whose checkpoint keeps replica 0's statistics):

    - `synchronized=False` (the SAGAN paper's per-tower normalization): each replica normalizes with the statistics
      of its own sub-batch and updates its own copy of the moving statistics, with no cross-replica step inside the
      layer (so the layer also runs inside a per-replica XLA computation). After the training step,
      `sagan_tf.layers.average_across_replicas(moving_statistics(model))` makes every copy the mean of the replicas'
      copies: since the update is linear in the batch statistics, that is exactly the update with the replicas'
      mean statistics, and every replica then holds the same values. `SAGAN.train_step` does this once per step
      for all its batch norms, in one batched all-reduce.
    - `synchronized=True`: the batch statistics are those of the global batch (per-replica sums, sums of squares
      and counts all-reduced by `keras.ops.moments(..., synchronized=True)`), so every replica computes the same
      update and the copies agree without any further step (TensorFlow backend only).

    Args:
      momentum: momentum of the moving averages, in [0, 1).
      epsilon: small positive float added to the variance.
      synchronized: compute the batch statistics over the replicas of the current `tf.distribute` strategy.
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
      x: inputs of shape `(batch, C)` or `(batch, H, W, C)` (any rank >= 2, channels last).
      training: whether to normalize with the batch statistics and update the moving averages.

    Returns:
      The normalized tensor, with the shape of `x`.
    """

    def __init__(self, momentum=0.99, epsilon=1e-5, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Argument `momentum` must be in [0, 1). Received: momentum={momentum}")
        if not epsilon > 0.0:
            raise ValueError(f"Argument `epsilon` must be positive. Received: epsilon={epsilon}")
        if synchronized and keras.backend.backend() != "tensorflow":
            raise ValueError("Argument `synchronized=True` is only supported with the TensorFlow backend. "
                             f"Received: synchronized={synchronized}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.synchronized = bool(synchronized)

    def build(self, x_shape):
        self._build_statistics(x_shape)

    def _build_statistics(self, x_shape, affine_shape=()):
        """Adds gamma and beta of shape `affine_shape + (C,)`, then the moving statistics of shape (C,)."""
        if len(x_shape) < 2 or x_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} expects inputs of rank >= 2 with a known last (channel) "
                             f"dimension. Received: x_shape={x_shape}")
        channels = x_shape[-1]
        shape = tuple(affine_shape) + (channels,)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones", autocast=False)
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros", autocast=False)
        # Aggregation "none": under tf.distribute each replica assigns its own copy (see the class docstring).
        self.moving_mean = self.add_weight(name="moving_mean", shape=(channels,), initializer="zeros",
                                           trainable=False, autocast=False, aggregation="none")
        self.moving_variance = self.add_weight(name="moving_variance", shape=(channels,), initializer="ones",
                                               trainable=False, autocast=False, aggregation="none")
        self._reduction_axes = list(range(len(x_shape) - 1))

    @property
    def moving_statistics(self):
        """[moving_mean, moving_variance]: the variables a training step updates."""
        return [self.moving_mean, self.moving_variance]

    def _normalize(self, x, training, affine):
        """(x - mean) / sqrt(variance + epsilon) * gamma + beta in float32, with `affine(rank)` -> (gamma, beta)
        broadcastable to x; updates the moving statistics in training."""
        inputs = ops.cast(x, "float32")
        if training and self.trainable:
            mean, variance = ops.moments(inputs, axes=self._reduction_axes, synchronized=self.synchronized)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            mean = ops.convert_to_tensor(self.moving_mean)
            variance = ops.convert_to_tensor(self.moving_variance)
        gamma, beta = affine(len(inputs.shape))
        outputs = (inputs - mean) * (ops.rsqrt(variance + self.epsilon) * gamma) + beta
        return ops.cast(outputs, self.compute_dtype)

    def call(self, x, training=None):
        return self._normalize(x, training, lambda rank: (self.gamma, self.beta))

    def compute_output_shape(self, x_shape):
        return tuple(x_shape)

    def get_config(self):
        config = {"momentum": self.momentum, "epsilon": self.epsilon, "synchronized": self.synchronized}
        return {**super().get_config(), **config}


def moving_statistics(network):
    """The moving statistics of every `BatchNorm` (and `ConditionalBatchNorm`) layer of `network` whose replicas
    need averaging after a training step (`synchronized=False`; see `BatchNorm`)."""
    return [variable for layer in network._flatten_layers(include_self=True)
            if isinstance(layer, BatchNorm) and not layer.synchronized and layer.built
            for variable in layer.moving_statistics]
