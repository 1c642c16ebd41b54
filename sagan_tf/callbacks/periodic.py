"""The periodic schedule the callbacks share (`PeriodicCallback`) and the training step it counts (`global_step`)."""

import keras
import numpy as np


def global_step(model):
    """The training step of a SAGAN model: its generator optimizer's update count (a Python int)."""
    optimizer = getattr(model, "g_optimizer", None) or model.optimizer
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def sampling_generator(model):
    """The generator a model samples with: its EMA generator when it has one (`SAGAN.sampling_generator`)."""
    return getattr(model, "sampling_generator", None) or model.generator


class PeriodicCallback(keras.callbacks.Callback):
    """A callback that acts every `every_n_steps` training steps, optionally at the start and at the end of `fit`.

    Subclasses implement `act(step)`. It runs when the step crosses a multiple of `every_n_steps` (a multiple in
    (previous step, current step]), when training begins if `at_start`, and when it ends if `at_end`, never twice
    in a row for the same step (`last_step`).

    The step is counted on the host: `global_step` is read once in `on_train_begin`, and each
    `on_train_batch_begin(batch)` (Keras passes the number of batches run so far in this `fit`) gives the step the
    previous batches reached, one generator update per batch. The callback acts there, on the main thread before
    the next train function starts, and reads the step from the device only then, to name what it writes (the same
    number, except after float16 loss scaling skipped updates, which do not count). The last batches are seen in
    `on_train_end`.

    Args:
      every_n_steps: period in training steps; 0 acts only at the start and/or the end.
      at_start: act when training begins (step 0 of a new run, or the step a resumed run starts from).
      at_end: act when training ends (normally, or stopped by `GracefulStop`).
    """

    def __init__(self, every_n_steps, at_start=False, at_end=True):
        super().__init__()
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, (int, np.integer)) or every_n_steps < 0:
            raise ValueError(f"every_n_steps must be an integer >= 0. Received: every_n_steps={every_n_steps!r}")
        self.every_n_steps = int(every_n_steps)
        self.at_start = at_start
        self.at_end = at_end
        self.last_step = None
        self.start_step = None  # the step this fit started from
        self._previous = None

    def act(self, step):
        """Does the periodic work for training step `step`."""
        raise NotImplementedError

    def _act(self, step):
        self.act(step)
        self.last_step = step

    def crossed(self, previous, current):
        """Whether a multiple of `every_n_steps` lies in (previous, current]."""
        return self.every_n_steps > 0 and current // self.every_n_steps > previous // self.every_n_steps

    def on_train_begin(self, logs=None):
        self.start_step = self._previous = global_step(self.model)
        if self.at_start and self._previous != self.last_step:
            self._act(self._previous)

    def on_train_batch_begin(self, batch, logs=None):
        step = self.start_step + batch
        if self.crossed(self._previous, step):
            self._act(global_step(self.model))
        self._previous = step

    def on_train_end(self, logs=None):
        step = global_step(self.model)
        if (self.crossed(self._previous, step) or self.at_end) and step != self.last_step:
            self._act(step)
        self._previous = step
