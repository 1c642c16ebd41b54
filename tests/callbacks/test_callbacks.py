"""sagan_tf.callbacks, driven directly (no fit): the shared periodic schedule, checkpoints, sample grids, progress,
evaluation, signals."""

import errno
import glob
import json
import os
import re
import signal
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import callbacks
from sagan_tf.callbacks import health, periodic
from sagan_tf.run import checkpoint
from sagan_tf.evaluation import evaluator as evaluation
from sagan_tf.sampling import images
from sagan_tf.errors import TrainingDivergedError, WriteFailedError
from sagan_tf.models import build_sagan
from sagan_tf.run.checkpoint_store import CheckpointStore
from tests.tiny import event_scalars, tiny_config


def make_gan(cfg, seed=0):
    keras.utils.set_random_seed(seed)
    return build_sagan(cfg.replace(g_lr=1e-3, d_lr=1e-3, ema_decay=0.9), seed=seed)


def set_step(gan, step):
    gan.g_optimizer.iterations.assign(step)


class StubModel:
    """What the callbacks read from a SAGAN: the generator optimizer's step and the sampling generator."""

    def __init__(self):
        self.g_optimizer = types.SimpleNamespace(iterations=keras.Variable(0, dtype="int64"))
        self.sampling_generator = object()

    def advance(self, steps=1):
        self.g_optimizer.iterations.assign_add(steps)


