"""The SAGAN training model as `fit` needs it under `tf.distribute.MultiWorkerMirroredStrategy`."""

import keras

from sagan_tf.models.gan import SAGAN


class MultiWorkerSAGAN(SAGAN):
    """SAGAN whose train_step logs have shape (1,), for `fit` under MultiWorkerMirroredStrategy.

    Keras 3.15 reduces fit's per-replica logs across workers with `strategy.reduce("MEAN", value, axis=0)`, which
    fails for scalars ("Invalid reduction dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388).
    A leading axis of length 1 makes that reduction the mean over all replicas, a scalar again.
    """

    def train_step(self, data):
        return {name: keras.ops.reshape(value, (1,)) for name, value in super().train_step(data).items()}
