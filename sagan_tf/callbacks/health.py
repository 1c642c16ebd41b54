"""Training health: the signals of a SAGAN run beyond its losses, and warnings for the known failure patterns.

GAN runs fail quietly: the losses of a collapsing run can look ordinary for a long time. Each progress line (see
`callbacks.ProgressLogger`) therefore also reports, and writes to TensorBoard:

    d_grad_norm, g_grad_norm          global gradient norm of each network's last update (`SAGAN.train_step`)
    d_real, d_fake                    mean discriminator logit on real and on generated images
    d_spectral_norm, g_spectral_norm  the largest spectral-norm estimate sigma(W) of the raw (unnormalized) weights
                                      among each network's spectrally normalized layers (`spectral_norms`)
    gamma_<g|d>_<layer>               each self-attention layer's gamma (paper eq. 3)
    images_per_sec                    throughput (and, in the line only, the ETA to the last step)

`HealthMonitor` reads these values line by line and warns, once per episode, on three patterns known to end GAN
runs (Brock et al. 2019, section 4; Arjovsky & Bottou 2017 on vanishing generator gradients):

- the discriminator logits separate without bound: the gap d_real - d_fake grows line after line beyond what the
  hinge loss asks for (a margin of 2), i.e. the discriminator overpowers the generator;
- the generator's gradient vanishes: g_grad_norm falls to a small fraction of its peak and stays there, so the
  generator stops learning;
- a network's raw weights explode: the largest spectral-norm estimate grows `sigma_growth` times within
  `sigma_window` steps (BigGAN's sign of imminent collapse). A spectrally normalized layer's output does not depend
  on the scale of its raw weight, so steps too large for the weights mostly inflate that scale, after which each step
  moves the normalized weight less (by its size over sigma) and training turns erratic: the learning rate is too high
  for that network. Raw spectral norms grow in every spectrally normalized GAN, fastest in its first hundred steps
  (a healthy dcgan64 run on a 64x64 folder: the discriminator's from 0.84 to 1.98 by step 100, the generator's from
  1.16 to 2.82 by step 200); a learning rate 100 times too high multiplies them by 10 or more within 20 steps.

A fourth pattern shows in the evaluations (`HealthMonitor.evaluation`, fed by `callbacks.EvaluateEvery`): a
class-conditional run whose generator ignores the label. Its images improve, but the classifier of the dataset's
classes does not recognize the class they were generated with. The rule: for `LABEL_PATIENCE` (2) evaluations in a
row, FID is at most `FID_IMPROVEMENT` (0.5) of its worst evaluation so far, while the class accuracy is below chance +
`NEAR_CHANCE` (0.1) x (1 - chance) (4 classes: 0.325). The worst FID, not the first, is the reference: an untrained
generator's noise scores better than the blobs that follow it. Calibrated on two recorded synthetic32 runs of 700
steps, evaluated every 50 steps on 1,000 images (`synthetic32_eval.json`, `synthetic32_shuffled_labels.json`):

- the default run: FID 59.9 at step 0, worst 92.7 at step 50, about 87 to step 350, then 76.9, 49.8, 36.4, 28.4,
  23.2, 17.3 and 14.9 (steps 400 to 700), its class accuracy 0.232 to 0.239 to step 400, then 0.284, 0.448, 0.521,
  0.562, 0.645 and 0.675. It lags FID by about one evaluation (at step 450: FID 54% of its worst, accuracy 0.284),
  which is why one evaluation is not enough. No warning;
- the same run with every real label replaced by a random class in the input pipeline: FID as far down (92.5 worst,
  then 83.1, 74.7, 56.1, 38.8, 29.8, 22.1, 17.3 at steps 400 to 700), class accuracy 0.221 to 0.234 throughout.
  Warned at step 600 (38.8 and 29.8, both below half of 92.5).

The thresholds of the first three are calibrated on recorded runs of the `synthetic32` and `dcgan64` presets
(`tests/callbacks/health_traces/`, replayed by `tests/callbacks/test_health.py`): their default runs raise no warning,
and the same runs with `d_lr` or `g_lr` 100 times higher do. Each warning names the values that triggered it and what
to try; given the run's config, it only suggests settings that differ from the current ones, with their values.
"""

import math

import keras

from sagan_tf.layers import SpectralNormalization


#: The label-ignored rule (`HealthMonitor.evaluation`): class accuracy counts as near chance below chance plus this
#: share of the way to 1 (4 classes: below 0.25 + 0.1 x 0.75 = 0.325) ...
NEAR_CHANCE = 0.1
#: ... while FID has fallen to at most this fraction of its worst evaluation so far ...
FID_IMPROVEMENT = 0.5
#: ... in this many evaluations in a row.
LABEL_PATIENCE = 2