def drive(callback, model, steps, per_batch=1, logs=None):
    """Calls `callback` as `fit` does, one execution of `per_batch` steps per train-function call: the batch index of
    `on_train_batch_begin` is the number of batches run so far, that of `on_train_batch_end` the last one run."""
    callback.set_model(model)
    callback.on_train_begin()
    for first in range(0, steps // per_batch * per_batch, per_batch):
        callback.on_train_batch_begin(first)
        model.advance(per_batch)
        callback.on_train_batch_end(first + per_batch - 1, logs)
    callback.on_train_end()


class Recorder(callbacks.PeriodicCallback):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = []

    def act(self, step):
        self.steps.append(step)


@pytest.mark.parametrize("every, per_batch, steps, at_start, at_end, start_at, expected", [
    (3, 1, 7, False, True, 0, [3, 6, 7]),           # crossings, then the end step
    (3, 1, 6, False, True, 0, [3, 6]),              # the end step was just done: not twice
    (4, 3, 8, False, True, 0, [6]),                 # a 3-step batch crosses 4 at step 6; ends at 6
    (2, 1, 3, True, False, 10, [10, 12]),           # a resumed run starts at 10; no end action
    (0, 1, 5, True, True, 0, [0, 5]),               # period 0: only start and end
    (0, 1, 5, False, False, 0, []),
])
def test_periodic_schedule(every, per_batch, steps, at_start, at_end, start_at, expected):
    model = StubModel()
    model.advance(start_at)
    recorder = Recorder(every, at_start=at_start, at_end=at_end)
    drive(recorder, model, steps, per_batch)
    assert recorder.steps == expected
    recorder.on_train_end()  # ending again at the same step does nothing
    assert recorder.steps == expected


@pytest.mark.parametrize("every", [-1, 1.5, True, "2"])
def test_periodic_schedule_validates_its_period(every):
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 0"):
        Recorder(every)


def test_checkpoint_every_saves_on_crossings_and_at_the_end(tmp_path):
    gan = make_gan(tiny_config())
    store = CheckpointStore(tmp_path, checkpoint.gan_checkpoint(gan), keep_checkpoints=10)
    callback = callbacks.CheckpointEvery(store, every_n_steps=3)
    callback.set_model(gan)
    callback.on_train_begin()
    for step in (1, 2, 3, 4, 5, 7):  # 7: a batch that ran two steps crosses 6
        set_step(gan, step)
        callback.on_train_batch_begin(step)  # `step` batches have run
    set_step(gan, 8)
    callback.on_train_end()
    numbers = sorted(int(p.split("-")[-1].split(".")[0]) for p in glob.glob(f"{tmp_path}/checkpoints/ckpt-*.index"))
    assert numbers == [3, 7, 8]
    assert store.latest().endswith("ckpt-8")
    # Ending again at the same step does not save twice.
    callback.on_train_end()
    assert len(glob.glob(f"{tmp_path}/checkpoints/ckpt-*.index")) == 3


@pytest.mark.parametrize("num_classes", [3, 0])
def test_sample_grid_shows_the_sampling_generator_on_fixed_latents(tmp_path, num_classes):
    cfg = tiny_config(num_classes=num_classes)
    gan = make_gan(cfg)
    randomize_ema = np.random.default_rng(3)
    for variable in gan.ema_generator.trainable_variables:  # make EMA and raw generator differ
        variable.assign(variable + randomize_ema.normal(0, 0.05, variable.shape).astype("float32"))
    writer = tf.summary.create_file_writer(str(tmp_path / "events"))
    grid_callback = callbacks.SampleGrid(str(tmp_path / "samples"), every_n_steps=2, samples_per_class=2, seed=5,
                                         class_names=["a", "bb", "ccc"], summary_writer=writer)
    grid_callback.set_model(gan)
    grid_callback.on_train_begin()
    for step in (1, 2, 3):
        set_step(gan, step)
        grid_callback.on_train_batch_begin(step)
    grid_callback.on_train_end()
    writer.flush()
    assert sorted(os.listdir(tmp_path / "samples")) == ["step_00000002.png", "step_00000003.png"]

    z, labels = grid_callback.inputs
    rng_z = np.random.default_rng(5).standard_normal((len(z), cfg.model.latent_dim)).astype("float32")
    np.testing.assert_array_equal(z, rng_z)
    rows = 3 if num_classes else 2
    assert len(z) == rows * 2
    if num_classes:
        np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    else:
        assert labels is None
    grid = np.array(Image.open(tmp_path / "samples" / "step_00000003.png")).astype(int)
    expected = np.clip(np.round((np.array(gan.ema_generator(z, labels, training=False)) + 1) * 127.5), 0, 255)
    size, pad = cfg.model.image_size, images.GRID_PADDING
    margin = grid.shape[1] - (2 * (size + pad) + pad)
    assert (margin > 0) == bool(num_classes)
    for index in range(rows * 2):
        r, c = divmod(index, 2)
        y, x = pad + r * (size + pad), margin + pad + c * (size + pad)
        assert np.abs(grid[y:y + size, x:x + size] - expected[index]).max() <= 1
    if num_classes:  # row labels are drawn in the margin (dark text on white)
        assert grid[:, :margin].min() < 128

    events = glob.glob(f"{tmp_path}/events/events.out.tfevents.*")
    steps = [e.step for path in events for e in tf.compat.v1.train.summary_iterator(path)
             for v in e.summary.value if v.tag == "samples"]
    assert steps == [2, 3]


def test_progress_logger_reports_window_means_health_signals_and_resets_metrics(tmp_path):
    gan = make_gan(tiny_config())
    lines, warnings = [], []
    writer = tf.summary.create_file_writer(str(tmp_path))
    logger = callbacks.ProgressLogger(total_steps=4, every_n_steps=2, images_per_step=8, summary_writer=writer,
                                      print_fn=lines.append, health_monitor=health.HealthMonitor(),
                                      warn_fn=warnings.append)
    gamma = next(layer.gamma for layer in gan.generator._flatten_layers() if hasattr(layer, "gamma")
                 and layer.name == "attention8")
    gamma.assign(0.25)
    logger.set_model(gan)
    logger.on_train_begin()
    d_losses = [1.0, 2.0, 4.0, 8.0]
    for step, d_loss in enumerate(d_losses, start=1):  # what each train step adds to the model's metrics
        logger.on_train_batch_begin(step - 1)
        gan.d_loss_tracker.update_state(d_loss)
        gan.d_grad_norm_tracker.update_state(1.5)
        gan.g_grad_norm_tracker.update_state(0.125)
        set_step(gan, step)
        logger.on_train_batch_end(step - 1, {"finite": 1.0})
    logger.on_train_end()
    assert len(lines) == 2 and warnings == []
    assert lines[0].startswith("step 2/4 ( 50.0%)  d_loss 1.5  g_loss 0")
    assert "d_loss 6  " in lines[1] and "gamma_g_attention8 0.25" in lines[1]
    assert "steps/s" in lines[1] and "images/s" in lines[1] and "finite" not in lines[1]
    assert logger.last_logs["images_per_sec"] == pytest.approx(8 * logger.last_logs["steps_per_sec"])
    # Health signals: gradient norms and the largest spectral-norm estimate per network, as D/G pairs after the
    # logits; the ETA only while steps remain.
    sigma_d, sigma_g = (health.largest_spectral_norm(n) for n in (gan.discriminator, gan.generator))
    assert f"grad D/G 1.5/0.125  sn D/G {sigma_d:.3g}/{sigma_g:.3g}" in lines[1]
    assert lines[1].index("d_fake") < lines[1].index("grad D/G") < lines[1].index("gamma_g")
    assert re.search(r"images/s  eta \d+s$", lines[0]) and "eta" not in lines[1]
    assert float(gan.d_loss_tracker.result()) == 0.0  # reset after the line
    scalars = event_scalars(tmp_path)
    assert scalars["d_loss"] == {2: 1.5, 4: 6.0}
    assert scalars["gamma_g_attention8"][4] == 0.25
    assert scalars["g_grad_norm"][4] == 0.125 and scalars["d_spectral_norm"][4] == pytest.approx(sigma_d)
    assert "finite" not in scalars


def test_progress_logger_shows_adas_probability_and_the_regularizers(tmp_path):
    gan = make_gan(tiny_config(augment="ada", lecam_weight=0.5))
    gan.ada.p.assign(0.125)
    gan.ada.rt.assign(0.75)
    lines = []
    writer = tf.summary.create_file_writer(str(tmp_path))
    logger = callbacks.ProgressLogger(total_steps=2, every_n_steps=2, summary_writer=writer, print_fn=lines.append)
    logger.set_model(gan)
    logger.on_train_begin()
    for step in (1, 2):
        logger.on_train_batch_begin(step - 1)
        gan.lecam_tracker.update_state(0.5)
        set_step(gan, step)
    logger.on_train_end()
    assert "lecam_reg 0.5" in lines[0] and "ada_p 0.125  ada_rt 0.75" in lines[0]
    scalars = event_scalars(tmp_path)
    assert scalars["ada_p"] == {2: 0.125} and scalars["ada_rt"] == {2: 0.75} and scalars["lecam_reg"] == {2: 0.5}


def test_progress_logger_passes_health_warnings_on(tmp_path):
    gan = make_gan(tiny_config())
    lines, warnings = [], []
    logger = callbacks.ProgressLogger(total_steps=10, every_n_steps=1, print_fn=lines.append,
                                      health_monitor=health.HealthMonitor(gap_threshold=5, growth_lines=2),
                                      warn_fn=warnings.append)
    logger.set_model(gan)
    logger.on_train_begin()
    for step, gap in enumerate([2.0, 4.0, 8.0, 16.0], start=1):
        logger.on_train_batch_begin(step - 1)
        gan.real_logits_tracker.update_state(gap / 2)
        gan.fake_logits_tracker.update_state(-gap / 2)
        gan.g_grad_norm_tracker.update_state(1.0)
        set_step(gan, step)
    logger.on_train_end()
    assert len(warnings) == 1 and warnings[0].startswith("Step 3: the discriminator is separating")
    assert logger.warnings == [(3, warnings[0])] and len(lines) == 4


def test_callbacks_read_the_device_only_at_their_cadence(monkeypatch):
    """Steps are counted on the host: a callback reads the step (or any state) only when it acts."""
    reads = []
    real_global_step = periodic.global_step
    monkeypatch.setattr(periodic, "global_step", lambda model: reads.append(1) or real_global_step(model))
    model, calls = StubModel(), []
    drive(callbacks.EvaluateEvery(10, fake_evaluate(model, calls), print_fn=lambda line: None, at_start=False),
          model, 25)
    assert calls == [10, 20, 25]
    assert len(reads) == 1 + 2 + 1  # begin, the two crossings, end: not one per step


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (59, "59s"), (61, "1m01s"), (3600 * 3 + 300, "3h05m"),
                                           (86400 * 2 + 3600 * 4, "2d04h")])
