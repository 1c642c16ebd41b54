"""train_lib.run: what a run writes, resuming (exactly), refusing incompatible model_dirs, tf.distribute."""

import dataclasses
import glob
import io
import os
import re
import shutil
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import data
from sagan_tf.run import checkpoint, run_lock
from sagan_tf.evaluation import evaluator as evaluation
from sagan_tf.sampling import images
from sagan_tf.config import presets
from sagan_tf.config import ExperimentConfig
from sagan_tf.evaluation.evaluator import EvalConfig, Evaluator
from sagan_tf.errors import (CheckpointError, CheckpointUnavailableError, ConfigError, DamagedCheckpointError,
                             RunLockedError, RunLockWaitError, TrainingDivergedError, UsageError, WriteFailedError)
from sagan_tf.models import build_sagan
from sagan_tf.run.checkpoint_store import CheckpointStore
from sagan_tf.run.run_dir import RunDirectory
from tests.run.test_run_lock import FakeClock, write_record
from tests.tiny import (event_scalars, flaky_checkpoint_restore, full_disk_save, messy_image_folder, tiny_config,
                        tiny_image_folder, train_options)
from training import distribute, train_lib


def options_for(model_dir, **overrides):
    values = dict(sample_every=2, checkpoint_every=2, samples_per_class=3, seed=7)
    values.update(overrides)
    return train_options(model_dir, **values)


def state(model):
    """Every variable of the training state, as NumPy arrays in a fixed order."""
    variables = list(model.variables) + list(model.g_optimizer.variables) + list(model.d_optimizer.variables)
    return [(v.path, np.array(v)) for v in variables]


def assert_same_state(a, b):
    assert len(a) == len(b)
    for (path, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y, err_msg=path)


def checkpoint_steps(model_dir):
    return [step for step, _ in CheckpointStore(model_dir).checkpoints()]


