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
- a network's raw weights explode: the largest spectral-norm estimate at least doubles within a few log lines
  (BigGAN's sign of imminent collapse). A spectrally normalized layer's output does not depend on the scale of its
  raw weight, so steps too large for the weights mostly inflate that scale, after which each step moves the
  normalized weight less (by its size over sigma) and training turns erratic: the learning rate is too high for that
  network. Slow growth over a long run is normal; a jump is not.

Each warning names the values that triggered it and what to try.
"""

import math

import keras

from sagan_tf.layers import SpectralNormalization


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


class HealthMonitor:
    """Warns when the progress values of successive log lines show a known failure pattern.

    Args:
      gap_threshold: the logit gap d_real - d_fake above which a gap that keeps growing is a warning (the hinge
        loss is satisfied at a gap of 2; healthy runs stay within a few units of it).
      growth_lines: consecutive log lines over which the gap must have grown.
      vanish_ratio: g_grad_norm below this fraction of its largest value so far counts as vanishing.
      patience: consecutive log lines with a vanishing generator gradient before warning.
      sigma_growth: the factor by which a network's largest raw spectral norm must grow within `sigma_lines` log
        lines to count as exploding.
      sigma_lines: the window of that growth, in log lines (the values seen at the start of training included).

    Call `update(step, values)` with each progress line's values (and, to set the spectral norms' starting point,
    with those of the untrained or just restored model); it returns the warnings (strings) that line raises. A
    pattern warns once, and again only after its values have recovered.
    """

    def __init__(self, gap_threshold=10.0, growth_lines=3, vanish_ratio=0.01, patience=2, sigma_growth=2.0,
                 sigma_lines=5):
        if (gap_threshold <= 0 or growth_lines < 1 or not 0 < vanish_ratio < 1 or patience < 1 or sigma_growth <= 1
                or sigma_lines < 1):
            raise ValueError("HealthMonitor needs gap_threshold > 0, growth_lines >= 1, 0 < vanish_ratio < 1, "
                             "patience >= 1, sigma_growth > 1 and sigma_lines >= 1. Received: "
                             f"gap_threshold={gap_threshold}, growth_lines={growth_lines}, "
                             f"vanish_ratio={vanish_ratio}, patience={patience}, sigma_growth={sigma_growth}, "
                             f"sigma_lines={sigma_lines}")
        self.gap_threshold = gap_threshold
        self.growth_lines = growth_lines
        self.vanish_ratio = vanish_ratio
        self.patience = patience
        self.sigma_growth = sigma_growth
        self.sigma_lines = sigma_lines
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
        for key, network, flag in (("d_spectral_norm", "discriminator", "--d_lr"),
                                   ("g_spectral_norm", "generator", "--g_lr")):
            warning = self._check_sigma(step, values, key, network, flag)
            if warning:
                warnings.append(warning)
        return warnings

    def _once(self, pattern, active, message):
        if not active:
            self._active.discard(pattern)
            return None
        if pattern in self._active:
            return None
        self._active.add(pattern)
        return message

    def _check_runaway(self, step, values):
        real, fake = values.get("d_real"), values.get("d_fake")
        if real is None or fake is None or not math.isfinite(real - fake):
            return None
        self._gaps = (self._gaps + [real - fake])[-(self.growth_lines + 1):]
        gaps = self._gaps
        growing = len(gaps) > self.growth_lines and all(b > a for a, b in zip(gaps, gaps[1:]))
        active = growing and gaps[-1] > self.gap_threshold
        return self._once("runaway", active, (
            f"Step {step}: the discriminator is separating real from generated images without bound: its mean "
            f"logit gap d_real - d_fake grew over the last {self.growth_lines} log lines from {gaps[0]:.3g} to "
            f"{gaps[-1]:.3g} (d_real {real:.3g}, d_fake {fake:.3g}; the hinge loss needs only 2). The generator is "
            "losing: try a lower --d_lr (e.g. a quarter of it) or a higher --g_lr, --d_steps=1, or a larger batch; "
            "if it started after a resume or a dataset change, check that real images are in [-1, 1]."))

    def _check_vanishing(self, step, values):
        norm = values.get("g_grad_norm")
        if norm is None or not math.isfinite(norm):
            return None
        self._peak_g_norm = max(self._peak_g_norm, norm)
        low = norm < self.vanish_ratio * self._peak_g_norm
        self._low_g_lines = self._low_g_lines + 1 if low else 0
        active = self._low_g_lines >= self.patience
        return self._once("vanishing", active, (
            f"Step {step}: the generator's gradient is vanishing: g_grad_norm {norm:.3g} is below "
            f"{self.vanish_ratio:g} of its peak {self._peak_g_norm:.3g} for {self._low_g_lines} log lines, so the "
            "generator has almost stopped learning (a saturated discriminator gives it no signal). Try a lower "
            "--d_lr or a higher --g_lr, the hinge loss if the run uses another (TrainingConfig.loss; it keeps a "
            "gradient where the discriminator is confident), or restart from an earlier checkpoint with lower "
            "learning rates."))

    def _check_sigma(self, step, values, key, network, flag):
        sigma = values.get(key)
        if sigma is None or not math.isfinite(sigma):
            return None
        history = self._sigmas.setdefault(key, [])
        earlier = history[-self.sigma_lines:]
        history.append(sigma)
        del history[:-self.sigma_lines - 1]
        lowest = min(earlier) if earlier else None
        active = lowest is not None and sigma >= self.sigma_growth * lowest
        if not active:
            return self._once(key, False, None)
        lines = len(earlier) - earlier.index(lowest)
        return self._once(key, True, (
            f"Step {step}: the {network}'s raw weights are exploding: the largest spectral-norm estimate of its "
            f"layers rose from {lowest:.3g} to {sigma:.3g} (x{sigma / lowest:.1f}) within {lines} log line(s). "
            "Its steps are too large for its weights, and as sigma grows each step moves the normalized weights less "
            f"and training turns erratic (BigGAN saw such jumps before collapse). Lower {flag} (SAGAN's TTUR: 4e-4 "
            "for the discriminator, 1e-4 for the generator), or restart from an earlier checkpoint."))


__all__ = ["largest_spectral_norm", "spectral_norms", "HealthMonitor"]
