"""Stopping before a non-finite state is written or trained on (`NonFiniteGuard`, `refuse_nonfinite_state`)."""

import threading

import numpy as np

from sagan_tf.callbacks.periodic import PeriodicCallback
from sagan_tf.errors import TrainingDivergedError
from sagan_tf.run import checkpoint


def refuse_nonfinite_state(model, what, step):
    """Raises `TrainingDivergedError` when a SAGAN's checkpointed state holds a NaN or an infinity, so that `what`
    (a checkpoint about to be written) is not written."""
    if not hasattr(model, "state_variables"):
        return
    bad = checkpoint.nonfinite_variables(model)
    if bad:
        raise TrainingDivergedError(
            f"Refusing to write {what} at step {step}: {len(bad)} variable(s) of the training state are not finite "
            f"(e.g. {bad[0]}); training diverged. Resume from the last checkpoint, with lower learning rates in a new "
            "--model_dir or with --on_nonfinite=rollback.", step=step)


class NonFiniteGuard(PeriodicCallback):
    """Ends `fit` at the first step whose losses or state are not finite, before any later callback acts on it.

    `SAGAN.train_step` logs `finite`: 1.0 while its losses and gradient norms are finite. Keras fetches every step's
    logs anyway (on its callback thread, with asynchronous dispatch), so the guard reads the flag there (`async_safe`:
    it only records what it saw and sets `model.stop_training`); every `every_n_steps` steps and at the end it also
    checks the weights (`SAGAN.state_is_finite`, one reduction per variable, too costly for every step). When either
    fails, it raises `TrainingDivergedError` naming the step and the values logged there, from the main thread, before
    the next batch or in `on_train_end`. Put it first in the callback list: Keras runs the callbacks in order, so the
    exception keeps the later ones (sample grids, evaluation, checkpoints) from acting on the bad state, and no
    end-of-training checkpoint is written. A step may run after the one that diverged before the guard sees its logs, so
    the checkpoint callbacks also refuse a non-finite state by themselves (`refuse_nonfinite_state`).

    Args:
      every_n_steps: steps between checks of the weights (e.g. the logging cadence); 0 checks them only at the end.
    """

    async_safe = True

    def __init__(self, every_n_steps=0):
        super().__init__(every_n_steps, at_end=True)
        self._lock = threading.Lock()
        self._diverged = None  # (step, values) of the first non-finite step seen

    def on_train_begin(self, logs=None):
        self._diverged = None
        super().on_train_begin(logs)

    def on_train_batch_end(self, batch, logs=None):  # on Keras's callback thread
        finite = (logs or {}).get("finite")
        if finite is None or float(np.min(np.asarray(finite))) >= 1.0:  # (1,)-shaped under MultiWorkerSAGAN
            return
        values = {name: float(np.mean(np.asarray(logs[name])))
                  for name in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm") if name in logs}
        step = self.start_step + batch + 1
        with self._lock:
            if self._diverged is None or step < self._diverged[0]:
                self._diverged = (step, values)
        self.model.stop_training = True

    def _raise_if_diverged(self):
        if self._diverged is None:
            return
        step, values = self._diverged
        shown = ", ".join(f"{name} {value:.4g}" for name, value in values.items())
        raise TrainingDivergedError(
            f"Training diverged at step {step}: a loss or a weight is no longer finite ({shown}).", step=step,
            values=values)

    def on_train_batch_begin(self, batch, logs=None):
        self._raise_if_diverged()
        super().on_train_batch_begin(batch, logs)

    def act(self, step):
        self._raise_if_diverged()
        bad = checkpoint.nonfinite_variables(self.model) if hasattr(self.model, "state_variables") else []
        if bad:
            raise TrainingDivergedError(
                f"Training diverged by step {step}: {len(bad)} variable(s) of the training state are no longer finite "
                f"(e.g. {bad[0]}).", step=step, values={})

    def on_train_end(self, logs=None):
        self._raise_if_diverged()
        super().on_train_end(logs)