def test_a_float16_checkpoint_is_not_resumed_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")  # conftest puts float32 back
    config = tiny_config()
    model = build_sagan(config)
    tf.train.CheckpointManager(checkpoint.gan_checkpoint(model), str(tmp_path / "checkpoints"), 1).save(1)
    keras.mixed_precision.set_global_policy("float32")
    (tmp_path / "config.json").write_text(config.to_json())
    with pytest.raises(UsageError, match=r"written with float16 loss scaling.*--mixed_precision=mixed_float16"):
        train_lib.Trainer(config, options_for(tmp_path))
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Four steps (two discriminator updates each) on the synthetic data; checkpoints at steps 2 and 4."""
    model_dir = tmp_path_factory.mktemp("straight")
    result = train_lib.run(tiny_config(d_steps=2), options_for(model_dir))
    return model_dir, result, state(result.model)


def test_run_writes_config_checkpoints_sample_grid_and_events(straight_run):
    model_dir, result, _ = straight_run
    config, model = tiny_config(d_steps=2), result.model
    assert result.step == 4 and result.stopped_by_signal is None
    assert int(model.g_optimizer.iterations) == 4 and int(model.d_optimizer.iterations) == 8
    assert ExperimentConfig.from_json((model_dir / "config.json").read_text()) == config
    # The class names travel with the run (and from it to exports and pictures).
    assert RunDirectory(model_dir).read_class_names() == data.get_info("synthetic").class_names
    assert checkpoint_steps(model_dir) == [2, 4]
    assert result.checkpoint == str(model_dir / "checkpoints" / "ckpt-4")
    assert not (model_dir / "training.lock").exists()  # held while training, released at the end

    # The grid's tiles are the sampling (EMA) generator's images of the fixed latents, one row per class.
    assert sorted(os.listdir(model_dir / "samples")) == ["step_00000002.png", "step_00000004.png"]
    assert result.sample_grid == str(model_dir / "samples" / "step_00000004.png")
    grid = np.array(Image.open(result.sample_grid))
    z, labels, _, rows, cols = images.grid_inputs(config.model.latent_dim, config.model.num_classes, 3, seed=7)
    assert rows == 4 and cols == 3
    np.testing.assert_array_equal(labels, np.repeat(np.arange(4), 3))
    generated = np.array(model.sampling_generator(z, labels, training=False))
    expected = np.clip(np.round((generated + 1) * 127.5), 0, 255)
    size, pad = config.model.image_size, images.GRID_PADDING
    margin = grid.shape[1] - (cols * (size + pad) + pad)
    assert grid.shape[0] == rows * (size + pad) + pad and margin > 10  # room for the class names
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        y, x = pad + r * (size + pad), margin + pad + c * (size + pad)
        tile = grid[y:y + size, x:x + size].astype(int)
        assert np.abs(tile - expected[index]).max() <= 1, index
    # ... and not the raw generator's (an EMA with decay 0.9 lags 4 steps behind).
    raw = np.clip(np.round((np.array(model.generator(z, labels, training=False)) + 1) * 127.5), 0, 255)
    assert np.abs(raw - expected).max() > 1

    scalars = event_scalars(model_dir)
    assert {"d_loss", "g_loss", "d_real", "d_fake", "steps_per_sec", "samples"} <= set(scalars)
    assert any(tag.startswith("gamma_") for tag in scalars)
    assert sorted(scalars["d_loss"]) == [2, 4]
    assert scalars["d_loss"][4] == pytest.approx(result.logs["d_loss"])
    assert np.isfinite(list(scalars["g_loss"].values())).all()
    png = scalars["samples"][4][2]  # the images plugin's [width, height, png] tensor
    np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(png))), grid)


def test_resume_is_exact_and_a_finished_run_does_nothing(straight_run, tmp_path):
    straight_dir, straight, straight_state = straight_run
    # A run killed after its step-2 checkpoint: the straight run's directory as it was then.
    interrupted_copy(straight_dir, tmp_path, (2,))

    trainer = train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    assert trainer.step == 2 and int(trainer.model.d_optimizer.iterations) == 4
    resumed = trainer.train()
    assert resumed.step == 4 and checkpoint_steps(tmp_path) == [2, 4]
    # Weights, EMA weights, batch-norm statistics, spectral-norm vectors, optimizer slots and the noise RNG state
    # all equal the uninterrupted run's, bit for bit: the checkpoint restored the state, and the input pipeline
    # continued at the example the straight run read at step 3.
    assert_same_state(state(resumed.model), straight_state)

    files = sorted(os.listdir(tmp_path / "samples")) + sorted(os.listdir(tmp_path / "checkpoints"))
    again = train_lib.run(tiny_config(d_steps=2), options_for(tmp_path))
    assert again.step == 4 and again.logs == {} and again.sample_grid is None
    assert sorted(os.listdir(tmp_path / "samples")) + sorted(os.listdir(tmp_path / "checkpoints")) == files
    assert_same_state(state(again.model), straight_state)


def interrupted_copy(straight_dir, destination, steps):
    """`destination` as the straight run's directory was when only the checkpoints of `steps` existed."""
    (destination / "checkpoints").mkdir(parents=True)
    shutil.copy(straight_dir / "config.json", destination / "config.json")
    for step in steps:
        for path in glob.glob(f"{straight_dir}/checkpoints/ckpt-{step}.*"):
            shutil.copy(path, destination / "checkpoints")
    (destination / "checkpoints" / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{max(steps)}"\n')


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_resume_falls_back_from_a_damaged_checkpoint_and_stays_exact(straight_run, tmp_path, caplog):
    straight_dir, _, straight_state = straight_run
    interrupted_copy(straight_dir, tmp_path, (2, 4))
    truncate(glob.glob(f"{tmp_path}/checkpoints/ckpt-4.data-*")[0])  # e.g. a full disk during the save
    with caplog.at_level("WARNING"):
        trainer = train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    assert trainer.step == 2 and trainer.restored_checkpoint.endswith("ckpt-2")
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert re.search(r"ckpt-4 is damaged: it cannot be read back \(IndexError: Read less bytes", warning)
    assert "Resuming from" in warning and "ckpt-2" in warning
    resumed = trainer.train()
    assert resumed.step == 4
    assert_same_state(state(resumed.model), straight_state)  # retrained from step 2, rewriting ckpt-4
    tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-4"))  # readable again

    for path in glob.glob(f"{tmp_path}/checkpoints/ckpt-*.data-*"):
        truncate(path)
    with pytest.raises(DamagedCheckpointError, match=r"Every checkpoint in .* is damaged .*ckpt-4.*ckpt-2"):
        train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))