def largest_spectral_norm(network):
    """The largest `SpectralNormalization.spectral_norm()` among `network`'s layers, or None when it has none."""
    norms = [float(layer.spectral_norm()) for layer in network._flatten_layers(include_self=False)
             if isinstance(layer, SpectralNormalization)]
    return max(norms) if norms else None


def spectral_norms(model):
    """{"d_spectral_norm": ..., "g_spectral_norm": ...} of a SAGAN's discriminator and generator (a network without
    spectrally normalized layers is left out)."""
    values = {}
    for key, name in (("d_spectral_norm", "discriminator"), ("g_spectral_norm", "generator")):
        network = getattr(model, name, None)
        if isinstance(network, keras.layers.Layer):
            norm = largest_spectral_norm(network)
            if norm is not None:
                values[key] = norm
    return values


#: SAGAN's two time-scale update rule (the paper, section 4): the learning rates a warning suggests going back to
#: when a run's preset is not known.
REFERENCE_LEARNING_RATES = {"d_lr": 4e-4, "g_lr": 1e-4}
#: A learning rate this many times its reference value counts as far above it.
FAR_ABOVE = 4.0


def _number(value):
    return f"{value:.3g}"


def reference_learning_rates(config):
    """The learning rates a run can go back to, and whose they are: its preset's when `config` is an
    `ExperimentConfig` of a preset (e.g. synthetic32's G 2e-4), else SAGAN's.

    Returns:
      ({"d_lr": ..., "g_lr": ...}, "synthetic32's" or "SAGAN's").
    """
    from sagan_tf.config import presets

    name = getattr(config, "name", None)
    if name in presets.PRESETS:
        preset = presets.get_preset(name).training
        return {"d_lr": preset.d_lr, "g_lr": preset.g_lr}, f"{name}'s"
    return dict(REFERENCE_LEARNING_RATES), "SAGAN's"


def lower_learning_rate(config, name):
    """How to lower the learning rate `name` ("d_lr" or "g_lr") of a run: back to its preset's (or SAGAN's) value
    when it is far above it, else to a quarter of the current one.

    Args:
      config: the run's `ExperimentConfig` or `TrainingConfig`, or None (advice without the run's values).
      name: "d_lr" or "g_lr".

    Returns:
      Advice such as "--d_lr from 0.04 to dcgan64's 0.0004 (100x lower)" or "--d_lr from 0.0004 to 0.0001 (a
      quarter)".
    """
    if config is None:
        return f"--{name} (SAGAN's two time-scale rates: d_lr 4e-4, g_lr 1e-4)"
    references, whose = reference_learning_rates(config)
    current, reference = getattr(_training(config), name), references[name]
    if current > FAR_ABOVE * reference:
        return f"--{name} from {_number(current)} to {whose} {_number(reference)} ({current / reference:.3g}x lower)"
    return f"--{name} from {_number(current)} to {_number(current / 4)} (a quarter)"


def _training(config):
    """The `TrainingConfig` of an `ExperimentConfig`, or `config` itself."""
    return getattr(config, "training", config)


