"""Keras callbacks for training a `sagan_tf.models.SAGAN` with plain `model.fit`.

    store = CheckpointStore("run", checkpoint.gan_checkpoint(model), keep_checkpoints=3)
    writer = tf.summary.create_file_writer("run")
    model.fit(dataset, steps_per_epoch=1000, callbacks=[
        callbacks.NonFiniteGuard(),
        callbacks.GracefulStop(),
        callbacks.ProgressLogger(total_steps=1000, every_n_steps=50, summary_writer=writer),
        callbacks.SampleGrid("run/samples", every_n_steps=200, summary_writer=writer),
        callbacks.EvaluateEvery(500, evaluation.Evaluator.create("synthetic", 32), summary_writer=writer),
        callbacks.CheckpointEvery(store, every_n_steps=500),
    ])

The training step is the generator optimizer's `iterations` (`global_step`): the number of generator updates,
which `TrainingConfig.train_steps` counts. The periodic callbacks share one schedule (`PeriodicCallback`): they act
when the step crosses a multiple of their period (so they stay correct when one `fit` batch runs several steps,
`steps_per_execution`), optionally when training starts, and when it ends unless they just acted at that step.

No callback costs a device round trip on a step where it does nothing. Steps are counted on the host (the step
read once when `fit` begins plus the batches run since), and the periodic work happens in `on_train_batch_begin`,
which Keras calls on the main thread between two train functions, for the state the previous batches left. No
callback here overrides `on_train_batch_end` except `NonFiniteGuard`, which is marked `async_safe`: any other
override makes Keras wait on the main thread for every step's logs before it starts the next step (Keras's
asynchronous callback dispatch is off for the whole `fit`), where a GPU step takes milliseconds.

Each callback is independent; put `NonFiniteGuard` first, so that no later one acts on a non-finite state,
`BestCheckpoint` after the `EvaluateEvery` it reads, and `CheckpointEvery` last so that its end-of-training save sees
the final state.
"""

import json
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from sagan_tf import health
from sagan_tf.run import checkpoint
from sagan_tf.sampling import images, summaries
from sagan_tf.errors import TrainingDivergedError
from sagan_tf.evaluation.evaluator import FIGURES, NEAREST_NEIGHBOUR_FIGURES

#: Health signals shown as one "D/G" pair each in the progress line (TensorBoard keeps the separate names).
_PAIRED_LOGS = {"grad D/G": ("d_grad_norm", "g_grad_norm"), "sn D/G": ("d_spectral_norm", "g_spectral_norm")}
# FIGURES (from sagan_tf.evaluation): the figures written to TensorBoard as "eval/<classifier tag>/<name>" and
# printed, in that order.
_SHORT_NAMES = {"fid": "FID", "inception_score": "IS", "kid": "KID", "precision": "precision", "recall": "recall",
                "density": "density", "coverage": "coverage"}
_DIGITS = {"fid": ".1f", "inception_score": ".2f", "kid": ".4g"}  # the k-NN figures: ".3f"


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


class SampleGrid(PeriodicCallback):
    """Renders the sampling (EMA) generator's images of fixed latents and labels as a PNG grid.

    Every `every_n_steps` training steps and at the end of training it writes `directory/step_XXXXXXXX.png`
    (one row per class, labelled with the class name, for conditional models) and, given a summary writer, a
    TensorBoard image "samples". The latents and labels are drawn from `seed` (see `images.grid_inputs`), so the
    grids of one run, and of every run with the same seed, show the same latents.

    Args:
      directory: where the PNG files go (created if missing; any `tf.io.gfile` path).
      every_n_steps: period in training steps (see `global_step`); 0 writes only at the end.
      latent_dim: size of z; None reads `model.latent_dim`.
      num_classes: number of classes (0: unconditional); None reads `model.num_classes`.
      samples_per_class: images per row.
      seed: seed of the fixed latents.
      class_names: names of the classes, for the row labels; None labels rows with class ids.
      summary_writer: a `tf.summary` writer, or None for PNG files only.
    """

    def __init__(self, directory, every_n_steps, latent_dim=None, num_classes=None, samples_per_class=8, seed=0,
                 class_names=None, summary_writer=None):
        super().__init__(every_n_steps)
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1. Received: samples_per_class={samples_per_class}")
        self.directory = directory
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.class_names = class_names
        self.summary_writer = summary_writer
        self.last_path = None
        self._inputs = None
        if latent_dim is not None and num_classes is not None:
            self._inputs = images.grid_inputs(latent_dim, num_classes, samples_per_class, seed)

    def set_model(self, model):
        super().set_model(model)
        if self._inputs is None:
            self.latent_dim = model.latent_dim if self.latent_dim is None else self.latent_dim
            self.num_classes = model.num_classes if self.num_classes is None else self.num_classes
            self._inputs = images.grid_inputs(self.latent_dim, self.num_classes, self.samples_per_class, self.seed)

    @property
    def inputs(self):
        """(z, labels or None) of the grid, in row-major order."""
        return self._inputs[0], self._inputs[1]

    def render(self):
        """The current grid as a uint8 array."""
        z, labels, row_classes, rows, cols = self._inputs
        pixels = images.to_uint8(keras.ops.convert_to_numpy(sampling_generator(self.model)(z, labels,
                                                                                           training=False)))
        row_labels = None
        if row_classes is not None:  # labelled as training.visualize labels its grids
            row_labels = [images.class_name(c, self.class_names) for c in row_classes]
        return images.make_grid(pixels, rows, cols, row_labels)

    def write(self, step):
        """Writes the grid of the current weights for training step `step`; returns the PNG path."""
        grid = self.render()
        path = tf.io.gfile.join(self.directory, f"step_{step:08d}.png")
        png = images.save_png(grid, path, what="sample grid")
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                summaries.write_image("samples", png, grid.shape[1], grid.shape[0], step)
        self.last_path = path
        return path

    def act(self, step):
        self.write(step)


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


