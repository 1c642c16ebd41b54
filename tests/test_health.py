"""sagan_tf.health: the spectral-norm signal of each network, and the warnings for the known failure patterns."""

import keras
import numpy as np
import pytest

from sagan_tf import health
from sagan_tf.layers import SpectralNormalization
from sagan_tf.models import build_sagan
from tests.tiny import tiny_config


def test_spectral_norms_are_the_largest_raw_sigma_of_each_network():
    gan = build_sagan(tiny_config())
    expected = {}
    for key, network in (("d_spectral_norm", gan.discriminator), ("g_spectral_norm", gan.generator)):
        sigmas = []
        for layer in network._flatten_layers(include_self=False):
            if isinstance(layer, SpectralNormalization):
                kernel, u = np.asarray(layer._weight.numpy(), np.float64), layer.u.numpy()
                if layer._output_axis == -2:
                    kernel = np.swapaxes(kernel, -1, -2)
                sigmas.append(np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]) @ u))
        assert len(sigmas) > 3
        expected[key] = max(sigmas)
    values = health.spectral_norms(gan)
    assert values.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(values[key], expected[key], rtol=1e-5)
    # A network without spectral normalization has no such signal.
    assert health.largest_spectral_norm(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])) is None


def feed(monitor, rows, key_values):
    """Feeds one progress line per row of values; returns {step: warnings}."""
    raised = {}
    for step, row in enumerate(rows, start=1):
        values = dict(zip(key_values, row))
        warnings = monitor.update(step * 100, values)
        if warnings:
            raised[step * 100] = warnings
    return raised


def test_discriminator_runaway_warns_once_when_the_gap_keeps_growing_past_the_threshold():
    monitor = health.HealthMonitor(gap_threshold=10, growth_lines=3)
    gaps = [2.0, 3.0, 2.5, 4.0, 6.0, 9.0, 12.0, 15.0, 20.0, 3.0, 4.0, 8.0, 12.0, 16.0]
    raised = feed(monitor, [(g / 2, -g / 2) for g in gaps], ("d_real", "d_fake"))
    # Step 700: the gap grew over 3 lines (4 -> 6 -> 9 -> 12) and passed 10. It warns once until the gap recovers
    # (3.0 at step 1000), then again when it runs away a second time (3 -> 4 -> 8 -> 12 at step 1300).
    assert sorted(raised) == [700, 1300]
    message = raised[700][0]
    assert "grew over the last 3 log lines from 4 to 12" in message and "--d_lr" in message
    # A large but steady gap, as the un-normalized DCGAN discriminator shows early on, is no warning.
    steady = health.HealthMonitor()
    assert feed(steady, [(10.0, -3.0), (9.0, -3.5), (11.0, -2.0), (10.5, -3.0)] * 3, ("d_real", "d_fake")) == {}


def test_vanishing_generator_gradient_warns_after_patience_lines():
    monitor = health.HealthMonitor(vanish_ratio=0.01, patience=2)
    norms = [1.0, 3.0, 2.0, 0.02, 0.5, 0.02, 0.01, 0.005, 0.004]
    raised = feed(monitor, [(n,) for n in norms], ("g_grad_norm",))
    # Below 1% of the peak 3.0 from step 600 on; the second such line (700) warns, once.
    assert sorted(raised) == [700]
    assert "g_grad_norm 0.01 is below 0.01 of its peak 3" in raised[700][0]
    assert feed(health.HealthMonitor(), [(float("nan"),), (None,)], ("g_grad_norm",)) == {}


def test_exploding_raw_weights_warn_per_network_but_slow_growth_does_not():
    monitor = health.HealthMonitor(sigma_growth=2.0, sigma_lines=3)
    # D: the value before training, then a jump (x11) in the first line, a plateau, and a second doubling.
    d = [1.9, 22.0, 22.5, 23.0, 23.0, 24.0, 30.0, 47.0, 50.0]
    g = [1.9 * 1.02 ** i for i in range(len(d))]  # slow growth, as in a healthy run: no warning
    raised = {}
    for step, (sigma_d, sigma_g) in enumerate(zip(d, g)):
        warnings = monitor.update(step, {"d_spectral_norm": sigma_d, "g_spectral_norm": sigma_g})
        if warnings:
            raised[step] = warnings
    # Step 1: 22 >= 2 x 1.9. Step 7: 47 >= 2 x 23 (the lowest of the previous 3 lines), after the plateau cleared it.
    assert sorted(raised) == [1, 7] and all(len(w) == 1 for w in raised.values())
    assert "discriminator's raw weights are exploding" in raised[1][0] and "from 1.9 to 22 (x11.6)" in raised[1][0]
    assert "--d_lr" in raised[1][0] and "from 23 to 47" in raised[7][0]
    monitor = health.HealthMonitor()
    assert monitor.update(0, {"g_spectral_norm": 2.0}) == []
    warning, = monitor.update(1, {"g_spectral_norm": 9.0})
    assert "generator's raw weights are exploding" in warning and "--g_lr" in warning


def test_monitor_validates_its_thresholds():
    with pytest.raises(ValueError, match="HealthMonitor needs"):
        health.HealthMonitor(vanish_ratio=1.5)