def test_durations_read_at_a_glance(seconds, text):
    assert callbacks.format_duration(seconds) == text


def test_non_finite_guard_raises_at_the_first_non_finite_step():
    gan = make_gan(tiny_config())
    guard = callbacks.NonFiniteGuard(every_n_steps=100)
    guard.set_model(gan)
    set_step(gan, 4)
    guard.on_train_begin()
    guard.on_train_batch_begin(0)
    guard.on_train_batch_end(0, {"finite": 1.0, "d_loss": 1.0})
    guard.on_train_batch_begin(1)
    guard.on_train_batch_end(1, {"d_loss": 1.0})  # a model without the flag is not watched
    guard.on_train_batch_begin(2)
    assert not gan.stop_training
    # On Keras's callback thread the guard only records the step and stops fit; it raises on the main thread.
    guard.on_train_batch_end(2, {"finite": 0.0, "d_loss": 1.0, "g_loss": float("nan")})
    assert gan.stop_training
    with pytest.raises(TrainingDivergedError, match=r"diverged at step 7: .*\(d_loss 1, g_loss nan\)") as error:
        guard.on_train_batch_begin(3)
    assert error.value.step == 7 and error.value.values["d_loss"] == 1.0
    with pytest.raises(TrainingDivergedError, match="diverged at step 7"):
        guard.on_train_end()  # and when fit ends, before any later callback saves


