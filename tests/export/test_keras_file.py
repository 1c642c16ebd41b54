"""A generator trained on Keras's JAX backend and saved in Keras's own format, exported by `export.run`
(TensorFlow) into the same SavedModel as a TensorFlow run's: its images equal the JAX generator's."""

import json

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

from sagan_tf import presets, restore, serving
from sagan_tf.errors import UsageError
from tests.tiny import tiny_config

FILES = ("generator.keras", "generator.weights.h5")


def _served(path, outputs):
    signature = tf.saved_model.load(path).signatures[serving.SERVING_SIGNATURE]
    return signature(z=tf.constant(outputs["z"]), labels=tf.constant(outputs["labels"]))[serving.IMAGES_OUTPUT].numpy()


def _interface(path):
    """{signature: (input specs, output specs)} of a SavedModel."""
    loaded = tf.saved_model.load(path)
    return {name: (str(function.structured_input_signature), str(function.structured_outputs))
            for name, function in loaded.signatures.items()}


@pytest.mark.parametrize("name", FILES)
def test_the_export_serves_the_jax_generators_images(jax_run, tmp_path, name):
    config, directory, _ = jax_run
    outputs = np.load(directory / "outputs.npz")
    result = serving.export_keras_file(str(directory / name), str(tmp_path / "exports"), 3, config=config)
    assert (result["path"], result["version"], result["preset"]) == (str(tmp_path / "exports" / "3"), 3, "tiny")
    np.testing.assert_allclose(_served(result["path"], outputs), outputs["images"], atol=2e-5, rtol=0)
    untrained = restore.build_generator(config)(outputs["z"], outputs["labels"], training=False)
    assert np.abs(outputs["images"] - np.asarray(untrained)).max() > 1e-2  # trained weights, not the initial ones


def test_the_export_is_the_one_a_tensorflow_run_gets(jax_run, tmp_path):
    config, directory, _ = jax_run
    from_jax = serving.export_keras_file(str(directory / "generator.keras"), str(tmp_path / "jax"), 1)
    from_tensorflow = serving.export_generator(restore.build_generator(config), config, str(tmp_path / "tf"), 1)
    assert _interface(from_jax["path"]) == _interface(from_tensorflow)
    with open(f"{from_jax['path']}/assets/{serving.EXPORT_INFO_ASSET}") as f:
        info = json.load(f)
    assert info["config"] == config.model.to_dict() and info["keras_file"] == str(directory / "generator.keras")
    assert from_jax["class_names_source"] == "numbers" and info["class_names"] == ["0", "1", "2", "3"]


def test_the_command_exports_a_keras_file(jax_run, tmp_path, capsys):
    from export import run as export_cli

    _, directory, _ = jax_run

    def export(*args):
        values = absl_flags.FlagValues()
        export_cli.define_flags(values)
        values(["export", f"--export_dir={tmp_path / 'exports'}", *args])
        status = export_cli.main(["export"], values)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    status, out, _ = export(f"--keras_file={directory / 'generator.keras'}", "--version=5")
    assert status == 0 and json.loads(out.strip().splitlines()[-1])["path"] == str(tmp_path / "exports" / "5")
    status, _, err = export(f"--keras_file={directory / 'generator.weights.h5'}", "--preset=dcgan64", "--version=6")
    assert status == 2 and "does not hold the weights of a 'dcgan64' generator" in err
    status, _, err = export(f"--keras_file={directory / 'generator.keras'}", "--model_dir=runs/x", "--version=6")
    assert status == 2 and "Pass exactly one of --model_dir" in err
    status, _, err = export(f"--keras_file={directory / 'generator.keras'}")
    assert status == 2 and "needs a version number (--version)" in err


def test_files_that_do_not_fit_are_usage_errors(jax_run, tmp_path):
    config, directory, _ = jax_run
    weights, saved = str(directory / "generator.weights.h5"), str(directory / "generator.keras")
    cases = [
        (weights, None, "holds weights only: name the generator's config"),
        (weights, presets.get_preset("synthetic32"), "does not hold the weights of a 'synthetic32' generator"),
        (weights, tiny_config(32, num_classes=0), "does not hold the weights of a 'tiny' generator (32x32, 0 classes)"),
        (saved, tiny_config(16), "differs from the one given ('tiny') in: g_attention_resolutions, g_channels"),
        (str(tmp_path / "missing.keras"), None, "does not exist"),
        (str(tmp_path / "generator.h5"), None, "A Keras generator file ends in .keras or .weights.h5"),
    ]
    for path, given, message in cases:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            restore.restore_generator_file(path, given)
    (tmp_path / "not_a_generator.keras").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="is not a readable .keras file"):
        restore.restore_generator_file(str(tmp_path / "not_a_generator.keras"))
    with pytest.raises(UsageError, match="needs a version number"):
        serving.export_keras_file(saved, str(tmp_path / "exports"), None)
