"""sagan_tf.config: the model/training split, validation, JSON round trips and the flat format of older runs."""

import dataclasses
import json

import pytest

from sagan_tf.models import losses
from sagan_tf.config import (MODEL_FIELDS, TRAINING_FIELDS, AttentionConfig, ExperimentConfig, ModelConfig,
                             TrainingConfig, as_model_config)
from sagan_tf.errors import ConfigError
from sagan_tf.models import Generator
from sagan_tf.config.presets import get_preset, preset_names
from tests.tiny import ROOT, tiny_config, tiny_model


def flat_dict(config):
    """The single flat dict of every field that config.json held before the split (format 1)."""
    return {**config.model.to_dict(), **config.training.to_dict()}


def test_the_two_configs_split_the_fields_without_overlap():
    assert not set(MODEL_FIELDS) & set(TRAINING_FIELDS)
    assert {"g_channels", "latent_dim", "attention", "batch_norm_momentum"} <= set(MODEL_FIELDS)
    assert {"dataset", "batch_size", "g_lr", "d_lr", "beta1", "beta2", "d_steps", "grad_accumulation", "loss",
            "ema_decay", "ema_start", "train_steps", "augment", "augment_policy", "ada_target", "ada_interval",
            "ada_kimg", "lecam_weight", "orthogonal_reg", "fake_labels"} == set(TRAINING_FIELDS)


def test_a_saved_generator_stores_its_architecture_only():
    config = Generator(tiny_model()).get_config()["config"]
    assert set(config) == set(MODEL_FIELDS)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_round_trips_through_json(name):
    config = get_preset(name)
    text = config.to_json()
    assert json.loads(text)["format"] == 2 and set(json.loads(text)) == {"format", "model", "training"}
    assert ExperimentConfig.from_json(text) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.model.to_dict()))) == config.model


def test_flat_config_json_of_older_runs_reads_as_the_same_config():
    config = tiny_config(d_steps=2, g_lr=3e-4, attention=AttentionConfig(pool_keys=False))
    flat = json.loads(json.dumps(flat_dict(config)))  # lists for tuples, a dict for the attention options
    assert ExperimentConfig.from_dict(flat) == config
    assert ExperimentConfig.from_json(json.dumps(flat)) == config
    # A `.keras` generator saved before the split stored that flat dict as its config: the model part is read.
    assert ModelConfig.from_dict(flat) == config.model
    assert as_model_config(flat) == config.model
    rebuilt = Generator.from_config({**Generator(config.model).get_config(), "config": flat})
    assert rebuilt.config == config.model


def test_config_json_written_before_the_ema_start_and_output_momentum_fields_reads_as_before():
    # Runs written before these fields existed averaged from step 0 and used one batch-norm momentum throughout:
    # reading their config.json (either format) must describe exactly that, so they resume as they were trained.
    config = tiny_config(batch_norm_momentum=0.9)
    written = config.to_dict()
    del written["training"]["ema_start"], written["model"]["output_batch_norm_momentum"]
    old = ExperimentConfig.from_dict(json.loads(json.dumps(written)))
    assert old == config and old.training.ema_start == 0 and old.model.output_batch_norm_momentum is None
    flat = flat_dict(config)
    del flat["ema_start"], flat["output_batch_norm_momentum"]
    assert ExperimentConfig.from_dict(flat) == config
    # A generator built from it gives its final batch norm the blocks' momentum; the new field sets it apart.
    assert Generator(old.model).output_norm.momentum == 0.9
    assert Generator(tiny_model(output_batch_norm_momentum=0.9999)).output_norm.momentum == 0.9999


def test_config_json_written_before_the_small_data_options_reads_as_the_papers_recipe():
    config = tiny_config()
    written = config.to_dict()
    for name in ("augment", "augment_policy", "ada_target", "ada_interval", "ada_kimg", "lecam_weight",
                 "orthogonal_reg", "fake_labels"):
        del written["training"][name]
    old = ExperimentConfig.from_dict(json.loads(json.dumps(written)))
    assert old == config
    training = old.training
    assert (training.augment, training.augment_policy, training.ada_target, training.ada_interval,
            training.ada_kimg) == ("none", "color,translation,cutout", 0.6, 4, 500.0)
    assert (training.lecam_weight, training.orthogonal_reg, training.fake_labels) == (0.0, 0.0, "uniform")
    # Set, they round-trip through config.json; a policy has one spelling.
    changed = tiny_config(augment="ada", augment_policy=" cutout, color", ada_target=0.5, lecam_weight=0.3,
                          orthogonal_reg=1e-4, fake_labels="data")
    assert changed.training.augment_policy == "cutout,color"
    assert ExperimentConfig.from_json(changed.to_json()) == changed