def test_non_finite_guard_checks_the_weights_at_its_cadence():
    gan = make_gan(tiny_config())
    guard = callbacks.NonFiniteGuard(every_n_steps=2)
    guard.set_model(gan)
    guard.on_train_begin()
    guard.on_train_batch_begin(0)
    weight = gan.discriminator.trainable_weights[0]
    weight.assign(np.full(weight.shape, np.inf, "float32"))  # finite losses, infinite weights
    guard.on_train_batch_begin(1)  # not at the cadence: no check
    set_step(gan, 2)
    with pytest.raises(TrainingDivergedError, match=r"diverged by step 2: 1 variable\(s\) of the training state .*"
                                                    + weight.path):
        guard.on_train_batch_begin(2)
    assert callbacks.NonFiniteGuard.async_safe


def test_checkpoint_every_never_writes_a_non_finite_state(tmp_path):
    gan = make_gan(tiny_config())
    callback = callbacks.CheckpointEvery(CheckpointStore(tmp_path, checkpoint.gan_checkpoint(gan)), every_n_steps=1)
    callback.set_model(gan)
    assert checkpoint.nonfinite_variables(gan) == []
    callback.save(1)
    slot = gan.d_optimizer.variables[-1]  # an Adam moment: optimizer state counts too
    slot.assign(np.full(slot.shape, np.inf, "float32"))
    assert checkpoint.nonfinite_variables(gan) == [slot.path]
    with pytest.raises(TrainingDivergedError, match=r"Refusing to write checkpoint ckpt-2 at step 2: 1 variable"):
        callback.save(2)
    assert [os.path.basename(p) for p in glob.glob(f"{tmp_path}/checkpoints/ckpt-*.index")] == ["ckpt-1.index"]
    assert callback.last_saved_step == 1


class FakeEvaluations:
    """What `BestCheckpoint` reads of its `EvaluateEvery`: the history, and `last_step`, the model's step once that
    step has an evaluation."""

    def __init__(self, history, gan):
        self.history, self.gan = history, gan

    @property
    def last_step(self):
        step = callbacks.global_step(self.gan)
        return step if step in self.history else None


