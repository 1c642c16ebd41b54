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
`mixed_float16` (its dynamic loss scale).

Under a `keras.distribution` (e.g. `DataParallel`) Keras splits each global batch over the devices of the mesh's
batch axis, and the generator's batch norms normalize each device's piece of its batch on its own, as a
tf.distribute replica does (`BatchNorm`; with synchronized batch norm: the whole batch). A batch the devices do not
divide is refused by `fit` and `train_on_batch` with an error that says which batch and what to change: before
training for arrays and for datasets of a fixed batch size, and at the batch for the rest.
"""

import re

import jax
import keras
from keras import ops

from sagan_tf.layers.batch_norm import device_groups
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


def batch_shards():
    """How many pieces Keras's current distribution cuts each of this process's batches into (1 without one)."""
    return max(device_groups() // jax.process_count(), 1)


def _indivisible(what, shards):
    return ValueError(
        f"Under {type(keras.distribution.distribution()).__name__} each batch is split over {shards} devices, so "
        f"every batch must be a multiple of {shards} images. Received: {what}. Choose a batch size that is a multiple "
        f"of {shards}, and drop the last partial batch (arrays: a number of images that the batch size divides; "
        "tf.data: batch(..., drop_remainder=True)).")


def check_batches_divide(x, batch_size, steps_per_epoch=None):
    """Refuses, before training, the batches of `fit(x, batch_size=..., steps_per_epoch=...)` that the distribution's
    devices would not divide: arrays (every batch, and the last partial one when an epoch reaches it) and datasets
    whose batch size is fixed."""
    shards = batch_shards()
    if shards == 1 or x is None:
        return
    spec = getattr(x, "element_spec", None)  # a tf.data.Dataset
    if spec is not None:
        batch = keras.tree.flatten(spec)[0].shape[0]
        if batch is not None and batch % shards:
            raise _indivisible(f"a dataset of batches of {batch}", shards)
        return
    first = keras.tree.flatten(x)[0]
    if not hasattr(first, "shape") or not first.shape:
        return  # a generator or a PyDataset: checked at its first batch the devices do not divide
    count, batch_size = first.shape[0], batch_size or 32  # Keras's default batch size for arrays
    if batch_size % shards:
        raise _indivisible(f"batch_size={batch_size}", shards)
    if count % batch_size % shards and steps_per_epoch is None:
        raise _indivisible(f"{count} images in batches of {batch_size}: the last batch holds "
                           f"{count % batch_size}", shards)


def _is_indivisible(error):
    # JAX's IndivisibleError (a ValueError) is not public API; its name is stable.
    return type(error).__name__ == "IndivisibleError"


def _put_back(variables, values):
    """Assigns `values` to `variables`, but for arrays that a failed step's execution consumed (donated buffers)."""
    for variable, value in zip(variables, values):
        if not value.is_deleted():
            variable.assign(value)


class JaxTrainStep:
    """The JAX train step of `SAGAN` (see its docstring for what a step does)."""

    #: While `fit` runs its first step: the state's values it started from (references to immutable arrays).
    _fit_start_values = None

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kwargs):
        """Keras's `fit`, after `check_batches_divide`; the model keeps its weights when `fit` fails.

        Keras's JAX trainer detaches the variables' values before the first step and attaches the state of the last
        completed step when `fit` ends, so an exception before any step completed (a trace-time error, Ctrl-C while
        compiling, a batch the devices do not divide) would leave every variable without a value: the values `fit`
        started from are put back then. The exception reaches the caller unchanged, but for JAX's sharding error for
        a batch the devices do not divide (one that only shows when it comes: a generator, a dataset whose batch
        size varies), which becomes `check_batches_divide`'s. A step that fails while it runs on the device, after
        JAX took its inputs (donated buffers), leaves nothing to put back.
        """
        check_batches_divide(x, batch_size, kwargs.get("steps_per_epoch"))
        variables = [variable for group in self.jax_state_variables() for variable in group]
        self._fit_start_values = tuple(variable.value for variable in variables)
        try:
            return super().fit(x, y, batch_size, epochs, verbose, callbacks, **kwargs)
        except BaseException as error:
            if self._fit_start_values is not None:  # no step completed
                _put_back(variables, self._fit_start_values)
            if not _is_indivisible(error):
                raise
            batch = re.search(r"full shape: \((\d+)", str(error))
            raise _indivisible(f"a batch of {batch[1] if batch else 'that many'} images", batch_shards()) from error
        finally:
            self._fit_start_values = None

    def make_train_function(self, force=False):
        """Keras's train function, which also makes `fit` forget the values it started from once a step completed
        (from then on Keras keeps the state of the last completed step, whatever the callbacks)."""
        super().make_train_function(force)
        train_function = self.train_function
        if getattr(train_function, "forgets_fit_start", False):
            return

        def forgetting_train_function(state, iterator):
            outputs = train_function(state, iterator)
            self._fit_start_values = None
            return outputs

        forgetting_train_function.forgets_fit_start = True
        self.train_function = forgetting_train_function

    def train_on_batch(self, x, *args, **kwargs):
        """Keras's `train_on_batch`, after `check_batches_divide`; the model keeps its weights when the step fails.

        Keras's JAX trainer records the state of each `train_on_batch` and marks it unapplied before the step; a
        step that fails would leave the previous step's state pending, and the next `jax_state_sync` (a callback
        reading `self.model`) would assign it over whatever the model holds."""
        shards, batch = batch_shards(), keras.tree.flatten(x)[0].shape[0]
        if batch % shards:
            raise _indivisible(f"a batch of {batch} images", shards)
        variables = [variable for group in self.jax_state_variables() for variable in group]
        start_values = [variable.value for variable in variables]
        try:
            return super().train_on_batch(x, *args, **kwargs)
        except BaseException:
            self.jax_state_sync()  # applies (and so clears) the pending state, which the start values then replace
            _put_back(variables, start_values)
            raise

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

    def jax_state_variables(self):
        """The four variable lists of the state tuple Keras's JAX trainer passes to `train_step` (trainable,
        non-trainable, optimizer, metrics variables), in its order."""
        return (self.trainable_variables, self.non_trainable_variables, self.optimizer.variables,
                self.metrics_variables)

    def _stateless(self, values, fn, *args):
        """(fn(*args), the values after it) with every state variable reading its value from `values` ({id of a
        variable: array}) and its assignments collected instead of applied."""
        variables = [variable for group in self.jax_state_variables() for variable in group]
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
        variables = self.jax_state_variables()
        values = {id(v): value for group, group_values in zip(variables, state)
                  for v, value in zip(group, group_values)}
        images, labels = self._begin_step(data)
        if not self.num_classes:
            labels = None
        batch_size = self._update_batch_size(images)
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
                self._observe_logit_sums(logit_sums, global_batch)  # one program: the sums are the global batch's
                if lecam is not None:
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
