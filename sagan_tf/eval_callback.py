"""`EvaluateEvery`: FID / IS (/ KID) of the sampling generator at the start, periodically and at the end of `fit`."""

import time

import keras

from sagan_tf import callbacks

#: The figures written to TensorBoard (as "eval/<name>") and printed, in this order.
FIGURES = ("fid", "inception_score", "kid")
_SHORT_NAMES = {"fid": "FID", "inception_score": "IS", "kid": "KID"}


def format_figures(figures):
    """"FID 123.4  IS 2.31  KID 0.0123" from a dict of figures (missing or None ones are left out)."""
    parts = []
    for name in FIGURES:
        value = figures.get(name)
        if value is not None:
            parts.append(f"{_SHORT_NAMES[name]} {value:.4g}" if name == "kid" else f"{_SHORT_NAMES[name]} {value:.2f}")
    return "  ".join(parts)


class EvaluateEvery(keras.callbacks.Callback):
    """Evaluates the model's sampling (EMA) generator at the start, every `every_n_steps` steps and at the end.

    The step is the training step (`callbacks.global_step`: generator updates). Each evaluation calls
    `evaluate_fn(generator)` (e.g. a `sagan_tf.evaluation.Evaluator`), which returns a dict with "fid",
    "inception_score" and optionally "kid"; the callback writes them to TensorBoard as "eval/fid",
    "eval/inception_score" and "eval/kid", prints one line, and keeps them in `history` (step -> figures) and the
    wall time spent in `seconds`, so that a run can report evaluation time against training time.

    Args:
      every_n_steps: period in training steps; 0 evaluates only at the start and the end.
      evaluate_fn: a function of the generator returning the figures.
      summary_writer: a `tf.summary` writer, or None.
      print_fn: where the lines go; default `print`.
      at_start: evaluate when training starts (step 0 of a new run, or the step a resumed run starts from).
      at_end: evaluate when training ends, unless that step was just evaluated.
    """

    def __init__(self, every_n_steps, evaluate_fn, summary_writer=None, print_fn=None, at_start=True, at_end=True):
        super().__init__()
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 0:
            raise ValueError(f"every_n_steps must be an integer >= 0. Received: every_n_steps={every_n_steps!r}")
        if not callable(evaluate_fn):
            raise ValueError(f"evaluate_fn must be callable. Received: evaluate_fn={evaluate_fn!r}")
        self.every_n_steps = every_n_steps
        self.evaluate_fn = evaluate_fn
        self.summary_writer = summary_writer
        self.print_fn = print_fn or print
        self.at_start = at_start
        self.at_end = at_end
        self.history = {}
        self.seconds = 0.0
        self._last_step = None

    def evaluate(self, step):
        """Evaluates the current sampling generator for training step `step`; returns its figures."""
        generator = getattr(self.model, "sampling_generator", None) or self.model.generator
        start = time.perf_counter()
        figures = dict(self.evaluate_fn(generator))
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.history[step] = figures
        self._last_step = step
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                for name in FIGURES:
                    if figures.get(name) is not None:
                        callbacks.write_scalar(f"eval/{name}", figures[name], step)
            self.summary_writer.flush()
        samples = f"{figures['num_samples']} samples, " if figures.get("num_samples") else ""
        self.print_fn(f"eval step {step}: {format_figures(figures)} ({samples}{elapsed:.1f} s)")
        return figures

    def on_train_begin(self, logs=None):
        self._previous = callbacks.global_step(self.model)
        if self.at_start and self._previous != self._last_step:
            self.evaluate(self._previous)

    def on_train_batch_end(self, batch, logs=None):
        step = callbacks.global_step(self.model)
        if callbacks._crossed(self._previous, step, self.every_n_steps):
            self.evaluate(step)
        self._previous = step

    def on_train_end(self, logs=None):
        step = callbacks.global_step(self.model)
        if self.at_end and step != self._last_step:
            self.evaluate(step)

    def summary(self):
        """"FID 123.4 -> 12.3, IS 1.20 -> 3.50": see `summarize`."""
        return summarize(self.history)


def summarize(history):
    """"FID 123.4 -> 12.3, IS 1.20 -> 3.50" from the first and last step of `history` ({step: figures}), or None.

    KID is included when both evaluations have it.
    """
    if not history:
        return None
    first, last = history[min(history)], history[max(history)]
    parts = []
    for name in FIGURES:
        a, b = first.get(name), last.get(name)
        if a is None or b is None:
            continue
        digits = ".4g" if name == "kid" else (".1f" if name == "fid" else ".2f")
        parts.append(f"{_SHORT_NAMES[name]} {a:{digits}} -> {b:{digits}}")
    return ", ".join(parts)