class HealthMonitor:
    """Warns when the progress values of successive log lines show a known failure pattern.

    Args:
      config: the run's `ExperimentConfig` (or its `TrainingConfig`), so that the advice names the current learning
        rates, discriminator steps, batch size and loss, only suggests other values, and suggests going back to the
        preset's learning rates (else SAGAN's) where a rate is far above them; None: advice without them.
      gap_threshold: the logit gap d_real - d_fake above which a gap that keeps growing is a warning (the hinge
        loss is satisfied at a gap of 2; healthy runs stay within a few units of it).
      growth_lines: consecutive log lines over which the gap must have grown.
      vanish_ratio: g_grad_norm below this fraction of its largest value so far counts as vanishing.
      patience: consecutive log lines with a vanishing generator gradient before warning.
      sigma_growth: the factor by which a network's largest raw spectral norm must grow within `sigma_window` steps
        to count as exploding.
      sigma_window: the window of that growth, in training steps (the value at the start of training included; with
        log lines further apart, the growth since the previous line).
      near_chance: class accuracy below chance + near_chance x (1 - chance) counts as near chance.
      fid_improvement: FID at most this fraction of its worst evaluation so far counts as improved.
      label_patience: consecutive evaluations near chance with an improved FID before the label-ignored warning.

    Call `update(step, values)` with each progress line's values (and, to set the spectral norms' starting point,
    with those of the untrained or just restored model); it returns the warnings (strings) that line raises. Call
    `evaluation(step, figures)` with each evaluation's figures (`callbacks.EvaluateEvery` does). A pattern warns
    once, and again only after its values have recovered.
    """

    def __init__(self, config=None, gap_threshold=10.0, growth_lines=3, vanish_ratio=0.01, patience=2,
                 sigma_growth=6.0, sigma_window=100, near_chance=NEAR_CHANCE, fid_improvement=FID_IMPROVEMENT,
                 label_patience=LABEL_PATIENCE):
        if (gap_threshold <= 0 or growth_lines < 1 or not 0 < vanish_ratio < 1 or patience < 1 or sigma_growth <= 1
                or sigma_window < 1 or not 0 < near_chance < 1 or not 0 < fid_improvement < 1
                or label_patience < 1):
            raise ValueError("HealthMonitor needs gap_threshold > 0, growth_lines >= 1, 0 < vanish_ratio < 1, "
                             "patience >= 1, sigma_growth > 1, sigma_window >= 1, 0 < near_chance < 1, "
                             "0 < fid_improvement < 1 and label_patience >= 1. Received: "
                             f"gap_threshold={gap_threshold}, growth_lines={growth_lines}, "
                             f"vanish_ratio={vanish_ratio}, patience={patience}, sigma_growth={sigma_growth}, "
                             f"sigma_window={sigma_window}, near_chance={near_chance}, "
                             f"fid_improvement={fid_improvement}, label_patience={label_patience}")
        self.config = config
        self.gap_threshold = gap_threshold
        self.growth_lines = growth_lines
        self.vanish_ratio = vanish_ratio
        self.patience = patience
        self.sigma_growth = sigma_growth
        self.sigma_window = sigma_window
        self.near_chance = near_chance
        self.fid_improvement = fid_improvement
        self.label_patience = label_patience
        self._first_fid = self._worst_fid = None  # (step, FID) of the first and of the worst evaluation
        self._ignored_evaluations = 0
        self._sigmas = {}
        self._gaps = []
        self._peak_g_norm = 0.0
        self._low_g_lines = 0
        self._active = set()

    def update(self, step, values):
        """The warnings raised by the progress values `values` (a dict as logged) of training step `step`."""
        warnings = []
        warning = self._check_runaway(step, values)
        if warning:
            warnings.append(warning)
        warning = self._check_vanishing(step, values)
        if warning:
            warnings.append(warning)
        for key, network, name in (("d_spectral_norm", "discriminator", "d_lr"),
                                   ("g_spectral_norm", "generator", "g_lr")):
            warning = self._check_sigma(step, values, key, network, name)
            if warning:
                warnings.append(warning)
        return warnings

    def evaluation(self, step, figures):
        """The warnings raised by the evaluation figures `figures` (as `callbacks.EvaluateEvery` keeps them: "fid",
        and for a conditional run with a classifier of its classes "class_accuracy" and "chance") of step `step`."""
        warning = self._check_label_ignored(step, figures)
        return [warning] if warning else []

    def _check_label_ignored(self, step, figures):
        fid, accuracy, chance = figures.get("fid"), figures.get("class_accuracy"), figures.get("chance")
        if fid is None or not math.isfinite(fid):
            return None
        if self._first_fid is None:
            self._first_fid = (step, fid)
        if self._worst_fid is None or fid > self._worst_fid[1]:
            self._worst_fid = (step, fid)
        if accuracy is None or chance is None:
            return None
        worst_step, worst = self._worst_fid
        improved = fid <= self.fid_improvement * worst
        near_chance = accuracy < chance + self.near_chance * (1 - chance)
        self._ignored_evaluations = self._ignored_evaluations + 1 if improved and near_chance else 0
        if self._ignored_evaluations < self.label_patience:
            return self._once("label_ignored", False, None)
        model = getattr(self.config, "model", None)
        classes = f"--num_classes (now {model.num_classes})" if model is not None else "--num_classes"
        first_step, first = self._first_fid
        return self._once("label_ignored", True, (
            f"Step {step}: the generator ignores the class label: FID {first:.1f} (step {first_step}) -> {fid:.1f}, "
            f"{fid / worst:.0%} of its worst {worst:.1f} (step {worst_step}), but the classifier recognizes the class "
            f"the images were generated with in {accuracy:.1%} of them, near chance ({chance:.1%}), for "
            f"{self._ignored_evaluations} evaluations. Check that the data pipeline delivers each image's own label "
            f"(not shuffled, not all one class), {classes} against the dataset's classes, and that the labels reach "
            "the projection discriminator's class embedding and the generator's conditional batch norm (a custom "
            "network or train step that drops them)."))

    def _once(self, pattern, active, message):
        if not active:
            self._active.discard(pattern)
            return None
        if pattern in self._active:
            return None
        self._active.add(pattern)
        return message

    def _rebalance(self):
        """What to try when the discriminator overpowers the generator, as a list of suggestions."""
        if self.config is None:
            return ["a lower --d_lr (e.g. a quarter of it) or a higher --g_lr", "--d_steps=1", "a larger --batch_size"]
        training = _training(self.config)
        references, whose = reference_learning_rates(self.config)
        suggestions = []
        if training.g_lr > FAR_ABOVE * references["g_lr"]:
            # A generator stepping this far produces images the discriminator tells apart at once.
            suggestions.append(f"a lower {lower_learning_rate(self.config, 'g_lr')}")
        suggestions.append(f"a lower {lower_learning_rate(self.config, 'd_lr')}")
        if training.g_lr < references["g_lr"]:
            suggestions.append(f"a higher --g_lr, from {_number(training.g_lr)} to {whose} "
                               f"{_number(references['g_lr'])}")
        if training.d_steps > 1:
            suggestions.append(f"--d_steps=1 (now {training.d_steps})")
        suggestions.append(f"a larger --batch_size (now {training.batch_size}, e.g. {2 * training.batch_size})")
        return suggestions

    def _check_runaway(self, step, values):
        real, fake = values.get("d_real"), values.get("d_fake")
        if real is None or fake is None or not math.isfinite(real - fake):
            return None
        self._gaps = (self._gaps + [real - fake])[-(self.growth_lines + 1):]
        gaps = self._gaps
        growing = len(gaps) > self.growth_lines and all(b > a for a, b in zip(gaps, gaps[1:]))
        active = growing and gaps[-1] > self.gap_threshold
        if not active:
            return self._once("runaway", False, None)
        return self._once("runaway", True, (
            f"Step {step}: the discriminator is separating real from generated images without bound: its mean "
            f"logit gap d_real - d_fake grew over the last {self.growth_lines} log lines from {gaps[0]:.3g} to "
            f"{gaps[-1]:.3g} (d_real {real:.3g}, d_fake {fake:.3g}; the hinge loss needs only 2). The generator is "
            f"losing: try {_listed(self._rebalance())}; if it started after a resume or a dataset change, check that "
            "real images are in [-1, 1]."))

    def _check_vanishing(self, step, values):
        norm = values.get("g_grad_norm")
        if norm is None or not math.isfinite(norm):
            return None
        self._peak_g_norm = max(self._peak_g_norm, norm)
        low = norm < self.vanish_ratio * self._peak_g_norm
        self._low_g_lines = self._low_g_lines + 1 if low else 0
        active = self._low_g_lines >= self.patience
        if not active:
            return self._once("vanishing", False, None)
        suggestions = self._rebalance()[:-1]  # a larger batch does not revive a saturated discriminator's gradient
        loss = None if self.config is None else _training(self.config).loss
        if loss is not None and loss != "hinge":
            suggestions.append(f"the hinge loss instead of {loss} (TrainingConfig.loss; it keeps a gradient where the "
                               "discriminator is confident)")
        return self._once("vanishing", True, (
            f"Step {step}: the generator's gradient is vanishing: g_grad_norm {norm:.3g} is below "
            f"{self.vanish_ratio:g} of its peak {self._peak_g_norm:.3g} for {self._low_g_lines} log lines, so the "
            f"generator has almost stopped learning (a saturated discriminator gives it no signal). Try "
            f"{_listed(suggestions)}, or restart from an earlier checkpoint with those settings."))

    def _check_sigma(self, step, values, key, network, name):
        sigma = values.get(key)
        if sigma is None or not math.isfinite(sigma):
            return None
        history = self._sigmas.setdefault(key, [])
        before = [(s, value) for s, value in history if s < step]
        # The values within the window, or (log lines further apart than the window) the latest one before it.
        earlier = [(s, value) for s, value in before if s >= step - self.sigma_window] or before[-1:]
        history[:] = earlier + [(step, sigma)]
        if not earlier:
            return self._once(key, False, None)
        lowest_step, lowest = min(earlier, key=lambda item: item[1])
        if not sigma >= self.sigma_growth * lowest:
            return self._once(key, False, None)
        return self._once(key, True, (
            f"Step {step}: the {network}'s raw weights are exploding: the largest spectral-norm estimate of its "
            f"layers rose from {lowest:.3g} to {sigma:.3g} (x{sigma / lowest:.1f}) within {step - lowest_step} "
            f"steps, where a healthy run's grows by less than x{self.sigma_growth:g} in {self.sigma_window}. Its "
            "steps are too large for its weights, and as sigma grows each step moves the normalized weights less and "
            f"training turns erratic (BigGAN saw such jumps before collapse). Try a lower "
            f"{lower_learning_rate(self.config, name)}, or restart from an earlier checkpoint with it."))


def _listed(suggestions):
    """"a", "a or b", "a, b or c"."""
    return suggestions[0] if len(suggestions) == 1 else f"{', '.join(suggestions[:-1])} or {suggestions[-1]}"


__all__ = ["largest_spectral_norm", "spectral_norms", "HealthMonitor", "REFERENCE_LEARNING_RATES", "NEAR_CHANCE",
           "FID_IMPROVEMENT", "LABEL_PATIENCE",
           "reference_learning_rates", "lower_learning_rate"]
