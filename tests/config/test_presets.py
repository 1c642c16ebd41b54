"""sagan_tf.config.presets: one table of plain data, and dataset-to-preset defaults derived from it."""

import copy

import pytest

from sagan_tf.config import presets
from sagan_tf.config import ExperimentConfig
from sagan_tf.errors import ConfigError, DatasetError


def test_presets_are_plain_data_and_build_valid_configs():
    assert presets.preset_names() == ["cifar32", "dcgan64", "imagenet128", "synthetic32"]
    for name, entry in presets.PRESETS.items():
        assert set(entry) == {"description", "default_for", "folders", "model", "training", "notes"}
        assert isinstance(entry["description"], str) and entry["description"]
        assert all(isinstance(note, str) and note for note in entry["notes"])
        config = presets.get_preset(name)
        assert isinstance(config, ExperimentConfig) and config.name == name
        assert config.model.image_size == entry["model"]["image_size"] == presets.preset_sizes()[name]
        assert config.training.dataset == entry["training"]["dataset"]
    with pytest.raises(ConfigError, match="Unknown preset 'imagenet256'. Known presets: cifar32, dcgan64"):
        presets.get_preset("imagenet256")


def test_imagenet128_is_the_official_setup():
    # The paper (BUILD.md, Reference architectures): batch 256, TTUR (G 1e-4, D 4e-4), Adam beta1 0, one D step,
    # hinge loss.
    config = presets.get_preset("imagenet128")
    training = config.training
    assert (training.batch_size, training.g_lr, training.d_lr, training.beta1, training.d_steps, training.loss) == (
        256, 1e-4, 4e-4, 0.0, 1, "hinge")
    assert config.model.g_channels == (1024, 1024, 512, 256, 128, 64) and config.model.latent_dim == 128
    # The official code's batch-norm momenta (ops.ConditionalBatchNorm decay_rate 0.999, final ops.batch_norm
    # 0.9999); its other departures from the official code are listed in its notes.
    assert (config.model.batch_norm_momentum, config.model.output_batch_norm_momentum) == (0.999, 0.9999)
    notes = " ".join(presets.PRESETS["imagenet128"]["notes"])
    for departure in ("beta2", "Learning rates", "Batch 256", "EMA"):
        assert departure in notes


def test_every_preset_starts_its_ema_after_its_initialisation_has_faded():
    # At the first sample grid (step 500) the EMA is the generator itself (ema_start >= 500), or an average in which
    # the weights of step ema_start, where averaging began, weigh decay ** (500 - ema_start).
    for name in presets.preset_names():
        training = presets.get_preset(name).training
        share = 0.0 if training.ema_start >= 500 else training.ema_decay ** (500 - training.ema_start)
        assert share < 0.01, name
    assert presets.get_preset("dcgan64").training.ema_start == 1000
    assert presets.get_preset("imagenet128").training.ema_start == 2000


@pytest.mark.parametrize("dataset, image_size, expected", [
    ("synthetic", None, "synthetic32"),
    ("cifar10", None, "cifar32"),
    ("imagenet2012", None, "imagenet128"),
    ("celeb_a", None, "dcgan64"),
    ("lsun/church_outdoor", None, "dcgan64"),
    ("lsun/bedroom", None, "dcgan64"),
    ("folder:{folder}", None, "dcgan64"),
    ("folder:{folder}", 32, "cifar32"),
    ("folder:{folder}", 128, "imagenet128"),
])
def test_default_preset_of_each_dataset(tmp_path, dataset, image_size, expected):
    assert presets.default_preset(dataset.format(folder=tmp_path), image_size) == expected


def test_defaults_are_derived_from_the_table(tmp_path, monkeypatch):
    table = copy.deepcopy(presets.PRESETS)
    table["faces16"] = {"description": "a test preset", "default_for": ("lsun/bedroom",), "folders": True,
                        "model": {**table["cifar32"]["model"], "image_size": 16, "g_channels": (64, 64, 64),
                                  "d_attention_resolutions": (8,)},
                        "training": {"dataset": "celeb_a"}}
    table["dcgan64"]["folders"] = False
    monkeypatch.setattr(presets, "PRESETS", table)
    assert presets.default_preset("celeb_a") == "faces16"          # its own training dataset comes first
    assert presets.default_preset("lsun/bedroom") == "dcgan64"     # patterns in preset-name order
    assert presets.default_preset(f"folder:{tmp_path}", 16) == "faces16"
    with pytest.raises(ConfigError, match="No preset makes 64x64 images"):
        presets.default_preset(f"folder:{tmp_path}")


def test_folder_size_without_a_preset_and_unknown_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"No preset makes 48x48 images.*dcgan64 \(64x64\)"):
        presets.default_preset(f"folder:{tmp_path}", 48)
    with pytest.raises(DatasetError, match="Unknown dataset 'imagenet2021'"):
        presets.default_preset("imagenet2021")


def test_config_for_dataset_takes_the_classes_and_overrides(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    config = presets.config_for_dataset(f"folder:{tmp_path}", image_size=32, batch_size=16, latent_dim=32)
    assert config.name == "cifar32" and config.model.num_classes == 3 and config.model.latent_dim == 32
    assert config.training.dataset == f"folder:{tmp_path}" and config.training.batch_size == 16
    assert presets.config_for_dataset("lsun/bedroom").model.num_classes == 0
    with pytest.raises(ConfigError, match="Preset synthetic32 makes 32x32 images, not 64x64; use --preset=dcgan64"):
        presets.config_for_dataset("synthetic", image_size=64)
    with pytest.raises(ConfigError, match="no preset makes 48x48"):
        presets.config_for_dataset("synthetic", image_size=48)
    with pytest.raises(ConfigError, match="d_lr must be > 0"):
        presets.config_for_dataset("synthetic", d_lr=-1.0)