def test_best_checkpoint_keeps_the_best_evaluation_apart_and_survives_a_resume(tmp_path):
    gan = make_gan(tiny_config())
    state = checkpoint.gan_checkpoint(gan)
    run = CheckpointStore(tmp_path, state)
    history, lines = {}, []
    best = callbacks.BestCheckpoint(run, FakeEvaluations(history, gan), print_fn=lines.append)
    best.set_model(gan)
    for step, fid in ((0, 90.0), (2, 40.0), (4, 55.0), (5, float("nan"))):
        set_step(gan, step)
        gan.generator.weights[0].assign(np.full(gan.generator.weights[0].shape, step, "float32"))
        history[step] = {"fid": fid, "inception_score": 1.0 + step, "num_samples": 8}
        best.on_train_batch_begin(0)
        best.on_train_batch_begin(0)  # the same step twice: considered once
    best.on_train_end()
    record = run.best_record()
    assert (record["step"], record["metric"], record["mode"], record["value"]) == (2, "fid", "min", 40.0)
    assert record["figures"]["inception_score"] == 3.0 and record["checkpoint"] == run.best_path(2)
    assert sorted(os.listdir(run.best_dir)) == ["best.json", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert run.find("best") == run.best_path(2) == run.find(2)
    # It holds the state of step 2 (whose first generator weight was set to 2), not that of a later step.
    reloaded = make_gan(tiny_config())
    checkpoint.restore_network(reloaded.generator, run.best_path(2), checkpoint.GENERATOR)
    np.testing.assert_array_equal(reloaded.generator.weights[0], 2.0)
    assert len(lines) == 2 and lines[-1].startswith("Best checkpoint: step 2, fid 40")

    # A resumed run keeps the record: a worse evaluation does not replace it, a better one does.
    resumed = callbacks.BestCheckpoint(run, FakeEvaluations({6: {"fid": 41.0, "num_samples": 8},
                                                                    8: {"fid": 30.0, "num_samples": 8}}, gan))
    resumed.set_model(gan)
    for step in (6, 8):
        set_step(gan, step)
        resumed.on_train_batch_begin(0)
        if step == 6:
            assert run.best_record()["step"] == 2
    assert run.best_record()["step"] == 8
    assert sorted(os.listdir(run.best_dir)) == ["best.json", "ckpt-8.data-00000-of-00001", "ckpt-8.index"]
    # Higher is better for the Inception Score; other figures need a direction.
    by_is = callbacks.BestCheckpoint(CheckpointStore(tmp_path / "is", state), FakeEvaluations(
        {1: {"inception_score": 2.0}, 2: {"inception_score": 1.5}}, gan), metric="inception_score")
    by_is.set_model(gan)
    for step in (1, 2):
        set_step(gan, step)
        by_is.on_train_batch_begin(0)
    assert by_is.best["step"] == 1 and by_is.mode == "max"

    # Figures of another classifier or sample count cannot be compared: a resume that changed them starts the
    # record again, even with a worse-looking value.
    def measured(fid, tag, samples=8):
        return {"fid": fid, "num_samples": samples,
                "provenance": {"classifier": {"tag": tag}, "num_generated": samples, "num_real": 32}}

    other = CheckpointStore(tmp_path / "classifiers", state)
    first = callbacks.BestCheckpoint(other, FakeEvaluations({10: measured(30.0, "keras-aaaa")}, gan))
    first.set_model(gan)
    set_step(gan, 10)
    first.on_train_batch_begin(0)
    assert other.best_record()["measured_with"] == {"classifier": "keras-aaaa", "num_generated": 8, "num_real": 32}
    notes = []
    switched = callbacks.BestCheckpoint(other, FakeEvaluations(
        {12: measured(45.0, "domain-bbbb"), 14: measured(50.0, "domain-bbbb")}, gan), print_fn=notes.append)
    switched.set_model(gan)
    for step in (12, 14):
        set_step(gan, step)
        switched.on_train_batch_begin(0)
    record = other.best_record()
    assert (record["step"], record["value"], record["measured_with"]["classifier"]) == (12, 45.0, "domain-bbbb")
    assert "provenance" not in record["figures"] and record["figures"]["fid"] == 45.0
    assert any("cannot be compared" in note and "keras-aaaa" in note for note in notes)
    assert sorted(os.listdir(other.best_dir)) == ["best.json", "ckpt-12.data-00000-of-00001", "ckpt-12.index"]


def test_a_best_record_that_cannot_be_written_leaves_no_checkpoint_it_does_not_name(tmp_path, monkeypatch):
    gan = make_gan(tiny_config())
    state = checkpoint.gan_checkpoint(gan)
    run, lines = CheckpointStore(tmp_path, state), []
    history = {2: {"fid": 40.0}, 4: {"fid": 30.0}, 6: {"fid": 20.0}}
    best = callbacks.BestCheckpoint(run, FakeEvaluations(history, gan), print_fn=lines.append)
    best.set_model(gan)
    set_step(gan, 2)
    best.on_train_batch_begin(0)
    rename = tf.io.gfile.rename

    def full_disk(source, target, overwrite=False):  # as a full disk fails best.json's last block
        if str(source).endswith("best.json.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", full_disk)
    set_step(gan, 4)
    with pytest.raises(WriteFailedError, match="Could not write the best-checkpoint record .*no space left"):
        best.on_train_batch_begin(0)
    # best.json names step 2's checkpoint, which is there; step 4's, which nothing names, is gone.
    assert run.best_record()["step"] == 2 and best.best["step"] == 2
    assert sorted(os.listdir(run.best_dir)) == ["best.json", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert "Could not record the best checkpoint of step 4 in best.json, so that checkpoint was removed" in lines[-1]
    monkeypatch.undo()
    set_step(gan, 6)  # the disk has room again: the next better evaluation replaces step 2's
    best.on_train_batch_begin(0)
    assert run.best_record()["step"] == 6
    assert sorted(os.listdir(run.best_dir)) == ["best.json", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    # A record chosen by another metric: its checkpoint goes once best.json names a new one.
    by_is = callbacks.BestCheckpoint(run, FakeEvaluations({8: {"inception_score": 2.0}}, gan),
                                     metric="inception_score", print_fn=lines.append)
    by_is.set_model(gan)
    set_step(gan, 8)
    by_is.on_train_batch_begin(0)
    assert run.best_record()["step"] == 8
    assert sorted(os.listdir(run.best_dir)) == ["best.json", "ckpt-8.data-00000-of-00001", "ckpt-8.index"]


def test_the_best_metric_is_a_figure_the_evaluation_computes():
    assert {name: callbacks.parse_best_metric(name)[1] for name in evaluation.FIGURES if name != "chance"} == {
        "fid": "min", "inception_score": "max", "kid": "min", "precision": "max", "recall": "max",
        "density": "max", "coverage": "max", "class_accuracy": "max", "class_accuracy_top5": "max"}
    with pytest.raises(ValueError, match="must be one of"):
        callbacks.parse_best_metric("chance")  # the reference of the class accuracy, not a measurement
    for spec in ("seconds", "fid:min", "sharpness"):
        with pytest.raises(ValueError, match=f"must be one of fid, inception_score, kid, .* Received: '{spec}'"):
            callbacks.parse_best_metric(spec)
    plain = evaluation.EvalConfig(compute_kid=False, compute_precision_recall=False)
    assert callbacks.parse_best_metric("fid", plain) == ("fid", "min")
    with pytest.raises(ValueError, match="kid is not computed by the evaluation .*--kid"):
        callbacks.parse_best_metric("kid", plain)
    with pytest.raises(ValueError, match="recall is not computed by the evaluation .*--precision_recall"):
        callbacks.parse_best_metric("recall", plain)
    assert callbacks.parse_best_metric("recall", evaluation.EvalConfig()) == ("recall", "max")


def test_graceful_stop_turns_sigterm_into_stop_training():
    gan = make_gan(tiny_config())
    messages = []
    stopper = callbacks.GracefulStop(print_fn=messages.append)
    stopper.set_model(gan)
    original, original_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stopper.on_train_begin()
    assert signal.getsignal(signal.SIGTERM) == stopper._handle
    assert not gan.stop_training
    os.kill(os.getpid(), signal.SIGTERM)
    # fit ends after the step it is running: the handler itself asks for it, no per-step callback is needed.
    assert stopper.signal_received == signal.SIGTERM and "SIGTERM" in messages[0] and gan.stop_training
    # The previous handler is back at once, so a second signal acts as usual.
    assert signal.getsignal(signal.SIGTERM) == original
    assert signal.getsignal(signal.SIGINT) == stopper._handle
    stopper.on_train_end()
    assert signal.getsignal(signal.SIGINT) == original_int


def fake_evaluate(model, calls):
    """Figures that depend on the step at which they are asked for, so the test can check which step was logged."""

    def evaluate(generator):
        assert generator is model.sampling_generator
        step = int(model.g_optimizer.iterations.numpy())
        calls.append(step)
        return {"fid": 100.0 - step, "inception_score": 1.0 + step / 10, "kid": 0.5 / (step + 1), "num_samples": 64,
                "seconds": 0.0}

    return evaluate


def test_evaluate_every_fires_at_start_every_n_steps_and_end_and_writes_tensorboard(tmp_path):
    model, calls, lines = StubModel(), [], []
    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = callbacks.EvaluateEvery(3, fake_evaluate(model, calls), writer, print_fn=lines.append)
    drive(callback, model, 7)
    writer.close()
    assert calls == [0, 3, 6, 7]
    assert sorted(callback.history) == [0, 3, 6, 7]
    assert callback.history[6]["fid"] == 94.0 and callback.seconds > 0
    scalars = event_scalars(tmp_path)
    assert scalars["eval/fid"] == {0: 100.0, 3: 97.0, 6: 94.0, 7: 93.0}
    np.testing.assert_allclose([scalars["eval/inception_score"][s] for s in (0, 3, 6, 7)], [1.0, 1.3, 1.6, 1.7],
                               rtol=1e-6)
    np.testing.assert_allclose(scalars["eval/kid"][3], 0.125, rtol=1e-6)
    assert len(lines) == 4
    assert lines[1].startswith("eval step 3: FID 97.00  IS 1.30  KID 0.125 (64 samples, ")
    assert callback.summary() == "FID 100.0 -> 93.0, IS 1.00 -> 1.70, KID 0.5 -> 0.0625"


def test_evaluate_every_names_figures_by_classifier_and_records_provenance(tmp_path):
    model, calls, lines = StubModel(), [], []
    model.ema_generator = model.sampling_generator
    provenance = {"classifier": {"name": "domain", "tag": "domain-1a2b3c4d"}, "num_generated": 64}

    def evaluate(generator):
        figures = fake_evaluate(model, calls)(generator)
        return {**figures, "precision": 0.25, "recall": 0.5, "density": 0.75, "coverage": 0.125,
                "provenance": provenance}

    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = callbacks.EvaluateEvery(0, evaluate, writer, print_fn=lines.append)
    drive(callback, model, 2)
    writer.close()
    assert sorted(callback.history) == [0, 2]
    # The history keeps the plain names (what a best-checkpoint choice reads) and the provenance with step and
    # generator added; the evaluate_fn's own dict is not changed.
    assert callback.history[2]["fid"] == 98.0 and callback.history[2]["recall"] == 0.5
    assert callback.history[2]["provenance"] == {**provenance, "step": 2, "generator": "ema"}
    assert "step" not in provenance
    scalars = event_scalars(tmp_path)
    assert not [tag for tag in scalars if not tag.startswith("eval/domain-1a2b3c4d/")]
    assert scalars["eval/domain-1a2b3c4d/fid"] == {0: 100.0, 2: 98.0}
    for name, value in (("precision", 0.25), ("recall", 0.5), ("density", 0.75), ("coverage", 0.125)):
        assert scalars[f"eval/domain-1a2b3c4d/{name}"][2] == value
    assert json.loads(scalars["eval/domain-1a2b3c4d/provenance"][0]) == {**provenance, "step": 0, "generator": "ema"}
    assert lines[1].startswith("eval step 2 [domain-1a2b3c4d]: FID 98.00  IS 1.20  KID 0.1667  precision 0.250  "
                               "recall 0.500  density 0.750  coverage 0.125 (64 samples, ")
    assert callback.summary() == ("FID 100.0 -> 98.0, IS 1.00 -> 1.20, KID 0.5 -> 0.1667, precision 0.250 -> 0.250, "
                                  "recall 0.500 -> 0.500, density 0.750 -> 0.750, coverage 0.125 -> 0.125")


def test_evaluate_every_on_multi_step_batches_evaluates_no_step_twice():
    model, calls = StubModel(), []
    callback = callbacks.EvaluateEvery(4, fake_evaluate(model, calls), print_fn=lambda line: None)
    drive(callback, model, 8, per_batch=3)  # steps 3, 6: crosses 4 at 6; ends at 6, already evaluated
    assert calls == [0, 6]


def test_evaluate_every_with_zero_period_and_switches():
    model, calls = StubModel(), []
    drive(callbacks.EvaluateEvery(0, fake_evaluate(model, calls), print_fn=lambda line: None), model, 5)
    assert calls == [0, 5]
    model, calls = StubModel(), []
    model.advance(10)  # a resumed run starts at its checkpoint's step
    drive(callbacks.EvaluateEvery(2, fake_evaluate(model, calls), print_fn=lambda line: None, at_start=False,
                                      at_end=False), model, 3)
    assert calls == [12]


def test_evaluation_summary_without_kid_and_validation():
    history = {5: {"fid": 50.0, "inception_score": 2.0}, 0: {"fid": 200.0, "inception_score": 1.05, "kid": 0.3}}
    assert callbacks.summarize_evaluations(history) == "FID 200.0 -> 50.0, IS 1.05 -> 2.00"
    assert callbacks.summarize_evaluations({}) is None
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 0. Received: every_n_steps=-1"):
        callbacks.EvaluateEvery(-1, lambda generator: {})
    with pytest.raises(ValueError, match="evaluate_fn must be callable"):
        callbacks.EvaluateEvery(1, None)


def test_class_accuracy_is_printed_summarized_written_and_chooses_the_best_checkpoint(tmp_path):
    model, calls, lines = StubModel(), [], []
    accuracies = {0: 0.25, 2: 0.5, 4: 0.875, 5: 0.75}

    def evaluate(generator):
        figures = fake_evaluate(model, calls)(generator)
        return {**figures, "class_accuracy": accuracies[calls[-1]], "class_accuracy_top5": None, "chance": 0.25}

    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = callbacks.EvaluateEvery(2, evaluate, writer, print_fn=lines.append)
    drive(callback, model, 5)
    writer.close()
    assert lines[1].startswith("eval step 2: FID 98.00  IS 1.20  KID 0.1667  class acc 0.500  chance 0.250 (")
    assert callback.summary() == "FID 100.0 -> 95.0, IS 1.00 -> 1.50, KID 0.5 -> 0.08333, class acc 0.250 -> 0.750 " \
                                 "(chance 0.250)"
    scalars = event_scalars(tmp_path)
    assert scalars["eval/class_accuracy"] == accuracies and "eval/class_accuracy_top5" not in scalars

    gan = make_gan(tiny_config())
    store = CheckpointStore(tmp_path / "run", checkpoint.gan_checkpoint(gan))
    history = {}
    best = callbacks.BestCheckpoint(store, FakeEvaluations(history, gan), metric="class_accuracy",
                                    print_fn=lambda line: None)
    best.set_model(gan)
    for step, figures in sorted(callback.history.items()):
        set_step(gan, step)
        history[step] = figures
        best.on_train_batch_begin(0)
    record = store.best_record()
    assert (record["step"], record["metric"], record["mode"], record["value"]) == (4, "class_accuracy", "max", 0.875)
