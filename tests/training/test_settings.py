"""Each training setting is declared once (`sagan_tf.config.setting`): its flag, its config field, config.json and the
README's statements of its default come from that declaration or are checked against it here."""

import dataclasses
import pathlib
import re

from absl import flags as absl_flags

from sagan_tf.config import ExperimentConfig, ModelConfig, TrainingConfig, settings
from training import run as run_cli
from training import train_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def flag_values(*argv):
    values = absl_flags.FlagValues()
    run_cli.define_flags(values)
    values(["run", *argv])
    return values


def declared():
    """[(flag name, field, whether the preset gives the default)] of every setting of training.run."""
    return [(field.metadata.get("name", field.name), field, from_preset)
            for config_class, from_preset in ((ModelConfig, True), (TrainingConfig, True),
                                              (train_lib.TrainOptions, False))
            for field in settings(config_class)]


def test_every_setting_is_a_flag_with_its_declared_default_and_help():
    values = flag_values()
    names = [name for name, _, _ in declared()]
    assert len(names) == len(set(names)) >= 30
    for name, field, from_preset in declared():
        flag = values[name]
        assert flag.default == (None if from_preset else field.default), name
        assert field.metadata["help"] in flag.help, name  # an enum flag's help starts with its values
        assert ("Default: the preset's." in flag.help) == from_preset, name
    # The other flags are the dataset and preset, and evaluation's (EvalConfig, whose defaults differ per command).
    others = {name for name, flag in values._flags().items() if name == flag.name} - set(names)
    assert others == {"dataset", "preset", "image_size", "eval_samples", "classifier", "kid", "precision_recall"}


def test_flags_reach_their_fields_and_config_json():
    values = flag_values("--lecam_weight=0.3", "--sync_batch_norm", "--ema_decay=none", "--log_every=7",
                         "--model_dir=somewhere", "--augment=ada", "--ada_kimg=100")
    config, options = run_cli.config_and_options(values)
    assert config.training.lecam_weight == 0.3 and config.training.ada_kimg == 100.0
    assert config.model.synchronized_batch_norm is True and config.training.ema_decay is None
    assert options.log_every == 7 and options.model_dir == "somewhere"
    assert ExperimentConfig.from_json(config.to_json()) == config  # config.json keeps each field as declared
    # A flag left out keeps the preset's value, not the field's default: synthetic32 sets its own batch size.
    default_config, default_options = run_cli.config_and_options(flag_values())
    assert default_config.training.batch_size != TrainingConfig().batch_size
    assert default_options == dataclasses.replace(
        train_lib.TrainOptions(model_dir="runs/synthetic32"), evaluation=default_options.evaluation)


def test_the_readme_states_each_settings_default_as_declared():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").replace("\n", " ")
    defaults = {name: field.default for name, field, _ in declared()}
    checked = []
    for match in re.finditer(r"`--([a-z_]+)(?:=[^`]*)?`\**[^.;]{0,60}?\bdefault:? (`[^`]+`|[^ ,;)]+)", readme):
        name, stated = match[1], match[2].strip("`")
        if name in defaults and defaults[name] is not None:
            expected = defaults[name]
            assert (float(stated) == expected if isinstance(expected, (int, float)) else stated == expected), name
            checked.append(name)
    assert {"ada_target", "ada_kimg", "lecam_weight", "orthogonal_reg", "augment_policy",
            "grad_accumulation"} <= set(checked)
