"""The checkpoints written during training: every N steps (`CheckpointEvery`) and the best evaluated one
(`BestCheckpoint`), both through the run's `CheckpointStore`."""

import keras
import numpy as np

from sagan_tf.callbacks.guard import refuse_nonfinite_state
from sagan_tf.callbacks.periodic import PeriodicCallback
from sagan_tf.evaluation.evaluator import FIGURES, NEAREST_NEIGHBOUR_FIGURES


class CheckpointEvery(PeriodicCallback):
    """Saves a `CheckpointStore`'s state every `every_n_steps` steps and at the end of training.

    Checkpoints are numbered by training step (`CheckpointStore.save`). TensorFlow writes a checkpoint's data files
    before it rewrites the manager's `checkpoint` index file, so a process killed at any moment leaves the latest
    checkpoint pointing at a complete one.

    Args:
      store: the `CheckpointStore` with the training state (e.g. `checkpoint.gan_checkpoint(model)`).
      every_n_steps: period in training steps; 0 saves only at the end.
      save_at_end: also save when training ends (normally, or stopped by `GracefulStop`).
    """

    def __init__(self, store, every_n_steps, save_at_end=True):
        super().__init__(every_n_steps, at_end=save_at_end)
        self.store = store

    @property
    def last_saved_step(self):
        """The step of the last checkpoint saved by this callback (or found at the start of training), or None."""
        return self.last_step

    def save(self, step):
        """Saves checkpoint number `step`; returns its path.

        Raises:
          TrainingDivergedError: the model's state is not finite (nothing is written).
          WriteFailedError: the filesystem refused the write; its partial files are removed, and the message names
            the last good checkpoint.
        """
        refuse_nonfinite_state(self.model, f"checkpoint {self.store.name(step)}", step)
        path = self.store.save(step, self.last_saved_step)
        self.last_step = step
        return path

    def act(self, step):
        self.save(step)

    def on_train_begin(self, logs=None):
        if self.last_step is None:
            self.last_step = self.store.last_saved_step()
        super().on_train_begin(logs)


#: Direction of each evaluation figure a best checkpoint can be chosen by: lower is better for the distances.
METRIC_MODES = {name: "min" if name in ("fid", "kid") else "max" for name in FIGURES if name != "chance"}
#: The `EvalConfig` switch an evaluation needs to compute a figure (the others are always computed).
METRIC_SWITCHES = {"kid": "compute_kid", **dict.fromkeys(NEAREST_NEIGHBOUR_FIGURES, "compute_precision_recall")}


def parse_best_metric(spec, evaluation=None):
    """(name, "min" | "max") of a best-checkpoint metric: one of `FIGURES`, with its direction from `METRIC_MODES`.

    Args:
      spec: the figure's name, e.g. "fid".
      evaluation: the `EvalConfig` of the evaluations that will choose (None: not checked); a figure it does not
        compute (kid without `compute_kid`, the k-NN figures without `compute_precision_recall`) is refused.

    Raises:
      ValueError: an unknown figure, or one the evaluation does not compute.
    """
    name = str(spec)
    if name not in METRIC_MODES:
        raise ValueError(f"The best-checkpoint metric must be one of {', '.join(METRIC_MODES)}. Received: {spec!r}")
    switch = METRIC_SWITCHES.get(name)
    if evaluation is not None and switch is not None and not getattr(evaluation, switch):
        flag = "--kid" if name == "kid" else "--precision_recall"
        raise ValueError(f"The best-checkpoint metric {name} is not computed by the evaluation ({switch} is off; "
                         f"{flag} turns it on). Choose another metric or turn it on.")
    return name, METRIC_MODES[name]


