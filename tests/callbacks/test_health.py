"""sagan_tf.callbacks.health: the spectral-norm signal of each network, and the warnings for the known failure
patterns."""

import json
import pathlib

import keras
import numpy as np
import pytest

from sagan_tf.callbacks import health
from sagan_tf.layers import SpectralNormalization
from sagan_tf.models import build_sagan
from sagan_tf.config.presets import get_preset
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


def test_exploding_raw_weights_warn_per_network_but_healthy_growth_does_not():
    monitor = health.HealthMonitor(sigma_growth=4.0, sigma_window=100)
    # D: the value before training, then a jump (x11) in the first 20 steps, a plateau, and a second jump (x4 within
    # 100 steps) at step 140. G: a healthy run's early growth, x2.4 by step 100 (no warning).
    d = [1.9, 22.0, 22.5, 23.0, 23.0, 24.0, 30.0, 95.0, 96.0]
    g = [1.16, 1.6, 2.0, 2.3, 2.6, 2.8, 2.9, 3.0, 3.1]
    raised = {}
    for step, (sigma_d, sigma_g) in zip(range(0, 200, 20), zip(d, g)):
        warnings = monitor.update(step, {"d_spectral_norm": sigma_d, "g_spectral_norm": sigma_g})
        if warnings:
            raised[step] = warnings
    # Step 20: 22 >= 4 x 1.9. Step 140: 95 >= 4 x 22.5 (the lowest of steps 40 to 120), after the plateau cleared it.
    assert sorted(raised) == [20, 140] and all(len(w) == 1 for w in raised.values())
    assert "discriminator's raw weights are exploding" in raised[20][0]
    assert "from 1.9 to 22 (x11.6) within 20 steps" in raised[20][0] and "--d_lr" in raised[20][0]
    assert "from 22.5 to 95 (x4.2) within 100 steps" in raised[140][0]
    monitor = health.HealthMonitor()
    assert monitor.update(0, {"g_spectral_norm": 2.0}) == []
    warning, = monitor.update(100, {"g_spectral_norm": 13.0})
    assert "generator's raw weights are exploding" in warning and "--g_lr" in warning
    # Log lines further apart than the window: the growth since the previous line.
    sparse = health.HealthMonitor(sigma_window=100)
    assert sparse.update(0, {"d_spectral_norm": 1.0}) == [] and sparse.update(500, {"d_spectral_norm": 3.0}) == []
    assert len(sparse.update(1000, {"d_spectral_norm": 19.0})) == 1


def test_advice_names_the_current_settings_and_only_suggests_other_ones():
    default = get_preset("dcgan64")
    # A run at its preset's rates (SAGAN's) is not told to use them: it is told to go below its current values.
    assert health.lower_learning_rate(default, "d_lr") == "--d_lr from 0.0004 to 0.0001 (a quarter)"
    assert health.lower_learning_rate(default.replace(d_lr=4e-2), "d_lr") == (
        "--d_lr from 0.04 to dcgan64's 0.0004 (100x lower)")
    # Far above: back to the preset's own rate (synthetic32 trains G at 2e-4), or SAGAN's without a preset.
    assert health.lower_learning_rate(get_preset("synthetic32").replace(g_lr=2e-2), "g_lr") == (
        "--g_lr from 0.02 to synthetic32's 0.0002 (100x lower)")
    assert health.lower_learning_rate(default.replace(d_lr=4e-2).training, "d_lr") == (
        "--d_lr from 0.04 to SAGAN's 0.0004 (100x lower)")
    monitor = health.HealthMonitor(default)
    monitor.update(0, {"d_spectral_norm": 1.0})
    warning, = monitor.update(100, {"d_spectral_norm": 7.0})
    assert "--d_lr from 0.0004 to 0.0001" in warning and "4e-4" not in warning

    def runaway_warning(config):
        monitor = health.HealthMonitor(config, gap_threshold=10, growth_lines=3)
        raised = feed(monitor, [(g / 2, -g / 2) for g in (4.0, 6.0, 9.0, 12.0)], ("d_real", "d_fake"))
        return raised[400][0]

    message = runaway_warning(default)
    assert "a lower --d_lr from 0.0004 to 0.0001 (a quarter)" in message
    assert "a larger --batch_size (now 64, e.g. 128)" in message
    assert "--d_steps" not in message and "higher --g_lr" not in message  # already 1, already the preset's 1e-4
    slow = runaway_warning(default.replace(d_steps=2, g_lr=5e-5))
    assert "--d_steps=1 (now 2)" in slow and "a higher --g_lr, from 5e-05 to dcgan64's 0.0001" in slow
    fast_g = runaway_warning(default.replace(g_lr=1e-2))
    assert fast_g.index("a lower --g_lr from 0.01 to dcgan64's 0.0001 (100x lower)") < fast_g.index("--d_lr")

    def vanishing_warning(config):
        monitor = health.HealthMonitor(config)
        return feed(monitor, [(n,) for n in (3.0, 0.01, 0.01)], ("g_grad_norm",))[300][0]

    assert "hinge" not in vanishing_warning(default) and "--batch_size" not in vanishing_warning(default)
    assert "the hinge loss instead of non_saturating" in vanishing_warning(default.replace(loss="non_saturating"))