@pytest.mark.parametrize("error, failures, restored, reads", [
    (tf.errors.UnavailableError, 1, 4, ["ckpt-4", "ckpt-4"]),  # a passing storage error: retried
    (tf.errors.DeadlineExceededError, 4, 4, ["ckpt-4"] * 5),  # retried up to READ_ATTEMPTS reads
    (tf.errors.UnavailableError, 5, CheckpointUnavailableError, ["ckpt-4"] * 5),  # outlasts the retries: stop
    (tf.errors.PermissionDeniedError, 1, CheckpointError, ["ckpt-4"]),  # not damage, not passing: stop at once
    (tf.errors.DataLossError, 1, 2, ["ckpt-4", "ckpt-2"]),  # damage: the checkpoint before it
], ids=["unavailable-once", "deadline-4-times", "unavailable-5-times", "permission-denied", "data-loss"])
def test_a_storage_error_on_the_newest_checkpoint_is_retried_and_never_taken_for_damage(
        straight_run, tmp_path, monkeypatch, caplog, error, failures, restored, reads):
    """A read of the newest checkpoint that storage does not serve (injected where TensorFlow reads it) is retried
    with one warning line each; the run resumes from that checkpoint exactly, or stops naming it when the error
    outlasts the retries (or is not a passing one). Only damage (a corrupt block here) falls back."""
    straight_dir, _, straight_state = straight_run
    interrupted_copy(straight_dir, tmp_path, (2, 4))
    seen = []
    monkeypatch.setattr(tf.train.Checkpoint, "restore", flaky_checkpoint_restore("ckpt-4", failures, error, seen))
    monkeypatch.setattr(checkpoint, "RETRY_DELAY_SECONDS", 0.0, raising=False)  # raising=False: as before the fix
    with caplog.at_level("WARNING"):
        if isinstance(restored, int):
            trainer = train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
        else:
            with pytest.raises(restored) as raised:
                train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert seen == reads
    if restored == 4:
        assert trainer.step == 4 and trainer.restored_checkpoint == str(tmp_path / "checkpoints" / "ckpt-4")
        assert_same_state(state(trainer.model), straight_state)  # the newest state, bit for bit
        assert len(warnings) == failures and all(
            re.search(rf"ckpt-4: it cannot be read back \({error.__name__}: .*Connection reset by peer.*\); storage "
                      rf"may be busy, so retrying in 0 s \(attempt {n + 2} of 5\)", w) for n, w in enumerate(warnings))
    elif restored == 2:
        assert trainer.step == 2 and "is damaged" in warnings[0] and "Resuming from" in warnings[1]
    else:
        message = " ".join(str(raised.value).split())
        assert "ckpt-4" in message and "no older" in message and "Connection reset by peer" in message, message
        assert not any("Trying the checkpoint before it" in w for w in warnings), warnings
        if restored is CheckpointUnavailableError:
            assert "storage failed 5 times in a row" in message and raised.value.exit_status == 138
            assert len(warnings) == 4
        assert not (tmp_path / "training.lock").exists()


def test_every_worker_resumes_from_the_chief_s_checkpoint_or_every_worker_stops(straight_run, tmp_path, monkeypatch):
    """The agreement of a multi-worker run, with this process as worker 1 and the chief's rows scripted (the
    two-process run: tests/training/test_multi_worker.py): the chief's checkpoint is restored even where this worker
    chose another, and a worker that cannot read it stops every worker."""
    interrupted_copy(straight_run[0], tmp_path, (2, 4))
    monkeypatch.setattr(distribute, "num_workers", lambda strategy: 2)
    monkeypatch.setattr(distribute, "will_be_chief", lambda strategy: False)  # chief-ness is known before the strategy
    monkeypatch.setattr(distribute, "task_name", lambda strategy: "worker 1")
    monkeypatch.setattr(distribute, "task_id", lambda strategy: 1)

    def scripted(*chief_rows):
        """gather_rows of two workers: this one's row and the chief's next scripted one; returns the rows gathered."""
        gathered = []

        def gather_rows(strategy, row_of_replica):
            gathered.append([row_of_replica(0), chief_rows[len(gathered)]])
            return gathered[-1]

        monkeypatch.setattr(distribute, "gather_rows", gather_rows)
        return gathered

    # Rows: (is chief, of a "chief" job, task index, step or -1, 0 restored / 1 storage unavailable / 2 failed).
    gathered = scripted((1, 0, 0, 2, 0), (1, 0, 0, 2, 0))  # the chief found ckpt-4 damaged and took ckpt-2
    trainer = train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    assert gathered == [[(0, 0, 1, 4, 0), (1, 0, 0, 2, 0)], [(0, 0, 1, 2, 0), (1, 0, 0, 2, 0)]]
    assert trainer.step == 2 and trainer.restored_checkpoint == str(tmp_path / "checkpoints" / "ckpt-2")
    assert int(trainer.model.d_optimizer.iterations) == 4  # ckpt-2's whole state, not ckpt-4's (8)
    restored = state(trainer.model)
    trainer.store.state.restore(str(tmp_path / "checkpoints" / "ckpt-2")).assert_existing_objects_matched()
    assert_same_state(state(trainer.model), restored)  # it held ckpt-2's state already

    # The chief could not read its checkpoint: this worker stops too, naming it, with the storage error's status.
    scripted((1, 0, 0, -1, 1))
    with pytest.raises(CheckpointUnavailableError, match=r"^worker 0 of this multi-worker run could not") as raised:
        train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    assert raised.value.tasks == ["worker 0"] and raised.value.exit_status == 138

    # This worker cannot read the newest checkpoint (storage unavailable past the retries): it tells the chief (which
    # stops naming it) and stops with its own paragraph; it never resumes from ckpt-2 on its own.
    gathered = scripted((1, 0, 0, 4, 0))
    monkeypatch.setattr(tf.train.Checkpoint, "restore", flaky_checkpoint_restore("ckpt-4", 5))
    monkeypatch.setattr(checkpoint, "RETRY_DELAY_SECONDS", 0.0)
    with pytest.raises(CheckpointUnavailableError, match=r"ckpt-4: it cannot be read back: storage failed 5 times"):
        train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    assert gathered == [[(0, 0, 1, -1, 1), (1, 0, 0, 4, 0)]]


