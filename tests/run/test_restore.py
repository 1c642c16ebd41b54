"""sagan_tf.run.restore: a run's config and generator come back exactly as training left them."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from sagan_tf.run import restore
from sagan_tf.errors import CheckpointError, DamagedCheckpointError, UsageError
from sagan_tf.config.presets import get_preset
from sagan_tf.run.run_dir import RunDirectory
from tests.tiny import train_options
from training import train_lib


def _train(model_dir, steps, **overrides):
    config = get_preset("synthetic32").replace(train_steps=steps, batch_size=4, **overrides)
    return train_lib.run(config, train_options(model_dir, checkpoint_every=1))


def _generate(generator, config, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((4, config.model.latent_dim)).astype("float32")
    labels = np.arange(4, dtype="int32") % max(config.model.num_classes, 1)
    return keras.ops.convert_to_numpy(generator(z, labels, training=False))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run")
    result = _train(model_dir, steps=2)
    return model_dir, result


def test_latest_ema_generator_equals_the_trained_one(trained_run):
    model_dir, result = trained_run
    restored = restore.restore_generator(str(model_dir))
    assert (restored.step, restored.ema) == (2, True)
    assert restored.checkpoint == os.path.join(str(model_dir), "checkpoints", "ckpt-2")
    np.testing.assert_array_equal(_generate(restored.generator, restored.config),
                                  _generate(result.model.ema_generator, restored.config))


def test_raw_generator_and_an_older_checkpoint(trained_run):
    model_dir, result = trained_run
    raw = restore.restore_generator(str(model_dir), use_ema=False)
    assert not raw.ema
    np.testing.assert_array_equal(_generate(raw.generator, raw.config),
                                  _generate(result.model.generator, raw.config))
    older = restore.restore_generator(str(model_dir), checkpoint="1")
    assert older.step == 1
    assert np.abs(_generate(older.generator, older.config) - _generate(raw.generator, raw.config)).max() > 1e-4


def test_restore_under_mixed_precision_gives_float32(trained_run):
    model_dir, _ = trained_run
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    restored = restore.restore_generator(str(model_dir))
    assert all(w.dtype == "float32" for w in restored.generator.weights)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_a_run_without_ema_restores_its_generator(tmp_path):
    result = _train(tmp_path, steps=1, ema_decay=None)
    restored = restore.restore_generator(str(tmp_path))
    assert not restored.ema
    np.testing.assert_array_equal(_generate(restored.generator, restored.config),
                                  _generate(result.model.generator, restored.config))


def test_errors_name_the_problem(trained_run, tmp_path):
    model_dir, _ = trained_run
    with pytest.raises(CheckpointError, match="no config.json"):
        restore.restore_generator(str(tmp_path))
    with pytest.raises(CheckpointError, match="ckpt-1, ckpt-2|ckpt-2, ckpt-1|Checkpoints in .*ckpt-2"):
        restore.restore_generator(str(model_dir), checkpoint=7)
    assert issubclass(CheckpointError, UsageError)


def test_a_checkpoint_of_another_architecture_is_refused(trained_run, tmp_path):
    model_dir, _ = trained_run
    config = RunDirectory(model_dir).read_config()
    other = config.replace(latent_dim=config.model.latent_dim + 1)
    (tmp_path / "checkpoints").symlink_to(model_dir / "checkpoints")
    (tmp_path / "config.json").write_text(other.to_json())
    with pytest.raises(CheckpointError, match="does not fit"):
        restore.restore_generator(str(tmp_path))


def test_a_run_with_a_flat_config_json_of_older_versions_restores(trained_run, tmp_path):
    # Runs written before the model/training split hold one flat dict of every field in config.json.
    model_dir, result = trained_run
    config = RunDirectory(model_dir).read_config()
    flat = {**config.model.to_dict(), **config.training.to_dict()}
    assert "model" not in flat and {"g_lr", "latent_dim", "train_steps"} <= set(flat)
    (tmp_path / "checkpoints").symlink_to(model_dir / "checkpoints")
    (tmp_path / "config.json").write_text(json.dumps(flat))
    restored = restore.restore_generator(str(tmp_path))
    assert restored.config == config and restored.step == 2
    np.testing.assert_array_equal(_generate(restored.generator, config),
                                  _generate(result.model.ema_generator, config))


@pytest.mark.parametrize("damage, reason", [
    ("empty data", r"its ema_generator cannot be read back \(IndexError: Read less bytes than requested\)"),
    ("garbage data", r"its ema_generator cannot be read back \(\w+Error: "),
    ("truncated index", r"its index cannot be read \(\w+Error: "),
])
def test_a_damaged_checkpoint_is_named_with_the_others_to_choose_from(trained_run, tmp_path, damage, reason):
    model_dir, _ = trained_run
    shutil.copytree(model_dir, tmp_path / "run")
    prefix = str(tmp_path / "run" / "checkpoints" / "ckpt-2")
    data, index = f"{prefix}.data-00000-of-00001", f"{prefix}.index"
    if damage == "empty data":
        open(data, "w").close()
    elif damage == "garbage data":
        with open(data, "r+b") as f:
            f.write(b"\xa5" * os.path.getsize(data))
    else:
        with open(index, "r+b") as f:
            f.truncate(os.path.getsize(index) // 2)
    with pytest.raises(DamagedCheckpointError, match=rf"Checkpoint .*ckpt-2 is damaged: {reason}.*"
                                                     r"--checkpoint=<step> \(other steps in .*checkpoints: 1\)"):
        restore.restore_generator(str(tmp_path / "run"))
    assert restore.restore_generator(str(tmp_path / "run"), checkpoint=1).step == 1