def test_monitor_validates_its_thresholds():
    with pytest.raises(ValueError, match="HealthMonitor needs"):
        health.HealthMonitor(vanish_ratio=1.5)


# Recorded runs (tests/callbacks/health_traces/record.py): the values each progress line handed the monitor, every 20
# steps.
TRACES = pathlib.Path(__file__).parent / "health_traces"
# The presets' default runs: synthetic32 2000 steps, dcgan64 240 (the 64x64 icon folder), cifar32 200 (the synthetic
# dataset at batch 8, a CPU's affordable recording).
HEALTHY = ("synthetic32", "dcgan64", "cifar32")
BROKEN = {  # the same runs with one learning rate 100 times the preset's: (the network, its flag)
    "synthetic32_d_lr_x100": ("discriminator", "d_lr"), "synthetic32_g_lr_x100": ("generator", "g_lr"),
    "dcgan64_d_lr_x100": ("discriminator", "d_lr"), "dcgan64_g_lr_x100": ("generator", "g_lr"),
    "cifar32_d_lr_x100": ("discriminator", "d_lr"), "cifar32_g_lr_x100": ("generator", "g_lr")}
#: Window means of the losses and logits; the other values are read at the line's step.
_MEANS = ("d_loss", "g_loss", "d_real", "d_fake")


def trace_lines(name, every):
    """The recorded run `name` as its progress lines every `every` steps (a multiple of the recording's 20): the
    window means merged, the other values those of the line's step."""
    trace = json.loads((TRACES / f"{name}.json").read_text())
    assert every % trace["log_every"] == 0
    lines, window = [trace["lines"][0]], []
    for step, values in trace["lines"][1:]:
        window.append(values)
        if step % every == 0:
            lines.append([step, {**values, **{key: float(np.mean([w[key] for w in window])) for key in _MEANS}}])
            window = []
    return trace, lines


def replay(name, every, **thresholds):
    """{step: warnings} of a HealthMonitor that knows the run's config, fed the recorded run's lines."""
    trace, lines = trace_lines(name, every)
    monitor = health.HealthMonitor(get_preset(trace["preset"]).replace(**trace["training"]), **thresholds)
    return {step: warnings for step, values in lines if (warnings := monitor.update(step, values))}


@pytest.mark.parametrize("every", [20, 100])
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_default_runs_raise_no_warning(name, every):
    assert replay(name, every) == {}


def test_the_old_sigma_rule_cried_wolf_on_the_healthy_dcgan64_run():
    # x2 within 5 log lines of 100 steps: the rule that warned "the discriminator's raw weights are exploding" at
    # step 100 of a default dcgan64 run. Raw spectral norms grow about that much early in every healthy run.
    raised = replay("dcgan64", 100, sigma_growth=2.0, sigma_window=500)
    assert 100 in raised and "discriminator's raw weights are exploding" in raised[100][0]


@pytest.mark.parametrize("every", [20, 100])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_runs_with_a_learning_rate_100_times_too_high_warn_early_and_name_it(name, every):
    network, flag = BROKEN[name]
    trace, _ = trace_lines(name, every)
    raised = replay(name, every)
    first = min(raised)
    assert first <= 100, raised
    warning = next(w for w in raised[first] if f"the {network}'s raw weights are exploding" in w)
    rate, preset = trace["training"][flag], trace["preset"]
    assert f"a lower --{flag} from {rate:.3g} to {preset}'s {getattr(get_preset(preset).training, flag):.3g}" in (
        warning)


def feed_evaluations(monitor, evaluations):
    """{step: warnings} of `monitor.evaluation` fed (step, FID, class accuracy) rows (chance 0.25: 4 classes)."""
    raised = {}
    for step, fid, accuracy in evaluations:
        figures = {"fid": fid} if accuracy is None else {"fid": fid, "class_accuracy": accuracy, "chance": 0.25}
        warnings = monitor.evaluation(step, figures)
        if warnings:
            raised[step] = warnings
    return raised