class ProgressLogger(PeriodicCallback):
    """Logs progress every `every_n_steps` steps: step/total, losses, health signals, gammas, throughput and ETA.

    Every value is read from the model when a line is due (no per-step work): the model's metrics (losses, logits
    and gradient norms of `SAGAN`), which are means over the steps since the previous line because the logger
    resets them after each line (they would otherwise average over the whole `fit` epoch); each attention layer's
    gamma (`SAGAN.attention_gammas`); with ADA, its augmentation probability `ada_p` and last heuristic `ada_rt`
    (`SAGAN.augment_signals`); and the largest spectral-norm estimate of each network's raw weights
    (`health.spectral_norms`). See `sagan_tf.health` for what each signal says. Throughput is measured from the
    first batch after tracing and compilation; the ETA is the remaining steps at the current throughput. Given a
    `health_monitor`, its warnings go to `warn_fn`.

    Args:
      total_steps: the step training ends at, for the "step/total" display and the ETA.
      every_n_steps: period in training steps.
      images_per_step: real images consumed per step (d_steps * global batch) for images/s; None omits it.
      summary_writer: a `tf.summary` writer for the scalars, or None.
      print_fn: where lines go (e.g. `absl.logging.info`); default `print`.
      health_monitor: a `health.HealthMonitor`, or None.
      warn_fn: where health warnings go; default `print_fn`.
    """

    def __init__(self, total_steps, every_n_steps, images_per_step=None, summary_writer=None, print_fn=None,
                 health_monitor=None, warn_fn=None):
        super().__init__(every_n_steps, at_end=False)
        if self.every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1. Received: every_n_steps={every_n_steps}")
        self.total_steps = total_steps
        self.images_per_step = images_per_step
        self.summary_writer = summary_writer
        self.print_fn = print_fn or print
        self.health_monitor = health_monitor
        self.warn_fn = warn_fn or self.print_fn
        self.last_logs = {}
        self.warnings = []
        self._mark = None  # (step, time) at the start of the current throughput window

    def on_train_begin(self, logs=None):
        self._mark = None
        super().on_train_begin(logs)
        if self.health_monitor is not None:  # where the spectral norms start, before any step of this fit
            self.health_monitor.update(self.start_step, health.spectral_norms(self.model))

    def on_train_batch_begin(self, batch, logs=None):
        if batch and self._mark is None:  # the first train function has returned: tracing is done
            self._mark = (self.start_step + batch, time.perf_counter())
        super().on_train_batch_begin(batch, logs)

    def read_values(self):
        """The progress values of the model now: its metrics, attention gammas and spectral norms (floats)."""
        values = {metric.name: float(keras.ops.convert_to_numpy(metric.result())) for metric in self.model.metrics}
        gammas = self.model.attention_gammas() if hasattr(self.model, "attention_gammas") else {}
        values.update({name: float(keras.ops.convert_to_numpy(gamma)) for name, gamma in sorted(gammas.items())})
        signals = self.model.augment_signals() if hasattr(self.model, "augment_signals") else {}
        values.update({name: float(keras.ops.convert_to_numpy(value)) for name, value in signals.items()})
        values.update(health.spectral_norms(self.model))
        return values

    def act(self, step):
        values = self.read_values()  # waits for the steps so far to finish
        now = time.perf_counter()
        if self._mark is not None and step > self._mark[0]:
            values["steps_per_sec"] = (step - self._mark[0]) / max(now - self._mark[1], 1e-9)
            if self.images_per_step:
                values["images_per_sec"] = values["steps_per_sec"] * self.images_per_step
        self._mark = (step, now)
        self.last_logs = values
        self.print_fn(self.format_line(step, values))
        if self.health_monitor is not None:
            for warning in self.health_monitor.update(step, values):
                self.warnings.append((step, warning))
                self.warn_fn(warning)
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                summaries.write_scalars(values, step)
        for metric in self.model.metrics:
            metric.reset_state()

    def format_line(self, step, values):
        """One progress line, e.g. "step 200/2000 (10.0%) d_loss 1.53 g_loss 0.61 ... grad D/G 2.1/0.45
        sn D/G 1.02/3.1 ... 4.2 steps/s 134 images/s eta 7m08s"."""
        width = len(str(self.total_steps))
        percent = 100.0 * step / self.total_steps if self.total_steps else 0.0
        parts = [f"step {step:>{width}}/{self.total_steps} ({percent:5.1f}%)"]
        pairs = {label: (d, g) for label, (d, g) in _PAIRED_LOGS.items() if d in values and g in values}
        paired = {name for pair in pairs.values() for name in pair}
        health_parts = [f"{label} {values[d]:.3g}/{values[g]:.3g}" for label, (d, g) in pairs.items()]
        for name, value in values.items():
            if name in paired or name in ("steps_per_sec", "images_per_sec"):
                continue
            parts.append(f"{name} {value:.4g}")
            if name == "d_fake":  # the health signals follow the losses and logits
                parts, health_parts = parts + health_parts, []
        parts += health_parts
        if "steps_per_sec" in values:
            parts.append(f"{values['steps_per_sec']:.2f} steps/s")
        if "images_per_sec" in values:
            parts.append(f"{values['images_per_sec']:.1f} images/s")
        if values.get("steps_per_sec") and self.total_steps > step:
            parts.append(f"eta {format_duration((self.total_steps - step) / values['steps_per_sec'])}")
        return "  ".join(parts)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.summary_writer is not None:
            self.summary_writer.flush()