def test_a_failed_checkpoint_write_ends_the_run_and_the_previous_checkpoint_resumes_bit_for_bit(
        straight_run, tmp_path, monkeypatch, caplog):
    _, _, straight_state = straight_run
    checkpoints = tmp_path / "checkpoints"
    # The step-4 checkpoint meets a full disk (TensorFlow's own failure: ResourceExhaustedError, ckpt-4_temp/ left).
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk_save(fail_at=4))
    with pytest.raises(WriteFailedError) as failed:
        train_lib.run(tiny_config(d_steps=2), options_for(tmp_path))
    assert str(failed.value) == (
        f"Could not write the checkpoint {checkpoints}/ckpt-4: no space left on device. Its partial files "
        f"(ckpt-4_temp) were removed. The last good checkpoint is {checkpoints}/ckpt-2, intact. Free space on that "
        "filesystem (or use a directory on another one), then rerun the same command: training resumes from the last "
        "good checkpoint.")
    assert sorted(os.listdir(checkpoints)) == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert not (tmp_path / "training.lock").exists()
    monkeypatch.undo()

    # A process killed during that save would have left ckpt-4_temp/: the next start removes it, with a note.
    (checkpoints / "ckpt-4_temp").mkdir()
    (checkpoints / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate9").write_bytes(b"\0" * 99)
    with caplog.at_level("WARNING"):
        trainer = train_lib.Trainer(tiny_config(d_steps=2), options_for(tmp_path))
    note = f"Removed what interrupted writes left in {tmp_path}: checkpoints/ckpt-4_temp. They were never complete"
    assert any(r.getMessage().startswith(note) for r in caplog.records)
    assert trainer.step == 2 and not (checkpoints / "ckpt-4_temp").exists()
    resumed = trainer.train()
    assert resumed.step == 4 and checkpoint_steps(tmp_path) == [2, 4]
    assert_same_state(state(resumed.model), straight_state)  # as if the disk had never been full


def test_a_refused_sample_grid_names_the_last_good_checkpoint(tmp_path, monkeypatch):
    rename = tf.io.gfile.rename

    def refusing(source, target, overwrite=False):
        if source.endswith("step_00000004.png.tmp"):
            raise tf.errors.PermissionDeniedError(None, None, f"{source}; Permission denied")
        return rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", refusing)
    samples = tmp_path / "samples"
    with pytest.raises(WriteFailedError, match=re.escape(
            f"Could not write the sample grid {samples}/step_00000004.png: permission denied. Its partial files "
            f"(step_00000004.png.tmp) were removed. The last good checkpoint is {tmp_path}/checkpoints/ckpt-2, intact. "
            f"Make {samples} writable for this user, then rerun the same command: training resumes from the last good "
            "checkpoint.")):
        train_lib.run(tiny_config(), options_for(tmp_path))
    assert os.listdir(samples) == ["step_00000002.png"] and checkpoint_steps(tmp_path) == [2]
    assert not (tmp_path / "training.lock").exists()


def test_a_locked_run_directory_is_refused_before_anything_is_written(tmp_path):
    holder = run_lock.RunLock(str(tmp_path / "training.lock")).acquire()
    try:
        with pytest.raises(RunLockedError, match=rf"{tmp_path} is in use by another training run: its lock "
                           rf"{tmp_path}/training.lock is held by process {os.getpid()} on host"):
            train_lib.run(tiny_config(), options_for(tmp_path))
        assert os.listdir(tmp_path) == ["training.lock"]  # no config.json, no checkpoints/
    finally:
        holder.release()


def test_the_chief_decides_the_lock_before_it_makes_its_strategy(tmp_path, monkeypatch):
    """Making the strategy is where a multi-worker process joins its cluster: the chief holds the run's lock by
    then, and a chief that cannot have the run (here: a relaunch whose wait for a lock of another host ran out) never
    makes it. It used to join first and be refused after, leaving the other workers to fail with it."""
    lock_held = []

    class StrategyMade(Exception):
        pass

    def get_distribution_strategy(*args, **kwargs):
        lock_held.append((tmp_path / "training.lock").exists())
        raise StrategyMade

    monkeypatch.setattr(train_lib.distribute, "get_distribution_strategy", get_distribution_strategy)
    with pytest.raises(StrategyMade):
        train_lib.Trainer(tiny_config(), options_for(tmp_path))
    assert lock_held == [True] and os.listdir(tmp_path) == []  # released when the construction failed

    write_record(tmp_path, host="node-7", pid=4242, stale_seconds=3600)
    monkeypatch.setattr(run_lock, "time", FakeClock())
    with pytest.raises(RunLockWaitError, match="Waited 15 min for the lock .* of process 4242 on host node-7"):
        train_lib.Trainer(tiny_config(), options_for(tmp_path))
    assert lock_held == [True]  # no second strategy


def poisoned_input_fn(nan_at_step, every_pipeline=False):
    """`train_lib.input_fn` with NaN images at step `nan_at_step`: in the pipeline of the run's first `fit` (one
    starting at step 0) only, or in `every_pipeline`."""
    real_input_fn = train_lib.input_fn

    def input_fn(config, options, start_step, dataset=None):
        dataset_fn = real_input_fn(config, options, start_step, dataset)
        if start_step and not every_pipeline:
            return dataset_fn

        def poisoned(context):
            steps = dataset_fn(context).enumerate(start=start_step + 1)
            return steps.map(lambda step, batch: (tf.where(step == nan_at_step, np.nan, batch[0]), batch[1]))

        return poisoned

    return input_fn


def assert_finite_checkpoints(model_dir):
    for _, path in CheckpointStore(model_dir).checkpoints():
        reader = tf.train.load_checkpoint(path)
        for name, _ in tf.train.list_variables(path):
            value = np.asarray(reader.get_tensor(name))
            if value.dtype.kind == "f":
                assert np.isfinite(value).all(), (path, name)


def test_a_non_finite_step_stops_the_run_naming_it_and_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(train_lib, "input_fn", poisoned_input_fn(3))
    # NaN images give a finite hinge loss (relu of NaN is 0 here) but NaN gradients: the weights are checked too.
    with pytest.raises(TrainingDivergedError, match=r"diverged at step 3: a loss or a weight is no longer finite "
                       r"\(d_loss .*d_grad_norm nan.*the last good checkpoint is .*ckpt-2 .*--on_nonfinite=rollback"
                       ) as error:
        train_lib.run(tiny_config(train_steps=6), options_for(tmp_path))
    assert error.value.step == 3 and np.isnan(error.value.values["d_grad_norm"])
    # Nothing acted on the diverged state: no checkpoint, no sample grid after step 2.
    assert checkpoint_steps(tmp_path) == [2] and sorted(os.listdir(tmp_path / "samples")) == ["step_00000002.png"]
    assert_finite_checkpoints(tmp_path)


def test_rollback_restores_the_last_good_checkpoint_and_continues_with_fresh_noise(tmp_path, monkeypatch):
    monkeypatch.setattr(train_lib, "input_fn", poisoned_input_fn(3))
    result = train_lib.run(tiny_config(train_steps=4), options_for(tmp_path, on_nonfinite="rollback"))
    assert result.step == 4 and result.rollbacks == [(3, 2)]
    assert checkpoint_steps(tmp_path) == [2, 4]
    assert_finite_checkpoints(tmp_path)
    # The noise after the rollback is a fresh stream (its seed is no longer the run's seed, 7), checkpointed with it.
    assert int(result.model.seed_generator.state.numpy()[0]) != 7
    noise = tf.train.load_variable(str(tmp_path / "checkpoints" / "ckpt-4"), "noise_seed/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_array_equal(noise, result.model.seed_generator.state.numpy())

    # A step that diverges whatever the noise ends the run once the rollbacks are used up.
    monkeypatch.setattr(train_lib, "input_fn", poisoned_input_fn(3, every_pipeline=True))
    with pytest.raises(TrainingDivergedError, match=r"step 3.*ckpt-2 .*; 1 rollback\(s\) with fresh noise, the "
                       r"--max_rollbacks limit, did not get past the divergence. Train in a new --model_dir"):
        train_lib.run(tiny_config(train_steps=4), options_for(tmp_path / "again", on_nonfinite="rollback",
                                                              max_rollbacks=1))
    assert_finite_checkpoints(tmp_path / "again")


def test_incompatible_model_dir_is_refused_naming_the_fields(tmp_path):
    (tmp_path / "config.json").write_text(tiny_config(batch_size=8, g_lr=1e-3).to_json())
    with pytest.raises(ConfigError, match=r"batch_size: 8 in config.json, 4 now.*g_lr") as error:
        train_lib.run(tiny_config(), options_for(tmp_path))
    assert "--model_dir" in str(error.value) and "train_steps" in str(error.value)
    assert not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / "training.lock").exists()  # a refused start releases the lock it took
    # train_steps alone may change (it is what a resume extends).
    RunDirectory(tmp_path).check_resumable(tiny_config(batch_size=8, g_lr=1e-3, train_steps=9))


@pytest.mark.parametrize("dataset", ["synthetic", "folder", "messy folder with classes"])
def test_a_resumed_pipeline_continues_where_the_straight_one_is(tmp_path, dataset):
    num_classes = 0
    if dataset == "folder":  # 5 images: the 8 examples of two steps cross an epoch boundary
        for i in range(5):
            Image.fromarray(np.full((16, 16, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
        dataset = f"folder:{tmp_path}"
    elif dataset.startswith("messy"):  # RGBA, 16-bit, grayscale JPEG, a truncated file; 8 usable images in 2 classes
        dataset, num_classes = f"folder:{messy_image_folder(tmp_path, per_class=4)}", 2
    config, options = tiny_config(dataset=dataset, num_classes=num_classes, d_steps=2, batch_size=2), \
        options_for("unused")
    straight = [[part.numpy() for part in batch] for batch in train_lib.input_fn(config, options, 0)(None).take(4)]
    resumed = [[part.numpy() for part in batch] for batch in train_lib.input_fn(config, options, 2)(None).take(2)]
    for part in range(len(straight[0])):  # the images, and the labels of a folder with classes
        np.testing.assert_array_equal(np.stack([batch[part] for batch in resumed]),
                                      np.stack([batch[part] for batch in straight[2:]]))
    if num_classes:
        assert set(np.concatenate([labels for _, labels in straight]).tolist()) == {0, 1}
    straight = [images for images, *_ in straight]
    assert not np.array_equal(straight[0], straight[2])
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    assert train_lib.pipeline_position(3, 8, context) == 12 and train_lib.pipeline_position(3, 8) == 24


@pytest.mark.parametrize("positionable", [False, True])
def test_a_tfds_pipeline_is_reseeded_on_resume_and_a_positionable_one_is_positioned(monkeypatch, positionable):
    calls = []
    monkeypatch.setattr(train_lib.data, "resolve", lambda name, data_dir=None: types.SimpleNamespace(
        info=types.SimpleNamespace(positionable=positionable)))
    monkeypatch.setattr(train_lib.data, "load", lambda *args, **kwargs: calls.append(kwargs))
    config = tiny_config(d_steps=2)  # 8 images per step
    for start_step in (0, 3):
        train_lib.input_fn(config, options_for("unused"), start_step)(None)
    seeds, positions = [c["seed"] for c in calls], [c["position"] for c in calls]
    if positionable:  # the same stream, started where step 3 left it
        assert seeds == [7, 7] and positions == [0, 3 * 8]
    else:  # TFDS: a fresh stream, named by (seed, step), read from its start
        assert seeds == [7, train_lib.pipeline_seed(7, 3)] and positions == [0, 0]
        assert seeds[1] != 7 and 0 <= seeds[1] < 2**31 and train_lib.pipeline_seed(7, 4) != seeds[1]


def test_each_replica_resumes_with_the_data_it_would_have_read(mirrored_strategy):
    config, options = tiny_config(d_steps=2), options_for("unused")

    def per_replica(start_step, steps):
        dataset = mirrored_strategy.distribute_datasets_from_function(train_lib.input_fn(config, options, start_step))
        iterator, batches = iter(dataset), []
        for _ in range(steps):
            images, _ = next(iterator)
            batches.append([x.numpy() for x in mirrored_strategy.experimental_local_results(images)])
        return batches

    straight, resumed = per_replica(0, 3), per_replica(2, 1)
    assert len(resumed[0]) == 2 and not np.array_equal(resumed[0][0], resumed[0][1])
    for replica in range(2):
        np.testing.assert_array_equal(resumed[0][replica], straight[2][replica])


def test_mirrored_strategy_and_batch_not_divisible_by_replicas(tmp_path):
    # conftest splits the CPU in two logical devices: "mirrored" has two replicas.
    with pytest.raises(UsageError, match=r"batch size 5 does not split evenly over the 2 replicas.*batch_size=6"):
        train_lib.run(tiny_config(batch_size=5), options_for(tmp_path / "odd", strategy="mirrored"))
    with pytest.raises(UsageError, match=r"--grad_accumulation=4 splits each replica's batch into 4 equal "
                                         r"micro-batches, but the global batch size 4 gives 2 per replica.*multiple "
                                         r"of 8"):
        train_lib.run(tiny_config(grad_accumulation=4), options_for(tmp_path / "split", strategy="mirrored"))
    with pytest.raises(UsageError, match=r"grad_accumulation=2 \(--grad_accumulation\) cannot train synchronized "
                                         "batch norm on 2 replicas"):
        train_lib.run(tiny_config(grad_accumulation=2, synchronized_batch_norm=True),
                      options_for(tmp_path / "synchronized", strategy="mirrored"))
    # Nothing written (the lock, taken before the strategy these checks need, is released): no config.json that a
    # corrected rerun would be checked against.
    assert os.listdir(tmp_path / "split") == os.listdir(tmp_path / "synchronized") == []
    trainer = train_lib.Trainer(tiny_config(), options_for(tmp_path / "ok", strategy="mirrored"))
    assert trainer.strategy.num_replicas_in_sync == 2 and trainer.chief
    assert isinstance(trainer.model.generator.weights[0].value, tf.distribute.DistributedValues)
    # Each replica's pipeline yields its share of d_steps * batch_size real images.
    config = tiny_config(d_steps=2)
    dataset = trainer.strategy.distribute_datasets_from_function(
        train_lib.input_fn(config, trainer.options, 0))
    images, labels = next(iter(dataset))
    shards = trainer.strategy.experimental_local_results(images)
    assert [tuple(s.shape) for s in shards] == [(4, 16, 16, 3)] * 2
    assert not np.allclose(shards[0], shards[1])


@pytest.mark.slow
def test_a_mirrored_run_resumes_exactly(tmp_path):
    # Fast siblings: test_each_replica_resumes_with_the_data_it_would_have_read (data) and, in tests/models,
    # test_noise_differs_across_replicas_and_matches_one_device (noise drawn from the checkpointed seed state).
    config = tiny_config(train_steps=4)
    straight = train_lib.run(config, options_for(tmp_path / "straight", strategy="mirrored"))
    assert straight.model.distribute_strategy.num_replicas_in_sync == 2
    assert straight.step == 4 and np.isfinite(straight.logs["d_loss"])
    assert checkpoint_steps(tmp_path / "straight") == [2, 4]
    interrupted_copy(tmp_path / "straight", tmp_path / "resumed", (2,))
    resumed = train_lib.run(config, options_for(tmp_path / "resumed", strategy="mirrored"))
    assert_same_state(state(resumed.model), state(straight.model))


def test_a_run_with_gradient_accumulation_records_it_and_resumes_exactly(tmp_path):
    config = tiny_config(grad_accumulation=2)  # one D step: tracing the micro-batch loop is this test's cost
    straight = train_lib.run(config, options_for(tmp_path / "straight"))
    assert straight.model.grad_accumulation == 2 and checkpoint_steps(tmp_path / "straight") == [2, 4]
    assert RunDirectory(tmp_path / "straight").read_config().training.grad_accumulation == 2
    interrupted_copy(tmp_path / "straight", tmp_path / "resumed", (2,))
    resumed = train_lib.run(config, options_for(tmp_path / "resumed"))
    assert int(resumed.model.d_optimizer.iterations) == 4  # one step counted per update, not per micro-batch
    assert_same_state(state(resumed.model), state(straight.model))
    with pytest.raises(ConfigError, match=r"grad_accumulation: 2 in config.json, 1 now"):
        RunDirectory(tmp_path / "straight").check_resumable(tiny_config())


SMALL_DATA = dict(augment="ada", ada_kimg=0.01, lecam_weight=0.5, orthogonal_reg=1e-3, fake_labels="data")


def test_the_small_data_options_reach_the_model_config_json_and_the_resume_check(tmp_path, monkeypatch):
    config = tiny_config(**SMALL_DATA)
    trainer = train_lib.Trainer(config, options_for(tmp_path))
    try:
        model = trainer.model
        assert model.ada is not None and model.lecam is not None and model.orthogonal_reg == 1e-3
        assert model.fake_label_probabilities == (0.25,) * 4  # the synthetic classes are balanced
        assert {"augment_seed", "ada", "lecam"} <= set(dir(trainer.store.state))
        # Evaluation draws the generated images' labels as the run trains them (the real statistics follow the data).
        uniform = Evaluator(None, None, EvalConfig())
        monkeypatch.setattr(train_lib.Evaluator, "create", lambda *args, **kwargs: uniform)
        trainer.options = dataclasses.replace(trainer.options, evaluation=EvalConfig())
        assert trainer._build_evaluator().label_frequencies == [0.25] * 4
    finally:
        trainer.lock.release()
    assert RunDirectory(tmp_path).read_config() == config
    with pytest.raises(ConfigError, match=r"augment: 'ada' in config.json, 'none' now.*lecam_weight: 0.5 in "
                                          r"config.json, 0.0 now"):
        RunDirectory(tmp_path).check_resumable(tiny_config())


def test_data_frequency_fake_labels_need_known_frequencies_and_classes(tmp_path):
    folder = tiny_image_folder(tmp_path / "images", classes=("blue", "green", "red"), per_class=2, size=16)
    (tmp_path / "images" / "red" / "image_000.png").unlink()
    dataset = data.resolve(f"folder:{folder}")
    config = tiny_config(dataset=f"folder:{folder}", num_classes=3, fake_labels="data")
    assert train_lib.fake_label_frequencies(config, dataset) == pytest.approx((0.4, 0.4, 0.2))
    assert train_lib.fake_label_frequencies(tiny_config(), dataset) is None  # uniform: not needed
    with pytest.raises(ConfigError, match="this model is unconditional"):
        train_lib.fake_label_frequencies(tiny_config(num_classes=0, fake_labels="data"), dataset)
    tfds = types.SimpleNamespace(class_frequencies=lambda: None)
    with pytest.raises(ConfigError, match="known for folder: and synthetic datasets only"):
        train_lib.fake_label_frequencies(tiny_config(dataset="cifar10", fake_labels="data"), tfds)


@pytest.mark.slow
def test_a_run_with_the_small_data_options_resumes_exactly(tmp_path):
    # Fast sibling: tests/models/test_small_data.py (the same state through a checkpoint, eager steps).
    config = tiny_config(d_steps=2, **SMALL_DATA)
    straight = train_lib.run(config, options_for(tmp_path / "straight"))
    assert checkpoint_steps(tmp_path / "straight") == [2, 4] and "ada_p" in straight.logs
    interrupted_copy(tmp_path / "straight", tmp_path / "resumed", (2,))
    resumed = train_lib.run(config, options_for(tmp_path / "resumed"))
    assert_same_state(state(resumed.model), state(straight.model))
    for name in ("ada", "lecam"):
        for key, variable in straight.model.regularization_state()[name].items():
            np.testing.assert_array_equal(resumed.model.regularization_state()[name][key], variable, key)
    np.testing.assert_array_equal(resumed.model.augment_seed_generator.state,
                                  straight.model.augment_seed_generator.state)
    assert "ada_p" in event_scalars(tmp_path / "straight")


def test_bad_options_and_dataset_mismatch(tmp_path):
    # A refused option never creates its run directory (nor trains into it).
    run_dir = str(tmp_path / "x")
    with pytest.raises(UsageError, match="strategy must be one of"):
        train_lib.run(tiny_config(), options_for(run_dir, strategy="gpu"))
    with pytest.raises(ConfigError, match="has 4 class"):
        train_lib.run(tiny_config(num_classes=3), options_for(run_dir))
    with pytest.raises(UsageError, match="on_nonfinite must be one of stop, rollback"):
        train_lib.run(tiny_config(), options_for(run_dir, on_nonfinite="ignore"))
    with pytest.raises(UsageError, match="best-checkpoint metric must be one of fid, inception_score, kid"):
        train_lib.run(tiny_config(), options_for(run_dir, best_metric="seconds"))
    with pytest.raises(UsageError, match="best-checkpoint metric kid is not computed by the evaluation"):
        train_lib.run(tiny_config(), options_for(run_dir, best_metric="kid", evaluation=evaluation.EvalConfig(
            compute_kid=False)))
    with pytest.raises(UsageError, match="--best_metric=class_accuracy measures whether .* this run is "
                                         "unconditional"):
        train_lib.run(tiny_config(num_classes=0), options_for(run_dir, best_metric="class_accuracy"))
    assert not (tmp_path / "x").exists()


def test_a_broken_learning_rate_gets_one_health_warning_that_names_it(tmp_path):
    # The real synthetic32 preset with the discriminator's learning rate 100 times SAGAN's: its raw weights jump about
    # x16 in the first 20 steps (tests/callbacks/health_traces/synthetic32_d_lr_x100.json); the run warns once, with
    # the fix.
    config = presets.get_preset("synthetic32").replace(d_lr=4e-2, train_steps=20)
    result = train_lib.run(config, train_options(tmp_path, log_every=20))
    (step, message), = result.health_warnings
    assert step == 20 and "discriminator's raw weights are exploding" in message
    assert "a lower --d_lr from 0.04 to synthetic32's 0.0004 (100x lower)" in message


@pytest.mark.slow
def test_the_default_synthetic32_run_trains_without_health_warnings(tmp_path):
    result = train_lib.run(presets.get_preset("synthetic32").replace(train_steps=300),
                           train_options(tmp_path, log_every=20))
    assert result.health_warnings == []


def test_xla_with_synchronized_batch_norm_is_refused_before_anything_is_written(tmp_path, mirrored_strategy):
    # It used to be refused by SAGAN.compile, after config.json was written: the rerun without the flag was then
    # refused by the resume check although no checkpoint existed.
    config = tiny_config(synchronized_batch_norm=True)
    with pytest.raises(UsageError, match=r"XLA \(jit_compile=True, --jit_compile\) cannot compile a train step with "
                                         r"synchronized batch norm over 2 replicas.*--nojit_compile"):
        train_lib.Trainer(config, options_for(tmp_path / "run", strategy="mirrored", cpu_devices=2, jit_compile=True))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    trainer = train_lib.Trainer(config, options_for(tmp_path / "run", strategy="mirrored", cpu_devices=2))
    try:  # the default: no XLA with synchronized batch norm over several replicas
        assert not trainer.model.jit_compile and not getattr(trainer.model, "replica_jit_compile", False)
    finally:
        trainer.lock.release()
