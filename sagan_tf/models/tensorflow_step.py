"""The SAGAN train step on the TensorFlow backend: `tf.GradientTape` updates under `tf.distribute` replicas.

`SAGAN` (sagan_tf/models/gan.py) inherits its train step from the class of its Keras backend, as `keras.Model`
inherits Keras's own trainer (keras/src/backend/tensorflow/trainer.py beside keras/src/backend/jax/trainer.py): this
one on TensorFlow, `sagan_tf.models.jax_step.JaxTrainStep` on JAX. It relies on the backend-neutral pieces of
`SAGAN` (the networks, optimizers, losses, noise and augmentation draws, EMA update and metric trackers).
"""

import contextlib

import tensorflow as tf

from sagan_tf.layers import average_across_replicas, frozen_power_iteration
from sagan_tf.models import accumulation
from sagan_tf.models.step_common import check_replica_settings
from sagan_tf.models.step_common import gradient_norm as _gradient_norm
from sagan_tf.models.step_common import watched_norm as _watched_norm


class TensorFlowTrainStep:
    """The TensorFlow train step of `SAGAN` (see its docstring for what a step does)."""

    @staticmethod
    def _replica_slot():
        """(replica id, number of replicas in sync) of the current replica; (0, 1) outside tf.distribute."""
        context = tf.distribute.get_replica_context()
        if context is None:  # cross-replica context: a single logical replica
            return 0, 1
        return context.replica_id_in_sync_group, context.num_replicas_in_sync

    def _track_step_state(self):
        """Nothing to add: the step reads and assigns variables where they are."""

    def _compile_train_step(self, jit_compile, auto, kwargs):
        """Keras's compile with XLA as `SAGAN.compile` resolved it: on the whole step on one device, on each
        replica's computation under a multi-replica strategy (`replica_jit_compile`)."""
        strategy = self.distribute_strategy
        per_replica = jit_compile and strategy.num_replicas_in_sync > 1 and not _is_tpu(strategy)
        synchronized = self._synchronized_batch_norm()
        check_replica_settings(strategy.num_replicas_in_sync, synchronized, self.grad_accumulation,
                               explicit_replica_jit=per_replica and not auto)
        if per_replica and synchronized:  # XLA by default: synchronized batch norm trains without it
            per_replica = jit_compile = False
        self._replica_jit = per_replica
        # No model-level optimizer: Keras would build its default one with a slot for every variable. Keras cannot
        # XLA-compile `strategy.run` over several devices; the per-replica functions are compiled instead.
        super().compile(optimizer=None, jit_compile=jit_compile and not per_replica, **kwargs)
        self._compute_d = self._discriminator_gradients
        self._compute_g = self._generator_gradients
        self._compute_ema = self._update_ema
        if per_replica:
            self._compute_d, self._compute_g, self._compute_ema = (
                tf.function(fn, jit_compile=True, reduce_retracing=True)
                for fn in (self._discriminator_gradients, self._generator_gradients, self._update_ema))

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def train_step(self, data):
        images, labels = self._begin_step(data)
        if not self.num_classes:
            labels = None
        batch_size = self._update_batch_size(images)
        _, num_replicas = self._replica_slot()
        global_batch = batch_size * num_replicas
        image_size = images.shape[1]

        d_variables = self.discriminator.trainable_variables
        gradient_norms, watched = [], []
        for step in range(self.d_steps):
            real = images[step * batch_size:(step + 1) * batch_size]
            real_labels = None if labels is None else labels[step * batch_size:(step + 1) * batch_size]
            z, fake_labels = self.draw_noise(batch_size)
            augmentations = (self.draw_augmentation(batch_size, image_size),
                             self.draw_augmentation(batch_size, image_size))
            gradients, logit_sums, (d_loss, lecam) = self._accumulate(
                lambda part, first: self._compute_d(*part[:4], global_batch, part[4], first=first),
                (real, real_labels, z, fake_labels, augmentations))
            d_grad_norm = _gradient_norm(gradients, self.d_optimizer)  # before apply_gradients may change the scale
            self.d_optimizer.apply_gradients(zip(gradients, d_variables))
            d_grad_norm, counted = _watched_norm(d_grad_norm, self.d_optimizer)
            self.d_grad_norm_tracker.update_state(d_grad_norm * num_replicas, sample_weight=counted)
            gradient_norms.append(d_grad_norm)
            self._observe_logits(logit_sums, global_batch)
            if lecam is not None:
                self.lecam_tracker.update_state(lecam)
                watched.append(lecam)
        z, fake_labels = self.draw_noise(batch_size)
        gradients, _, (g_loss, orthogonal) = self._accumulate(
            lambda part, first: self._compute_g(*part[:2], global_batch, part[2], first=first),
            (z, fake_labels, self.draw_augmentation(batch_size, image_size)))
        g_grad_norm = _gradient_norm(gradients, self.g_optimizer)
        self.g_optimizer.apply_gradients(zip(gradients, self.generator.trainable_variables))
        g_grad_norm, counted = _watched_norm(g_grad_norm, self.g_optimizer)
        self.g_grad_norm_tracker.update_state(g_grad_norm * num_replicas, sample_weight=counted)
        if orthogonal is not None:
            self.orthogonal_tracker.update_state(orthogonal)
            watched.append(orthogonal)
        average_across_replicas(self._replica_averaged)
        if self.ema_generator is not None:
            self._compute_ema()
        if self.ada is not None:
            self.ada.adjust(global_batch * self.d_steps)

        logs = self._step_logs(d_loss, g_loss, logit_sums, batch_size,
                               [d_loss, g_loss, g_grad_norm] + gradient_norms + watched)
        self._end_step()
        return logs

    def _accumulate(self, compute, inputs):
        """One update's (gradients, sums, means) from the `grad_accumulation` micro-batches of `inputs`
        (`accumulation.accumulate`): `compute(part, first)` returns them for one micro-batch; the gradients and sums
        are summed over the micro-batches, the means (a tuple, None entries kept) averaged, and the batch-norm
        moving statistics updated once with the micro-batches' mean statistics."""
        gradients, sums, means = accumulation.accumulate(compute, inputs, self.grad_accumulation,
                                                         self._micro_batch_averaged)
        if self.grad_accumulation > 1:
            means = tuple(None if mean is None else mean / self.grad_accumulation for mean in means)
        return gradients, sums, means

    def _observe_logits(self, logit_sums, global_batch):
        """`SAGAN._observe_logit_sums` of one discriminator update's logit sums (`_discriminator_gradients`), summed
        over the replicas in one all-reduce so that every replica updates ADA and LeCam alike."""
        if self.ada is None and self.lecam is None:
            return
        sums = logit_sums
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            sums = context.all_reduce(tf.distribute.ReduceOp.SUM, sums)
        self._observe_logit_sums(sums, global_batch)

    def _power_iteration(self, first):
        """A context in which the spectral-norm vectors of both networks advance in training calls (`first`: the
        first micro-batch of an update, or the whole batch) or stay as they are (the update's other micro-batches)."""
        if first:
            return contextlib.nullcontext()
        return frozen_power_iteration((self.generator, self.discriminator))

    def _discriminator_gradients(self, real, real_labels, z, fake_labels, global_batch, augmentations=(None, None),
                                 first=True):
        """One discriminator (micro-)batch's gradients on this replica: (gradients of its loss summed over the
        batch and divided by `global_batch`, float32 sums [sign(real logits), real logits, fake logits] over the
        batch, (mean adversarial loss, mean LeCam penalty or None)). Updates the generator's batch-norm statistics
        and, when `first`, both networks' spectral-norm vectors (per replica, with no cross-replica step, so that it
        can be one XLA computation). `augmentations`: the parameters for the real and for the generated images, or
        None each."""
        with self._power_iteration(first):
            fake = self.generator(z, fake_labels, training=True)
            with tf.GradientTape() as tape:
                scaled, logit_sums, means = self._discriminator_loss(real, real_labels, fake, fake_labels, global_batch,
                                                                     augmentations)
        gradients = tape.gradient(scaled, self.discriminator.trainable_variables)
        return gradients, logit_sums, means

    def _generator_gradients(self, z, fake_labels, global_batch, augmentation=None, first=True):
        """One generator (micro-)batch's gradients on this replica: (gradients of its loss summed over the batch and
        divided by `global_batch`, None, (mean adversarial loss, orthogonal penalty or None)). `augmentation`: the
        parameters for the generated images, or None. `first`: whether the spectral-norm vectors advance."""
        with self._power_iteration(first):
            with tf.GradientTape() as tape:
                scaled, means = self._generator_loss(z, fake_labels, global_batch, augmentation)
        gradients = tape.gradient(scaled, self.generator.trainable_variables)
        return gradients, None, means


def _is_tpu(strategy):
    return isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
