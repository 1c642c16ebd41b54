"""sagan_tf.run.run_dir: the layout of a run directory, its config (both formats) and resume checks."""

import json
import os

import pytest

from sagan_tf.run import run_dir
from sagan_tf.config import ExperimentConfig
from sagan_tf.errors import CheckpointError, ConfigError
from sagan_tf.config.presets import get_preset
from sagan_tf.run.run_dir import RunDirectory
from tests.tiny import tiny_config


def test_layout():
    run = RunDirectory("runs/x")
    assert (run.config_path, run.checkpoint_dir, run.samples_dir, run.eval_dir, run.visualize_dir) == (
        "runs/x/config.json", "runs/x/checkpoints", "runs/x/samples", "runs/x/eval", "runs/x/visualize")
    assert run.best_dir == "runs/x/checkpoints/best"
    with pytest.raises(CheckpointError, match="run directory path is required"):
        RunDirectory("")


def test_config_is_written_atomically_and_read_back(tmp_path):
    run = RunDirectory(tmp_path / "new")
    config = tiny_config()
    run.write_config(config)
    assert os.listdir(run.path) == ["config.json"]  # no temporary file left behind
    assert json.loads(open(run.config_path).read())["format"] == 2
    assert run.read_config() == config


def test_a_flat_config_json_of_an_older_run_is_read(tmp_path):
    config = tiny_config(g_lr=3e-4)
    (tmp_path / "config.json").write_text(json.dumps({**config.model.to_dict(), **config.training.to_dict()}))
    assert RunDirectory(tmp_path).read_config() == config
    RunDirectory(tmp_path).check_resumable(config)  # and it is the same run


def test_reading_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="nothing is not a training run directory: it does not exist"):
        RunDirectory(tmp_path / "nothing").read_config()
    (tmp_path / "a_file").write_text("")
    with pytest.raises(CheckpointError, match="a_file is not a training run directory: it is a file"):
        RunDirectory(tmp_path / "a_file").read_config()
    assert RunDirectory(tmp_path / "a_file" / "run").file_in_the_way() == str(tmp_path / "a_file")
    assert RunDirectory(tmp_path / "a_file").file_in_the_way() == str(tmp_path / "a_file")
    assert RunDirectory(tmp_path / "new" / "run").file_in_the_way() is None
    assert RunDirectory(tmp_path).file_in_the_way() is None
    assert RunDirectory("gs://bucket/run").file_in_the_way() is None
    with pytest.raises(CheckpointError, match="is not a training run directory: it has no config.json"):
        RunDirectory(tmp_path).read_config()
    (tmp_path / "config.json").write_text('{"name": "x"}')
    with pytest.raises(CheckpointError, match="does not describe a SAGAN config"):
        RunDirectory(tmp_path).read_config()


def test_resume_checks_the_model_and_the_training_config(tmp_path):
    run = RunDirectory(tmp_path)
    run.check_resumable(tiny_config())  # no config.json yet: a new run
    run.write_config(tiny_config())
    run.check_resumable(tiny_config(train_steps=100))  # only the length may change
    with pytest.raises(ConfigError, match=r"latent_dim: 8 in config.json, 16 now") as error:
        run.check_resumable(tiny_config(latent_dim=16))
    assert "only train_steps may change" in str(error.value) and "--model_dir" in str(error.value)
    with pytest.raises(ConfigError, match=r"batch_size: 4 in config.json, 8 now; g_lr: 0.0001 in config.json"):
        run.check_resumable(tiny_config(batch_size=8, g_lr=1e-3))
    with pytest.raises(ConfigError, match=r"dataset: 'synthetic' in config.json, 'cifar10' now"):
        run.check_resumable(tiny_config(dataset="cifar10"))
    # Damaged files are refused with a ConfigError, never a traceback: not JSON, a section missing required model
    # fields (TypeError inside the dataclass), sections of the wrong type.
    for text, cause in [("{not json", "JSONDecodeError"), ('{"format": 2, "model": {}, "training": {}}', "TypeError"),
                        ('{"model": 5}', "TypeError"), ("[1]", "")]:
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(ConfigError, match=f"is not a valid run config .*{cause}"):
            run.check_resumable(tiny_config())
        with pytest.raises(CheckpointError, match=f"does not describe a SAGAN config .*{cause}"):
            run.read_config()


def test_json_is_written_atomically(tmp_path):
    path = str(tmp_path / "figures.json")
    run_dir.write_json_atomically(path, {"b": 1, "a": [1, 2]})
    assert json.loads(open(path).read()) == {"a": [1, 2], "b": 1}
    assert os.listdir(tmp_path) == ["figures.json"]


def test_default_model_dir():
    assert run_dir.default_model_dir(get_preset("synthetic32"), "synthetic") == "runs/synthetic32"
    assert run_dir.default_model_dir(get_preset("dcgan64"), "folder:/data/my faces") == (
        "runs/dcgan64-folder_data_my_faces")
    assert run_dir.default_model_dir(ExperimentConfig.from_dict(tiny_config().to_dict()), "synthetic") == (
        "runs/tiny-synthetic")


def test_class_names_are_recorded_and_read(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.read_class_names() is None  # runs before class names were recorded
    run.write_class_names(("cat", "dog"), "folder:/data/pets")
    assert run.read_class_names() == ("cat", "dog")
    assert json.loads(open(run.class_names_path).read()) == {"dataset": "folder:/data/pets",
                                                              "class_names": ["cat", "dog"]}
    (tmp_path / "class_names.json").write_text('{"class_names": "cat"}')
    with pytest.raises(CheckpointError, match="does not hold a list of class names"):
        run.read_class_names()
