"""Evaluations during training (`EvaluateEvery`) and their summary."""

import json
import time

from sagan_tf.callbacks.periodic import PeriodicCallback, sampling_generator
from sagan_tf.evaluation.evaluator import FIGURES
from sagan_tf.sampling import summaries


# FIGURES (from sagan_tf.evaluation): the figures written to TensorBoard as "eval/<classifier tag>/<name>" and
# printed, in that order.
_SHORT_NAMES = {"fid": "FID", "inception_score": "IS", "kid": "KID", "precision": "precision", "recall": "recall",
                "density": "density", "coverage": "coverage", "class_accuracy": "class acc",
                "class_accuracy_top5": "class acc top-5", "chance": "chance"}
_DIGITS = {"fid": ".1f", "inception_score": ".2f", "kid": ".4g"}  # the k-NN figures: ".3f"


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
    """"FID 123.4 -> 12.3, IS 1.20 -> 3.50, precision 0.100 -> 0.600, ..., class acc 0.250 -> 0.900 (chance
    0.250)" from the first and last step of `history` ({step: figures}), or None.

    A figure is included when both evaluations have it.
    """
    if not history:
        return None
    first, last = history[min(history)], history[max(history)]
    parts = []
    for name in FIGURES:
        a, b = first.get(name), last.get(name)
        if a is None or b is None or name == "chance":
            continue
        digits = _DIGITS.get(name, ".3f")
        parts.append(f"{_SHORT_NAMES[name]} {a:{digits}} -> {b:{digits}}")
    summary = ", ".join(parts)
    if last.get("chance") is not None and last.get("class_accuracy") is not None:
        summary += f" (chance {last['chance']:.3f})"
    return summary


class EvaluateEvery(PeriodicCallback):
    """Evaluates the model's sampling (EMA) generator at the start, every `every_n_steps` steps and at the end.

    Each evaluation calls `evaluate_fn(generator)` (e.g. a `sagan_tf.evaluation.Evaluator`), which returns a dict
    with "fid", "inception_score" and optionally "kid", "precision", "recall", "density", "coverage", the class
    accuracies and chance (a conditional generator and a classifier of the dataset's classes), and, from an
    `Evaluator`, their "provenance" (the classifier's identity, resize method, sample counts, real split). The
    callback adds the step and which generator it evaluated ("ema" or "raw") to the provenance, writes the figures to
    TensorBoard as "eval/<classifier tag>/<figure>" (e.g. "eval/domain-1a2b3c4d/fid"; "eval/<figure>" when there is
    no provenance) and the provenance as the text "eval/<classifier tag>/provenance", prints one line, and keeps the
    figures in `history` (step -> figures, with the plain names "fid", ... as keys) and the wall time spent in
    `seconds`, so that a run can report evaluation time against training time. Given a `health_monitor`, each
    evaluation's figures go to its `evaluation` hook (a conditional generator that ignores its labels), and its
    warnings to `warn_fn` and `warnings` ([(step, message)]).

    Args:
      every_n_steps: period in training steps; 0 evaluates only at the start and the end.
      evaluate_fn: a function of the generator returning the figures.
      summary_writer: a `tf.summary` writer, or None.
      print_fn: where the lines go; default `print`.
      at_start: evaluate when training starts (step 0 of a new run, or the step a resumed run starts from).
      at_end: evaluate when training ends, unless that step was just evaluated.
      health_monitor: a `health.HealthMonitor`, or None.
      warn_fn: where health warnings go; default `print_fn`.
    """

    def __init__(self, every_n_steps, evaluate_fn, summary_writer=None, print_fn=None, at_start=True, at_end=True,
                 health_monitor=None, warn_fn=None):
        super().__init__(every_n_steps, at_start=at_start, at_end=at_end)
        if not callable(evaluate_fn):
            raise ValueError(f"evaluate_fn must be callable. Received: evaluate_fn={evaluate_fn!r}")
        self.evaluate_fn = evaluate_fn
        self.summary_writer = summary_writer
        self.print_fn = print_fn or print
        self.health_monitor = health_monitor
        self.warn_fn = warn_fn or self.print_fn
        self.warnings = []
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
        if self.health_monitor is not None:
            for warning in self.health_monitor.evaluation(step, figures):
                self.warnings.append((step, warning))
                self.warn_fn(warning)
        return figures

    def act(self, step):
        self.evaluate(step)

    def summary(self):
        """"FID 123.4 -> 12.3, IS 1.20 -> 3.50, ...": see `summarize_evaluations`."""
        return summarize_evaluations(self.history)
