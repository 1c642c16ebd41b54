"""sagan_tf.callbacks, driven directly (no fit): checkpoint contents and schedule, sample grids, progress, signals."""

import glob
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import callbacks
from sagan_tf.models import SAGAN, Discriminator, Generator
from tests.models.test_networks import tiny_config


def make_gan(cfg, seed=0):
    keras.utils.set_random_seed(seed)
    gan = SAGAN(Generator(cfg), Discriminator(cfg), cfg.latent_dim, cfg.num_classes, ema_decay=0.9, seed=seed)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    return gan


def all_variables(gan):
    return list(gan.variables) + list(gan.g_optimizer.variables) + list(gan.d_optimizer.variables)


def randomize(gan, seed):
    rng = np.random.default_rng(seed)
    for variable in all_variables(gan):
        variable.assign(rng.integers(0, 5, size=variable.shape).astype(variable.dtype))


def set_step(gan, step):
    gan.g_optimizer.iterations.assign(step)


def test_gan_checkpoint_restores_every_variable(tmp_path):
    cfg = tiny_config()
    source, target = make_gan(cfg), make_gan(cfg, seed=1)
    randomize(source, 0)
    randomize(target, 1)
    path = callbacks.gan_checkpoint(source).save(str(tmp_path / "ckpt"))
    callbacks.gan_checkpoint(target).restore(path).assert_existing_objects_matched()
    for a, b in zip(all_variables(source), all_variables(target)):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    # Why the networks are checkpointed as variable dicts: TensorFlow's object graph misses Keras 3 layers kept in
    # lists, e.g. every variable of the EMA generator's residual blocks.
    naive = {name for name, _ in tf.train.list_variables(tf.train.Checkpoint(model=source).save(
        str(tmp_path / "naive")))}
    assert not any("ema_generator/block1" in name for name in naive)
    names = {name for name, _ in tf.train.list_variables(path)}
    assert any(name.startswith("ema_generator/block1") for name in names)


def test_checkpoint_every_saves_on_crossings_and_at_the_end(tmp_path):
    gan = make_gan(tiny_config())
    manager = tf.train.CheckpointManager(callbacks.gan_checkpoint(gan), str(tmp_path), max_to_keep=10)
    callback = callbacks.CheckpointEvery(manager, every_n_steps=3)
    callback.set_model(gan)
    callback.on_train_begin()
    for step in (1, 2, 3, 4, 5, 7):  # 7: a batch that ran two steps crosses 6
        set_step(gan, step)
        callback.on_train_batch_end(step - 1)
    set_step(gan, 8)
    callback.on_train_end()
    numbers = sorted(int(p.split("-")[-1].split(".")[0]) for p in glob.glob(f"{tmp_path}/ckpt-*.index"))
    assert numbers == [3, 7, 8]
    assert manager.latest_checkpoint.endswith("ckpt-8")
    # Ending again at the same step does not save twice.
    callback.on_train_end()
    assert len(glob.glob(f"{tmp_path}/ckpt-*.index")) == 3


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
        grid_callback.on_train_batch_end(step - 1)
    grid_callback.on_train_end()
    writer.flush()
    assert sorted(os.listdir(tmp_path / "samples")) == ["step_00000002.png", "step_00000003.png"]

    z, labels = grid_callback.inputs
    rng_z = np.random.default_rng(5).standard_normal((len(z), cfg.latent_dim)).astype("float32")
    np.testing.assert_array_equal(z, rng_z)
    rows = 3 if num_classes else 2
    assert len(z) == rows * 2
    if num_classes:
        np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    else:
        assert labels is None
    grid = np.array(Image.open(tmp_path / "samples" / "step_00000003.png")).astype(int)
    expected = np.clip(np.round((np.array(gan.ema_generator(z, labels, training=False)) + 1) * 127.5), 0, 255)
    size, pad = cfg.image_size, callbacks.GRID_PADDING
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


def test_sample_inputs_cap_the_rows_of_many_classes():
    z, labels, row_classes, rows, cols = callbacks.sample_inputs(4, 1000, samples_per_class=2, seed=0)
    assert rows == 16 and cols == 2 and row_classes[0] == 0 and row_classes[-1] == 999
    np.testing.assert_array_equal(labels, np.repeat(row_classes, 2))


def test_progress_logger_reports_window_means_and_resets_metrics(tmp_path):
    gan = make_gan(tiny_config())
    lines = []
    writer = tf.summary.create_file_writer(str(tmp_path))
    logger = callbacks.ProgressLogger(total_steps=4, every_n_steps=2, images_per_step=8, summary_writer=writer,
                                      print_fn=lines.append)
    logger.set_model(gan)
    logger.on_train_begin()
    d_losses = [1.0, 2.0, 4.0, 8.0]
    for step, d_loss in enumerate(d_losses, start=1):
        gan.d_loss_tracker.update_state(d_loss)
        set_step(gan, step)
        logs = {m.name: float(m.result()) for m in gan.metrics}
        logs["gamma_g_attention8"] = 0.25
        logger.on_train_batch_end(step - 1, logs)
    logger.on_train_end()
    assert len(lines) == 2
    assert lines[0].startswith("step 2/4 ( 50.0%)  d_loss 1.5  g_loss 0")
    assert "d_loss 6  " in lines[1] and "gamma_g_attention8 0.25" in lines[1]
    assert "steps/s" in lines[1] and "images/s" in lines[1]
    assert logger.last_logs["images_per_sec"] == pytest.approx(8 * logger.last_logs["steps_per_sec"])
    assert float(gan.d_loss_tracker.result()) == 0.0  # reset after the line
    scalars = {}
    for path in glob.glob(f"{tmp_path}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                scalars[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert scalars[("d_loss", 2)] == 1.5 and scalars[("d_loss", 4)] == 6.0
    assert scalars[("gamma_g_attention8", 4)] == 0.25


def test_graceful_stop_turns_sigterm_into_stop_training():
    gan = make_gan(tiny_config())
    messages = []
    stopper = callbacks.GracefulStop(print_fn=messages.append)
    stopper.set_model(gan)
    original, original_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stopper.on_train_begin()
    assert signal.getsignal(signal.SIGTERM) == stopper._handle
    stopper.on_train_batch_end(0)
    assert not gan.stop_training
    os.kill(os.getpid(), signal.SIGTERM)
    assert stopper.signal_received == signal.SIGTERM and "SIGTERM" in messages[0]
    # The previous handler is back at once, so a second signal acts as usual.
    assert signal.getsignal(signal.SIGTERM) == original
    stopper.on_train_batch_end(1)
    assert gan.stop_training
    assert signal.getsignal(signal.SIGINT) == stopper._handle
    stopper.on_train_end()
    assert signal.getsignal(signal.SIGINT) == original_int
