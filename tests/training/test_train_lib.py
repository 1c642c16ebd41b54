"""train_lib.run: what a run writes, resuming (exactly), refusing incompatible model_dirs, tf.distribute."""

import glob
import io
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import checkpoint, images
from sagan_tf.config import ExperimentConfig
from sagan_tf.errors import ConfigError, UsageError
from sagan_tf.models import build_sagan
from sagan_tf.run_dir import RunDirectory
from tests.tiny import event_scalars, tiny_config, train_options
from training import train_lib


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
    return [step for step, _ in RunDirectory(model_dir).checkpoints()]


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
    assert checkpoint_steps(model_dir) == [2, 4]
    assert result.checkpoint == str(model_dir / "checkpoints" / "ckpt-4")

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
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(straight_dir / "config.json", tmp_path / "config.json")
    for path in glob.glob(f"{straight_dir}/checkpoints/ckpt-2.*"):
        shutil.copy(path, tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')

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


def test_incompatible_model_dir_is_refused_naming_the_fields(tmp_path):
    (tmp_path / "config.json").write_text(tiny_config(batch_size=8, g_lr=1e-3).to_json())
    with pytest.raises(ConfigError, match=r"batch_size: 8 in config.json, 4 now.*g_lr") as error:
        train_lib.run(tiny_config(), options_for(tmp_path))
    assert "--model_dir" in str(error.value) and "train_steps" in str(error.value)
    assert not (tmp_path / "checkpoints").exists()
    # train_steps alone may change (it is what a resume extends).
    RunDirectory(tmp_path).check_resumable(tiny_config(batch_size=8, g_lr=1e-3, train_steps=9))


def first_batches(dataset_fn, count, input_context=None):
    return [batch[0].numpy() for batch in dataset_fn(input_context).take(count)]


@pytest.mark.parametrize("dataset", ["synthetic", "folder"])
def test_a_resumed_pipeline_continues_where_the_straight_one_is(tmp_path, dataset):
    if dataset == "folder":  # 5 images: the 8 examples of two steps cross an epoch boundary
        for i in range(5):
            Image.fromarray(np.full((16, 16, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
        dataset = f"folder:{tmp_path}"
    config, options = tiny_config(dataset=dataset, num_classes=0, d_steps=2, batch_size=2), options_for("unused")
    straight = first_batches(train_lib.input_fn(config, options, 0), 4)
    resumed = first_batches(train_lib.input_fn(config, options, 2), 2)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(straight[2:]))
    assert not np.array_equal(straight[0], straight[2])
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    assert train_lib.pipeline_position(3, 8, context) == 12 and train_lib.pipeline_position(3, 8) == 24


def test_a_tfds_pipeline_is_reseeded_on_resume():
    assert train_lib.pipeline_seed(7, 0) == 7 and train_lib.pipeline_seed(7, 2) != 7
    assert train_lib.pipeline_seed(7, 2) == train_lib.pipeline_seed(7, 2) < 2**31


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
def test_mirrored_run_trains(tmp_path):
    result = train_lib.run(tiny_config(train_steps=2), options_for(tmp_path, strategy="mirrored"))
    assert result.model.distribute_strategy.num_replicas_in_sync == 2
    assert result.step == 2 and np.isfinite(result.logs["d_loss"])
    assert checkpoint_steps(tmp_path) == [2]


def test_bad_options_and_dataset_mismatch():
    with pytest.raises(UsageError, match="strategy must be one of"):
        train_lib.run(tiny_config(), options_for("x", strategy="gpu"))
    with pytest.raises(ConfigError, match="has 4 class"):
        train_lib.run(tiny_config(num_classes=3), options_for("x"))
