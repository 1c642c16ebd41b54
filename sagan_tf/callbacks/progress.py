"""Progress lines and TensorBoard scalars during training, with the health signals (`ProgressLogger`)."""

import time

import keras

from sagan_tf.callbacks import health
from sagan_tf.callbacks.periodic import PeriodicCallback
from sagan_tf.sampling import summaries


_PAIRED_LOGS = {"grad D/G": ("d_grad_norm", "g_grad_norm"), "sn D/G": ("d_spectral_norm", "g_spectral_norm")}


class ProgressLogger(PeriodicCallback):
    """Logs progress every `every_n_steps` steps: step/total, losses, health signals, gammas, throughput and ETA.

    Every value is read from the model when a line is due (no per-step work): the model's metrics (losses, logits
    and gradient norms of `SAGAN`), which are means over the steps since the previous line because the logger
    resets them after each line (they would otherwise average over the whole `fit` epoch); each attention layer's
    gamma (`SAGAN.attention_gammas`); with ADA, its augmentation probability `ada_p` and last heuristic `ada_rt`
    (`SAGAN.augment_signals`); and the largest spectral-norm estimate of each network's raw weights
    (`health.spectral_norms`). See `sagan_tf.callbacks.health` for what each signal says. Throughput is measured from
    the first batch after tracing and compilation; the ETA is the remaining steps at the current throughput. Given a
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
