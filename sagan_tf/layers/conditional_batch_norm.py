"""Class-conditional batch normalization."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sagan_tf")
class ConditionalBatchNorm(keras.layers.Layer):
    """Batch normalization with one learned scale/offset row per class (SAGAN generator).

    For an input `x` with channels last and integer labels `y` (one per example),

        out = gamma[y] * (x - mean) / sqrt(variance + epsilon) + beta[y],

    where `mean` and `variance` are per-channel statistics over all other axes: those of the
    batch in training (biased variance, as in `keras.layers.BatchNormalization`) and the moving
    averages at inference. The conditional affine parameters are the class-conditional batch
    norm of de Vries et al. (2017) and Miyato & Koyama (2018) that SAGAN's generator uses
    (paper section 5; official code `ConditionalBatchNorm`). Labels may also be class weights
    `w` of shape `(batch, num_classes)`: then the rows are blended, `gamma = w @ gamma_table` and
    `beta = w @ beta_table`, so a one-hot row is its class and `(1 - t) e_a + t e_b` interpolates
    between classes a and b (as BigGAN interpolates its class embeddings). The moving averages
    follow Keras:

        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + variance * (1 - momentum)

    As in Keras's `BatchNormalization`, a layer with `trainable=False` always uses the moving
    statistics. The normalization runs in float32 under mixed precision; the output has the
    layer's compute dtype.

    With `synchronized=True` the batch statistics are all-reduced over the replicas of the
    current `tf.distribute` strategy (`keras.ops.moments(..., synchronized=True)`, which sums
    per-replica sums, sums of squares and counts), so each replica normalizes with the
    statistics of the global batch. With `synchronized=False` each replica uses its own
    sub-batch; the moving averages are then averaged over replicas when they are written.

    Args:
      num_classes: number of classes (rows of `gamma` and `beta`).
      momentum: momentum of the moving averages, in [0, 1).
      epsilon: small positive float added to the variance.
      synchronized: whether to compute batch statistics across replicas (TensorFlow
        backend only).
      **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
      x: inputs of shape `(batch, C)` or `(batch, H, W, C)` (any rank >= 2, channels last).
      labels: integer class labels of shape `(batch,)`, or float class weights of shape
        `(batch, num_classes)` (see above).
      training: whether to normalize with the batch statistics and update the moving averages.

    Returns:
      The normalized tensor, with the shape of `x`.
    """

    def __init__(self, num_classes, momentum=0.99, epsilon=1e-5, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                "Argument `num_classes` must be an integer >= 1. "
                f"Received: num_classes={num_classes}"
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"Argument `momentum` must be in [0, 1). Received: momentum={momentum}"
            )
        if not epsilon > 0.0:
            raise ValueError(f"Argument `epsilon` must be positive. Received: epsilon={epsilon}")
        if synchronized and keras.backend.backend() != "tensorflow":
            raise ValueError(
                "Argument `synchronized=True` is only supported with the TensorFlow backend. "
                f"Received: synchronized={synchronized}"
            )
        self.num_classes = num_classes
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.synchronized = bool(synchronized)

    def build(self, x_shape, labels_shape):
        if len(x_shape) < 2 or x_shape[-1] is None:
            raise ValueError(
                "ConditionalBatchNorm expects inputs of rank >= 2 with a known last (channel) "
                f"dimension. Received: x_shape={x_shape}"
            )
        _check_labels_shape(labels_shape, self.num_classes)
        channels = x_shape[-1]
        self.gamma = self.add_weight(
            name="gamma",
            shape=(self.num_classes, channels),
            initializer="ones",
            autocast=False,
        )
        self.beta = self.add_weight(
            name="beta",
            shape=(self.num_classes, channels),
            initializer="zeros",
            autocast=False,
        )
        # aggregation="mean": under a tf.distribute strategy each replica assigns its own
        # update in replica context; the written value is the mean over replicas.
        self.moving_mean = self.add_weight(
            name="moving_mean",
            shape=(channels,),
            initializer="zeros",
            trainable=False,
            autocast=False,
            aggregation="mean",
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            shape=(channels,),
            initializer="ones",
            trainable=False,
            autocast=False,
            aggregation="mean",
        )
        self._reduction_axes = list(range(len(x_shape) - 1))

    def call(self, x, labels, training=None):
        _check_labels_shape(labels.shape, self.num_classes)
        inputs = ops.cast(x, "float32")
        if training and self.trainable:
            mean, variance = ops.moments(
                inputs, axes=self._reduction_axes, synchronized=self.synchronized
            )
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            mean = ops.convert_to_tensor(self.moving_mean)
            variance = ops.convert_to_tensor(self.moving_variance)

        # (batch, C) rows, broadcast over the spatial axes.
        row_shape = (-1,) + (1,) * (len(inputs.shape) - 2) + (inputs.shape[-1],)
        if len(labels.shape) == 2:
            weights = ops.cast(labels, "float32")
            gamma = ops.reshape(ops.matmul(weights, self.gamma), row_shape)
            beta = ops.reshape(ops.matmul(weights, self.beta), row_shape)
        else:
            labels = ops.cast(labels, "int32")
            gamma = ops.reshape(ops.take(self.gamma, labels, axis=0), row_shape)
            beta = ops.reshape(ops.take(self.beta, labels, axis=0), row_shape)

        outputs = (inputs - mean) * (ops.rsqrt(variance + self.epsilon) * gamma) + beta
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, x_shape, labels_shape):
        return tuple(x_shape)

    def get_config(self):
        config = {
            "num_classes": self.num_classes,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "synchronized": self.synchronized,
        }
        return {**super().get_config(), **config}


def _check_labels_shape(labels_shape, num_classes):
    if len(labels_shape) == 1:
        return
    if len(labels_shape) == 2 and labels_shape[-1] in (None, num_classes):
        return
    raise ValueError(
        "ConditionalBatchNorm expects integer labels of shape (batch,) or class weights of shape "
        f"(batch, {num_classes}). Received: labels.shape={tuple(labels_shape)}"
    )