def test_unknown_fields_sections_and_formats_are_refused():
    flat = flat_dict(tiny_config())
    with pytest.raises(ConfigError, match=r"Unknown config fields \['gamma'\]"):
        ExperimentConfig.from_dict({**flat, "gamma": 1})
    with pytest.raises(ConfigError, match=r"Unknown ModelConfig fields \['mystery'\]"):
        ModelConfig.from_dict({**tiny_model().to_dict(), "g_lr": 1e-4, "mystery": 1})
    nested = tiny_config().to_dict()
    with pytest.raises(ConfigError, match="Unknown config format 3"):
        ExperimentConfig.from_dict({**nested, "format": 3})
    with pytest.raises(ConfigError, match=r"Unknown config sections \['optimizer'\]"):
        ExperimentConfig.from_dict({**nested, "optimizer": {}})
    with pytest.raises(ConfigError, match=r"Unknown TrainingConfig fields \['latent_dim'\]"):
        ExperimentConfig.from_dict({**nested, "training": {**nested["training"], "latent_dim": 8}})
    with pytest.raises(ConfigError, match="Expected a ModelConfig"):
        as_model_config("tiny")


def test_replace_routes_each_field_to_its_config():
    config = tiny_config()
    changed = config.replace(latent_dim=16, batch_size=8, ema_decay=None)
    assert (changed.model.latent_dim, changed.training.batch_size, changed.training.ema_decay) == (16, 8, None)
    assert changed.model == dataclasses.replace(config.model, latent_dim=16)
    assert config.model.latent_dim == 8  # frozen: the original is unchanged
    with pytest.raises(ConfigError, match=r"Unknown config fields \['learning_rate'\]"):
        config.replace(learning_rate=1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model.image_size = 32


@pytest.mark.parametrize("fields, message", [
    (dict(g_base_resolution=8), "the generator stages make 32x32 images, not image_size"),
    (dict(d_attention_resolutions=(32,)), "no discriminator stage outputs 32x32"),
    (dict(g_attention_resolutions=(4,)), "no generator stage outputs 4x4"),
    (dict(block_type="unet"), "block_type must be one of"),
    (dict(num_classes=-1), "num_classes must be >= 0"),
    (dict(d_downsample=(True, True)), "d_downsample needs one entry per discriminator stage"),
    (dict(d_downsample=(False, True, False)), "the first residual discriminator block always downsamples"),
    (dict(batch_norm_momentum=1.0), "batch_norm_momentum must be in"),
    (dict(output_batch_norm_momentum=-0.1), "output_batch_norm_momentum must be in"),
    (dict(latent_dim=0), "latent_dim must be >= 1"),
])
def test_model_config_validation_names_the_field(fields, message):
    with pytest.raises(ConfigError, match=f"Invalid ModelConfig 'tiny': {message}"):
        tiny_model(**fields)


@pytest.mark.parametrize("fields, message", [
    (dict(loss="wasserstein"), "loss must be one of"),
    (dict(d_lr=-1.0), "d_lr must be > 0. Received: d_lr=-1.0"),
    (dict(beta2=1.0), "beta2 must be in"),
    (dict(ema_decay=1.0), "ema_decay must be in"),
    (dict(ema_start=-1), "ema_start must be an integer >= 0"),
    (dict(d_steps=0), "d_steps must be >= 1"),
    (dict(grad_accumulation=0), r"grad_accumulation must be an integer >= 1 \(1: none\). Received: "
                                "grad_accumulation=0"),
    (dict(grad_accumulation=2.0), "grad_accumulation must be an integer >= 1"),
    (dict(grad_accumulation=1.5), "grad_accumulation must be an integer >= 1"),
    (dict(grad_accumulation=True), "grad_accumulation must be an integer >= 1"),
    (dict(lecam_weight=float("inf")), "lecam_weight must be a number >= 0"),
    (dict(batch_size=6, grad_accumulation=4), "grad_accumulation must divide batch_size .*Received: batch_size=6, "
                                              "grad_accumulation=4"),
    (dict(train_steps=0), "train_steps must be >= 1"),
    (dict(dataset=""), "dataset must be a dataset name"),
    (dict(augment="rotate"), "augment must be one of none, diffaugment, ada. Received: augment='rotate'"),
    (dict(augment_policy="color,zoom"), "augment_policy must be a comma-separated list of color, translation, "
                                        "cutout, each at most once. Received: augment_policy='color,zoom'"),
    (dict(augment_policy=""), "augment_policy must be a comma-separated list"),
    (dict(ada_target=1.0), r"ada_target must be in \(0, 1\) \(the paper's is 0.6\). Received: ada_target=1.0"),
    (dict(ada_target=0), r"ada_target must be in \(0, 1\)"),
    (dict(ada_interval=0), "ada_interval must be an integer >= 1"),
    (dict(ada_kimg=0.0), "ada_kimg must be > 0"),
    (dict(lecam_weight=-0.1), r"lecam_weight must be a number >= 0 \(0: off\). Received: lecam_weight=-0.1"),
    (dict(orthogonal_reg=-1e-4), "orthogonal_reg must be a number >= 0"),
    (dict(orthogonal_reg=float("nan")), "orthogonal_reg must be a number >= 0"),
    (dict(fake_labels="balanced"), "fake_labels must be one of uniform, data. Received: fake_labels='balanced'"),
])
def test_training_config_validation_names_the_field(fields, message):
    with pytest.raises(ConfigError, match=f"Invalid TrainingConfig: {message}"):
        TrainingConfig(**fields)


def test_the_loss_names_are_the_losses_modules():
    for name in losses.LOSSES:
        assert TrainingConfig(loss=name).loss == name
    with pytest.raises(ConfigError) as error:
        TrainingConfig(loss="wasserstein")
    assert all(name in str(error.value) for name in losses.LOSSES)


def test_images_per_step_and_generator_resolutions():
    assert tiny_config(d_steps=3, batch_size=4).training.images_per_step == 12
    model = tiny_model()
    assert model.generator_resolutions() == [4, 8, 16] and model.discriminator_resolutions() == [8, 4, 4]
    dcgan = get_preset("dcgan64").model
    assert dcgan.generator_resolutions() == [4, 8, 16, 32, 64] and dcgan.generator_output_resolution() == 64


def test_config_imports_and_validates_without_tensorflow_or_keras():
    """The configuration is plain data: it imports, builds, round-trips and refuses bad values with TensorFlow,
    Keras and JAX unimportable (`sys.modules[name] = None` makes `import name` fail)."""
    import subprocess
    import sys

    code = """
import sys
for name in ("tensorflow", "keras", "jax", "tensorflow_datasets"):
    sys.modules[name] = None
from sagan_tf.config import ExperimentConfig, ModelConfig, TrainingConfig
from sagan_tf.errors import ConfigError
from sagan_tf.config.presets import get_preset
training = TrainingConfig(augment="ada", augment_policy=" cutout, color", loss="non_saturating", lecam_weight=0.1)
assert training.augment_policy == "cutout,color"
config = get_preset("synthetic32").replace(augment="ada", augment_policy=" cutout, color")
assert ExperimentConfig.from_json(config.to_json()) == config and config.training.augment_policy == "cutout,color"
model = ModelConfig(name="tiny", image_size=16, num_classes=4, latent_dim=8, g_channels=(16, 8, 8),
                    d_channels=(8, 16, 16), d_downsample=(True, True, False))
assert ExperimentConfig(model, training).training == training
for fields in ({"augment": "rotate"}, {"augment_policy": "color,zoom"}, {"loss": "wasserstein"}, {"ada_target": 1.0},
               {"d_steps": 0}, {"grad_accumulation": True}):
    try:
        TrainingConfig(**fields)
    except ConfigError as error:
        print(str(error).split(". Received")[0])
    else:
        raise SystemExit(f"accepted {fields}")
try:
    import keras
except ImportError:
    print("keras unimportable")
assert not any(name.split(".")[0] in ("tensorflow", "keras", "jax") and module is not None
               for name, module in sys.modules.items())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[:2] == ["Invalid TrainingConfig: augment must be one of none, diffaugment, ada",
                         "Invalid TrainingConfig: augment_policy must be a comma-separated list of color, translation, "
                         "cutout, each at most once"]
    assert lines[2].startswith("Invalid TrainingConfig: loss must be one of ('hinge', 'non_saturating')")
    assert len(lines) == 7 and lines[-1] == "keras unimportable"


def test_the_plain_names_are_the_implemented_ones():
    from sagan_tf.models import augment
    from sagan_tf.config import choices

    assert tuple(losses.LOSSES) == choices.LOSS_NAMES
    assert augment.MODES == choices.AUGMENT_MODES and set(augment.GATED_OPS) == set(choices.POLICY_OPS)
