"""Class-conditional batch normalization."""

import keras
from keras import ops

from sagan_tf.layers.batch_norm import BatchNorm


@keras.saving.register_keras_serializable(package="sagan_tf")
class ConditionalBatchNorm(BatchNorm):
    """Batch normalization with one learned scale/offset row per class (SAGAN generator).

    For an input `x` with channels last and integer labels `y` (one per example),

        out = gamma[y] * (x - mean) / sqrt(variance + epsilon) + beta[y],

    where `mean` and `variance` are per-channel statistics over all other axes: those of the
    batch in training (biased variance, as in `keras.layers.BatchNormalization`) and the moving
    averages at inference (see `BatchNorm`, whose moving statistics and replica semantics it
    shares). The conditional affine parameters are the class-conditional batch
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

    Under `tf.distribute` the moving statistics behave as `BatchNorm`'s: with
    `synchronized=True` the batch statistics are those of the global batch and every replica
    stays identical; with `synchronized=False` each replica uses its own sub-batch and
    `sagan_tf.layers.average_across_replicas` makes the copies agree after the step. Under a
    `keras.distribution` on JAX each device's piece of the batch is normalized on its own the
    same way (see `BatchNorm`).

    Args:
      num_classes: number of classes (rows of `gamma` and `beta`).
      momentum: momentum of the moving averages, in [0, 1).
      epsilon: small positive float added to the variance.
      synchronized: whether to compute batch statistics across replicas (or the devices of a
        `keras.distribution`) instead of each one's piece of the batch.
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
        super().__init__(momentum=momentum, epsilon=epsilon, synchronized=synchronized, **kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                "Argument `num_classes` must be an integer >= 1. "
                f"Received: num_classes={num_classes}"
            )
        self.num_classes = num_classes

    def build(self, x_shape, labels_shape):
        _check_labels_shape(labels_shape, self.num_classes)
        self._build_statistics(x_shape, affine_shape=(self.num_classes,))

    def call(self, x, labels, training=None):
        _check_labels_shape(labels.shape, self.num_classes)

        def affine(rank):
            # (batch, C) rows, broadcast over the spatial axes.
            row_shape = (-1,) + (1,) * (rank - 2) + (self.gamma.shape[-1],)
            if len(labels.shape) == 2:
                weights = ops.cast(labels, "float32")
            else:
                # A one-hot matmul, not a gather: the gains' gradient is then dense on every backend. A gather's is
                # a tf.IndexedSlices on TensorFlow, whose rows Keras's Adam squares one by one before their sum
                # (sum of g_i^2 instead of (sum of g_i)^2 in the second moment of a class seen several times).
                weights = ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype="float32")
            return (ops.reshape(ops.matmul(weights, self.gamma), row_shape),
                    ops.reshape(ops.matmul(weights, self.beta), row_shape))

        return self._normalize(x, training, affine)

    def compute_output_shape(self, x_shape, labels_shape):
        return tuple(x_shape)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _check_labels_shape(labels_shape, num_classes):
    if len(labels_shape) == 1:
        return
    if len(labels_shape) == 2 and labels_shape[-1] in (None, num_classes):
        return
    raise ValueError(
        "ConditionalBatchNorm expects integer labels of shape (batch,) or class weights of shape "
        f"(batch, {num_classes}). Received: labels.shape={tuple(labels_shape)}"
    )
