"""The SAGAN train step on the JAX backend: stateless, jitted by Keras, with the TensorFlow step's semantics.

Keras's JAX trainer (keras/src/backend/jax/trainer.py) calls `train_step(state, data)` with
`state = (trainable_variables, non_trainable_variables, optimizer_variables, metrics_variables)`, lists of arrays
in the order of the model's variable lists, and takes back `(logs, state)`. This step runs the same updates as the
TensorFlow one (`sagan_tf.models.tensorflow_step`), in the same order, with the backend-neutral pieces of `SAGAN`
(its losses, noise and augmentation draws, EMA, ADA and LeCam updates and trackers): each piece runs inside a
`keras.StatelessScope` that maps every variable of the state to its current value, and what the piece assigns
(spectral-norm vectors, batch-norm statistics, the seed generators' states, ...) is read back from the scope into
the state. Gradients come from `jax.value_and_grad` of the loss with respect to the trained network's values; the
optimizers update with `stateless_apply`.

Not supported on JAX (a clear error at `compile`): gradient accumulation (`grad_accumulation` > 1) and
`mixed_float16` (its dynamic loss scale); synchronized batch norm is refused by `BatchNorm` itself.
"""

import jax
import keras
from keras import ops

from sagan_tf.models.step_common import gradient_norm, watched_norm


class _OptimizerPair:
    """What Keras's JAX trainer reads of `model.optimizer`: the variables of both optimizers, generator's first (it
    passes them to `train_step` as `optimizer_variables` and assigns them back after `fit`)."""

    def __init__(self, g_optimizer, d_optimizer):
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.built = True

    @property
    def variables(self):
        return list(self.g_optimizer.variables) + list(self.d_optimizer.variables)

    def build(self, variables):
        """Both optimizers are built by `SAGAN.compile`."""