def format_duration(seconds):
    """"45s", "7m08s", "3h05m" or "2d04h": a duration at a glance."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_figures(figures):
    """"FID 123.40  IS 2.31  KID 0.0123  precision 0.512 ..." from a dict of figures (missing or None ones are left
    out)."""
    parts = []
    for name in FIGURES:
        value = figures.get(name)
        if value is not None:
            parts.append(f"{_SHORT_NAMES[name]} {value:.4g}" if name == "kid" else
                         f"{_SHORT_NAMES[name]} {value:{'.2f' if name in ('fid', 'inception_score') else '.3f'}}")
    return "  ".join(parts)


def summarize_evaluations(history):
    """"FID 123.4 -> 12.3, IS 1.20 -> 3.50, precision 0.100 -> 0.600, ..." from the first and last step of
    `history` ({step: figures}), or None.

    A figure is included when both evaluations have it.
    """
    if not history:
        return None
    first, last = history[min(history)], history[max(history)]
    parts = []
    for name in FIGURES:
        a, b = first.get(name), last.get(name)
        if a is None or b is None:
            continue
        digits = _DIGITS.get(name, ".3f")
        parts.append(f"{_SHORT_NAMES[name]} {a:{digits}} -> {b:{digits}}")
    return ", ".join(parts)


class EvaluateEvery(PeriodicCallback):
    """Evaluates the model's sampling (EMA) generator at the start, every `every_n_steps` steps and at the end.

    Each evaluation calls `evaluate_fn(generator)` (e.g. a `sagan_tf.evaluation.Evaluator`), which returns a dict
    with "fid", "inception_score" and optionally "kid", "precision", "recall", "density", "coverage", and, from an
    `Evaluator`, their "provenance" (the classifier's identity, resize method, sample counts, real split). The
    callback adds the step and which generator it evaluated ("ema" or "raw") to the provenance, writes the figures to
    TensorBoard as "eval/<classifier tag>/<figure>" (e.g. "eval/domain-1a2b3c4d/fid"; "eval/<figure>" when there is
    no provenance) and the provenance as the text "eval/<classifier tag>/provenance", prints one line, and keeps the
    figures in `history` (step -> figures, with the plain names "fid", ... as keys) and the wall time spent in
    `seconds`, so that a run can report evaluation time against training time.

    Args:
      every_n_steps: period in training steps; 0 evaluates only at the start and the end.
      evaluate_fn: a function of the generator returning the figures.
      summary_writer: a `tf.summary` writer, or None.
      print_fn: where the lines go; default `print`.
      at_start: evaluate when training starts (step 0 of a new run, or the step a resumed run starts from).
      at_end: evaluate when training ends, unless that step was just evaluated.
    """

    def __init__(self, every_n_steps, evaluate_fn, summary_writer=None, print_fn=None, at_start=True, at_end=True):
        super().__init__(every_n_steps, at_start=at_start, at_end=at_end)
        if not callable(evaluate_fn):
            raise ValueError(f"evaluate_fn must be callable. Received: evaluate_fn={evaluate_fn!r}")
        self.evaluate_fn = evaluate_fn
        self.summary_writer = summary_writer
        self.print_fn = print_fn or print
        self.history = {}
        self.seconds = 0.0

    def evaluate(self, step):
        """Evaluates the current sampling generator for training step `step`; returns its figures."""
        start = time.perf_counter()
        figures = dict(self.evaluate_fn(sampling_generator(self.model)))
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        provenance = figures.get("provenance")
        tag = None
        if provenance is not None:
            ema = getattr(self.model, "ema_generator", None) is not None
            figures["provenance"] = provenance = {**provenance, "step": int(step), "generator": "ema" if ema else "raw"}
            tag = provenance["classifier"]["tag"]
        self.history[step] = figures
        self.last_step = step
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                prefix = f"eval/{tag}/" if tag else "eval/"
                summaries.write_scalars({name: figures.get(name) for name in FIGURES}, step, prefix=prefix)
                if provenance is not None:
                    summaries.write_text(f"{prefix}provenance", json.dumps(provenance, sort_keys=True), step)
            self.summary_writer.flush()
        samples = f"{figures['num_samples']} samples, " if figures.get("num_samples") else ""
        where = f" [{tag}]" if tag else ""
        self.print_fn(f"eval step {step}{where}: {format_figures(figures)} ({samples}{elapsed:.1f} s)")
        return figures

    def act(self, step):
        self.evaluate(step)

    def summary(self):
        """"FID 123.4 -> 12.3, IS 1.20 -> 3.50, ...": see `summarize_evaluations`."""
        return summarize_evaluations(self.history)


#: Direction of each evaluation figure a best checkpoint can be chosen by: lower is better for the distances.
METRIC_MODES = {name: "min" if name in ("fid", "kid") else "max" for name in FIGURES}
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


class GracefulStop(keras.callbacks.Callback):
    """Turns SIGTERM and SIGINT (Ctrl-C) into a clean stop after the current training step.

    While `fit` runs, the first such signal sets `signal_received` and `model.stop_training` and puts back the
    previous handler (a second Ctrl-C interrupts at once); `fit` then ends after the step it is running, through
    `on_train_end`, so a `CheckpointEvery` callback saves the final state. (Python runs the handler on the main
    thread between two steps' Python code, so nothing per step is needed.) Handlers can only be installed from the
    main thread; elsewhere this callback does nothing.

    Args:
      signals: the signal numbers to catch.
      print_fn: where the "stopping" message goes; default `print`.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT), print_fn=None):
        super().__init__()
        self.signals = tuple(signals)
        self.print_fn = print_fn or print
        self.signal_received = None
        self._previous_handlers = {}

    def _handle(self, signum, frame):
        if self.signal_received is None:
            self.signal_received = signum
            self.print_fn(f"Received {signal.Signals(signum).name}: stopping after this step and saving a "
                          "checkpoint (send it again to stop at once).")
            if self.model is not None:
                self.model.stop_training = True
        self._restore(signum)

    def _restore(self, signum):
        if signum in self._previous_handlers:
            previous = self._previous_handlers.pop(signum)
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def on_train_begin(self, logs=None):
        if self.signal_received is not None:  # received before this fit (e.g. during an evaluation): stop at once
            self.model.stop_training = True
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)

    def on_train_end(self, logs=None):
        for signum in list(self._previous_handlers):
            self._restore(signum)


__all__ = ["global_step", "sampling_generator", "PeriodicCallback", "SampleGrid", "CheckpointEvery",
           "NonFiniteGuard", "ProgressLogger", "EvaluateEvery", "BestCheckpoint", "GracefulStop", "format_figures",
           "format_duration", "summarize_evaluations", "parse_best_metric", "refuse_nonfinite_state", "FIGURES",
           "METRIC_MODES", "METRIC_SWITCHES"]