def _measured_with(figures):
    """What makes evaluation figures comparable: the classifier's tag and the numbers of generated and real samples
    (from their provenance; None where an evaluation returns none)."""
    provenance = figures.get("provenance") or {}
    return {"classifier": (provenance.get("classifier") or {}).get("tag"),
            "num_generated": provenance.get("num_generated", figures.get("num_samples")),
            "num_real": provenance.get("num_real")}


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the checkpoint with the best evaluation so far apart from the rotating latest ones.

    Whenever its `EvaluateEvery` has just evaluated the current step (at the start, every period and at the end of
    training) and the figure `metric` beats the best so far, it keeps the training state as the best checkpoint in
    `<run>/checkpoints/best/` (`CheckpointStore.write_best`, then `record_best`: its record in best.json, and only
    then the one best.json named before is deleted, so best.json always names a complete checkpoint; when best.json
    cannot be written, the new checkpoint is deleted again). The record holds step, checkpoint, metric, mode, value,
    figures, and what they were measured with: the classifier's tag and the numbers of generated and real samples.
    A resumed run starts from the record in best.json (when it was chosen by the same metric), so a worse evaluation
    never replaces a better one; figures measured otherwise (another classifier or sample count, e.g. a resume with
    other --classifier or --eval_samples) are not comparable, so the first such evaluation replaces the record.
    `--checkpoint=best` of the inference commands reads that record. Put it after the `EvaluateEvery` it reads.

    Args:
      store: the `CheckpointStore` with the training state (e.g. `checkpoint.gan_checkpoint(model)`).
      evaluate: the `EvaluateEvery` whose `history` ({step: figures}) it reads.
      metric: a figure of `METRIC_MODES` ("fid" by default).
      print_fn: where its lines go; default `print`.
    """

    def __init__(self, store, evaluate, metric="fid", print_fn=None):
        super().__init__()
        self.store = store
        self.evaluate = evaluate
        self.metric, self.mode = parse_best_metric(metric)
        self.print_fn = print_fn or print
        self.best = None  # the record of the best checkpoint
        self._considered = None
        record = self.store.best_record()
        self._recorded_step = None if record is None else record.get("step")  # of the checkpoint best.json names
        if record is not None and record.get("metric") == self.metric and record.get("mode") == self.mode:
            self.best = record
        elif record is not None:
            self.print_fn(f"{self.store.best_dir} holds the best checkpoint by {record.get('metric')}; now "
                          f"choosing by {self.metric}, the next evaluation replaces it.")

    def better(self, value):
        """Whether `value` of the metric beats the best so far (a NaN or a missing value never does)."""
        if value is None or not np.isfinite(value):
            return False
        if self.best is None or self.best["value"] is None:
            return True
        return value < self.best["value"] if self.mode == "min" else value > self.best["value"]

    def consider(self, step):
        """Saves the state as the best checkpoint when the evaluation of `step` beats the best; returns its path."""
        figures = self.evaluate.history.get(step)
        if figures is None or step == self._considered:
            return None
        self._considered = step
        measured_with = _measured_with(figures)
        if self.best is not None and self.best.get("measured_with") != measured_with:
            self.print_fn(f"The best checkpoint (step {self.best['step']}) was chosen by figures measured with "
                          f"{self.best.get('measured_with')}; step {step} is measured with {measured_with}, which "
                          "cannot be compared with them, so its evaluation starts the record again.")
            self.best = {**self.best, "value": None}
        value = figures.get(self.metric)
        if value is None:
            self.print_fn(f"The evaluation at step {step} has no figure {self.metric!r} (it has "
                          f"{', '.join(sorted(figures))}); no best checkpoint is kept.")
            return None
        if not self.better(float(value)):
            return None
        refuse_nonfinite_state(self.model, "the best checkpoint", step)
        path = self.store.write_best(step)
        named = self._recorded_step
        record = {"metric": self.metric, "mode": self.mode, "value": float(value), "measured_with": measured_with,
                  "figures": {k: v for k, v in figures.items()
                              if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}}
        try:
            self.store.record_best(step, path, record, replaced_step=named)
        except BaseException:
            if named != step:  # `record_best` removed the new checkpoint
                self.print_fn(f"Could not record the best checkpoint of step {step} in best.json, so that checkpoint "
                              "was removed: best.json names the checkpoint it named before.")
            raise
        self.best, self._recorded_step = {"step": int(step), "checkpoint": path, **record}, step
        self.print_fn(f"Best checkpoint: step {step}, {self.metric} {float(value):.4g} -> {path}.")
        return path

    # The `EvaluateEvery` before it has just evaluated the current state when its `last_step` is new: no need to
    # read the step from the device.
    def on_train_begin(self, logs=None):
        self.consider(self.evaluate.last_step)

    def on_train_batch_begin(self, batch, logs=None):
        if self.evaluate.last_step != self._considered:
            self.consider(self.evaluate.last_step)

    def on_train_end(self, logs=None):
        self.consider(self.evaluate.last_step)