class JaxTrainStep:
    """The JAX train step of `SAGAN` (see its docstring for what a step does)."""

    @staticmethod
    def _replica_slot():
        """(0, 1): one program over the global batch (a `keras.distribution` shards it; the noise is drawn for it)."""
        return 0, 1

    def _track_step_state(self):
        # ADA's and LeCam's variables live in plain objects, which Keras does not track; on JAX only the model's
        # variable lists travel through the stateless step (and back after `fit`).
        self._small_data_variables = [variable for state in self.regularization_state().values()
                                      for variable in state.values()]

    def _compile_train_step(self, jit_compile, auto, kwargs):
        """Keras's compile (the step is jitted with `jit_compile`, on by default), after refusing what this step
        does not do."""
        if self.grad_accumulation > 1:
            raise ValueError(
                "Gradient accumulation is not supported on the JAX backend (its micro-batch loop is TensorFlow's). "
                "Train with grad_accumulation=1, or on TensorFlow. "
                f"Received: grad_accumulation={self.grad_accumulation}")
        policies = {self.dtype_policy.name, keras.mixed_precision.global_policy().name}
        if "mixed_float16" in policies:
            raise ValueError("mixed_float16 (dynamic loss scaling) is not supported on the JAX backend: use "
                             "mixed_bfloat16 or float32. Received: dtype policy mixed_float16")
        self._replica_jit = False
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs)

    def _build_optimizers(self):
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.optimizer = _OptimizerPair(self.g_optimizer, self.d_optimizer)

    def _state_variables(self):
        """The variables of Keras's state tuple, in its order (four lists)."""
        return (self.trainable_variables, self.non_trainable_variables, self.optimizer.variables,
                self.metrics_variables)

    def _stateless(self, values, fn, *args):
        """(fn(*args), the values after it) with every state variable reading its value from `values` ({id of a
        variable: array}) and its assignments collected instead of applied."""
        variables = [variable for group in self._state_variables() for variable in group]
        with keras.StatelessScope(state_mapping=[(v, values[id(v)]) for v in variables]) as scope:
            outputs = fn(*args)
        return outputs, {id(v): scope.get_current_value(v) for v in variables}

    def _update(self, values, network, optimizer, loss_fn, *args):
        """One optimizer update of `network`: (loss_fn's outputs besides the loss, the gradient norm, the values
        after the update). `loss_fn(*args)` returns (scaled loss, ...) and may assign non-trainable state."""
        trained = [id(v) for v in network.trainable_variables]

        def loss(trained_values):
            inner = dict(values)
            inner.update(zip(trained, trained_values))
            outputs, inner = self._stateless(inner, loss_fn, *args)
            return outputs[0], (outputs[1:], inner)

        trained_values = [values[i] for i in trained]
        (_, (outputs, values)), gradients = jax.value_and_grad(loss, has_aux=True)(trained_values)
        norm = gradient_norm(gradients, optimizer)
        slots = [id(v) for v in optimizer.variables]
        trained_values, slot_values = optimizer.stateless_apply([values[i] for i in slots], gradients,
                                                                trained_values)
        values.update(zip(trained, trained_values))
        values.update(zip(slots, slot_values))
        return outputs, norm, values

    def train_step(self, state, data):
        """One step (`d_steps` discriminator updates, one generator update) on arrays: `(logs, state)`."""
        variables = self._state_variables()
        values = {id(v): value for group, group_values in zip(variables, state)
                  for v, value in zip(group, group_values)}
        images, labels = self._begin_step(data)
        if not self.num_classes:
            labels = None
        per_replica_batch = images.shape[0]
        if per_replica_batch % self.d_steps:
            raise ValueError(
                f"Each train_step consumes d_steps={self.d_steps} real batches: the batch must be a multiple of "
                f"d_steps. Received: batch={per_replica_batch}. Batch the dataset with drop_remainder=True and a "
                "size of d_steps * batch_size.")
        batch_size = per_replica_batch // self.d_steps
        global_batch = batch_size
        image_size = images.shape[1]

        gradient_norms, watched = [], []
        for step in range(self.d_steps):
            real = images[step * batch_size:(step + 1) * batch_size]
            real_labels = None if labels is None else labels[step * batch_size:(step + 1) * batch_size]
            (z, fake_labels, augmentations), values = self._stateless(values, lambda: (
                *self.draw_noise(batch_size),
                (self.draw_augmentation(batch_size, image_size), self.draw_augmentation(batch_size, image_size))))
            # As the TensorFlow step: the generator runs (in training) outside the differentiated loss.
            fake, values = self._stateless(values, lambda: self.generator(z, fake_labels, training=True))
            (logit_sums, (d_loss, lecam)), d_grad_norm, values = self._update(
                values, self.discriminator, self.d_optimizer, self._discriminator_loss, real, real_labels,
                ops.stop_gradient(fake), fake_labels, global_batch, augmentations)
            d_grad_norm, counted = watched_norm(d_grad_norm, self.d_optimizer)
            gradient_norms.append(d_grad_norm)

            def observe():
                self.d_grad_norm_tracker.update_state(d_grad_norm, sample_weight=counted)
                if self.ada is not None:
                    self.ada.observe(logit_sums[0], global_batch)
                if self.lecam is not None:
                    self.lecam.update(logit_sums[1] / global_batch, logit_sums[2] / global_batch)
                    self.lecam_tracker.update_state(lecam)

            _, values = self._stateless(values, observe)
            if lecam is not None:
                watched.append(lecam)
        (z, fake_labels, augmentation), values = self._stateless(values, lambda: (
            *self.draw_noise(batch_size), self.draw_augmentation(batch_size, image_size)))
        ((g_loss, orthogonal),), g_grad_norm, values = self._update(
            values, self.generator, self.g_optimizer, self._generator_loss, z, fake_labels, global_batch,
            augmentation)
        g_grad_norm, counted = watched_norm(g_grad_norm, self.g_optimizer)
        if orthogonal is not None:
            watched.append(orthogonal)

        def finish():
            self.g_grad_norm_tracker.update_state(g_grad_norm, sample_weight=counted)
            if orthogonal is not None:
                self.orthogonal_tracker.update_state(orthogonal)
            if self.ema_generator is not None:
                self._update_ema()
            if self.ada is not None:
                self.ada.adjust(global_batch * self.d_steps)
            return self._step_logs(d_loss, g_loss, logit_sums, batch_size,
                                   [d_loss, g_loss, g_grad_norm] + gradient_norms + watched)

        logs, values = self._stateless(values, finish)
        self._end_step()
        return logs, tuple([values[id(v)] for v in group] for group in variables)
