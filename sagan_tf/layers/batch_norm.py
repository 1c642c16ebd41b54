"""Batch normalization whose moving statistics can be kept identical across `tf.distribute` replicas, and that
normalizes each device's piece of the batch on its own under a `keras.distribution` (as each replica does)."""

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
      update and the copies agree without any further step.

    Under a `keras.distribution` on JAX (e.g. `DataParallel`), where one program sees the global batch and the
    distribution splits it over `device_groups()` devices, the layer computes the same as a `tf.distribute`
    strategy with that many replicas: with `synchronized=False` the batch, reshaped to (devices, batch / devices,
    ...), is normalized one piece at a time with that piece's statistics, and the moving statistics are updated
    with the mean of the pieces' statistics (what averaging the replicas' updates gives); with `synchronized=True`
    the statistics are those of the global batch. Training batches must then be a multiple of the device count.

    Args:
      momentum: momentum of the moving averages, in [0, 1).
      epsilon: small positive float added to the variance.
      synchronized: compute the batch statistics over the replicas of the current `tf.distribute` strategy (or the
        devices of the current `keras.distribution`) instead of each replica's (device's) piece of the batch.
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
        groups = 1 if self.synchronized else device_groups()
        if training and self.trainable and groups > 1:
            mean, variance, batch_mean, batch_variance = self._piecewise_moments(inputs, groups)
            self._update_moving_statistics(batch_mean, batch_variance)
        elif training and self.trainable:
            mean, variance = ops.moments(inputs, axes=self._reduction_axes,
                                         synchronized=self.synchronized and keras.backend.backend() == "tensorflow")
            self._update_moving_statistics(mean, variance)
        else:
            mean = ops.convert_to_tensor(self.moving_mean)
            variance = ops.convert_to_tensor(self.moving_variance)
        gamma, beta = affine(len(inputs.shape))
        outputs = (inputs - mean) * (ops.rsqrt(variance + self.epsilon) * gamma) + beta
        return ops.cast(outputs, self.compute_dtype)

    def _piecewise_moments(self, inputs, groups):
        """(mean, variance) of each of `groups` equal pieces of the batch, repeated for each example of the piece
        (shape (batch, 1, ..., C)), and the mean of the pieces' means and variances (shape (C,))."""
        batch = inputs.shape[0]
        if batch is None or batch % groups:
            raise ValueError(
                f"{type(self).__name__} normalizes each of the {groups} devices' pieces of the batch on its own "
                f"(keras.distribution, synchronized=False), so a training batch must be a multiple of {groups}. "
                f"Received: batch={batch}")
        pieces = ops.reshape(inputs, (groups, batch // groups) + tuple(inputs.shape[1:]))
        mean, variance = ops.moments(pieces, axes=[axis + 1 for axis in self._reduction_axes])  # (groups, C)
        per_example = (batch,) + (1,) * (len(inputs.shape) - 2) + (inputs.shape[-1],)
        return (ops.reshape(ops.repeat(mean, batch // groups, axis=0), per_example),
                ops.reshape(ops.repeat(variance, batch // groups, axis=0), per_example),
                ops.mean(mean, axis=0), ops.mean(variance, axis=0))

    def _update_moving_statistics(self, mean, variance):
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))

    def call(self, x, training=None):
        return self._normalize(x, training, lambda rank: (self.gamma, self.beta))

    def compute_output_shape(self, x_shape):
        return tuple(x_shape)

    def get_config(self):
        config = {"momentum": self.momentum, "epsilon": self.epsilon, "synchronized": self.synchronized}
        return {**super().get_config(), **config}


def device_groups():
    """How many devices the active `keras.distribution` splits each (global) batch over on JAX, where one program
    sees the whole batch: its mesh's size along the batch axis. 1 without one, and on TensorFlow, where each
    `tf.distribute` replica runs on its own piece of the batch."""
    distribution = keras.distribution.distribution()
    if (keras.backend.backend() != "jax" or distribution is None
            or getattr(distribution, "batch_dim_name", None) is None):
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[list(mesh.axis_names).index(distribution.batch_dim_name)]


def moving_statistics(network):
    """The moving statistics of every `BatchNorm` (and `ConditionalBatchNorm`) layer of `network` whose replicas
    need averaging after a training step (`synchronized=False`; see `BatchNorm`)."""
    return [variable for layer in network._flatten_layers(include_self=True)
            if isinstance(layer, BatchNorm) and not layer.synchronized and layer.built
            for variable in layer.moving_statistics]