def test_a_conditional_run_whose_class_accuracy_stays_at_chance_while_fid_improves_is_warned_once():
    # FID first rises (an untrained generator's noise is more varied than its first blobs, as in the recorded runs),
    # then falls to half of its worst (90) and below from step 100 on; accuracy stays below chance + 0.1 x (1 -
    # chance) = 0.325.
    fids = [(0, 60.0), (50, 90.0), (100, 44.0), (150, 29.0), (200, 20.0), (250, 15.0), (300, 12.0)]
    ignored = [(step, fid, 0.26) for step, fid in fids]
    raised = feed_evaluations(health.HealthMonitor(get_preset("synthetic32")), ignored)
    assert list(raised) == [150]  # the second such evaluation in a row; once
    message, = raised[150]
    assert "the generator ignores the class label: FID 60.0 (step 0) -> 29.0, 32% of its worst 90.0 (step 50)" in (
        message)
    assert "in 26.0% of them, near chance (25.0%), for 2 evaluations" in message
    assert "--num_classes (now 4)" in message and "projection discriminator" in message
    # One evaluation above the line in between starts the count again.
    blip = [(s, f, 0.5 if s == 150 else a) for s, f, a in ignored]
    assert list(feed_evaluations(health.HealthMonitor(), blip)) == [250]
    # A run that learns the label, an unconditional run (no class accuracy), and FID above half its worst: no warning.
    assert feed_evaluations(health.HealthMonitor(), [(s, f, 0.26 if s < 150 else 0.6) for s, f in fids]) == {}
    assert feed_evaluations(health.HealthMonitor(), [(s, f, None) for s, f in fids]) == {}
    assert feed_evaluations(health.HealthMonitor(), [(s, max(f, 46.0), 0.25) for s, f in fids]) == {}


def test_evaluate_every_hands_its_figures_to_the_health_monitor():
    from sagan_tf import callbacks
    from tests.callbacks.test_callbacks import StubModel, drive

    model, warned = StubModel(), []
    figures = {0: (60.0, 0.25), 2: (25.0, 0.25), 4: (20.0, 0.26)}

    def evaluate(generator):
        fid, accuracy = figures[int(model.g_optimizer.iterations.numpy())]
        return {"fid": fid, "class_accuracy": accuracy, "chance": 0.25}

    callback = callbacks.EvaluateEvery(2, evaluate, print_fn=lambda line: None,
                                       health_monitor=health.HealthMonitor(), warn_fn=warned.append)
    drive(callback, model, 4)
    assert [step for step, _ in callback.warnings] == [4] and warned == [callback.warnings[0][1]]


#: Recorded synthetic32 runs with an evaluation every 50 steps (1,000 images): the default run, and the same run with
#: every real image's label replaced by a random class in the input pipeline (record.py --shuffle_labels).
LABEL_TRACES = {"synthetic32_eval": False, "synthetic32_shuffled_labels": True}


def replay_with_evaluations(name):
    """{step: warnings} of a HealthMonitor fed the recorded run's progress lines and evaluations in the order of
    training (at a step, the progress line first, as the callbacks run)."""
    trace = json.loads((TRACES / f"{name}.json").read_text())
    monitor = health.HealthMonitor(get_preset(trace["preset"]).replace(**trace["training"]))
    events = sorted([(step, 0, values) for step, values in trace["lines"]] +
                    [(step, 1, figures) for step, figures in trace["evaluations"]], key=lambda event: event[:2])
    raised = {}
    for step, kind, values in events:
        warnings = monitor.evaluation(step, values) if kind else monitor.update(step, values)
        if warnings:
            raised.setdefault(step, []).extend(warnings)
    return trace, raised


@pytest.mark.parametrize("name", sorted(LABEL_TRACES))
def test_recorded_runs_warn_about_ignored_labels_only_when_the_labels_were_shuffled(name):
    trace, raised = replay_with_evaluations(name)
    assert trace["shuffled_labels"] == LABEL_TRACES[name]
    assert len(trace["evaluations"]) >= 8 and all("class_accuracy" in f for _, f in trace["evaluations"])
    if not LABEL_TRACES[name]:
        assert raised == {}
        return
    # FID 59.9 (step 0), worst 92.5 (step 50), 38.8 at step 550 (the first at most half of it) and 29.8 at 600, while
    # the accuracy stays at 0.221-0.234 (chance 0.25).
    assert list(raised) == [600], raised
    message, = raised[600]
    assert ("the generator ignores the class label: FID 59.9 (step 0) -> 29.8, 32% of its worst 92.5 (step 50)"
            in message and "in 22.8% of them, near chance (25.0%), for 2 evaluations" in message)


def test_one_evaluation_would_cry_wolf_on_the_healthy_run():
    # The healthy run's accuracy lags its FID by one evaluation: at step 450 FID 49.8 (54% of its worst, 92.7) with
    # accuracy 0.284, then 36.4 with 0.448. Warning on a single evaluation with a looser FID line fires on it.
    trace = json.loads((TRACES / "synthetic32_eval.json").read_text())
    monitor = health.HealthMonitor(fid_improvement=0.6, label_patience=1)
    raised = {step: w for step, figures in trace["evaluations"] if (w := monitor.evaluation(step, figures))}
    assert list(raised) == [450]
