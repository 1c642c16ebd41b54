"""A generator trained on Keras's JAX backend and saved in Keras's own format, exported by `export.run`
(TensorFlow) into the same SavedModel as a TensorFlow run's: its images equal the JAX generator's."""

import json

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.config import presets
from sagan_tf.run import restore
from sagan_tf.serving import signatures as serving
from sagan_tf.errors import UsageError
from tests.tiny import main_in_process, tiny_config

def _served(path, outputs):
    signature = tf.saved_model.load(path).signatures[serving.SERVING_SIGNATURE]
    return signature(z=tf.constant(outputs["z"]), labels=tf.constant(outputs["labels"]))[serving.IMAGES_OUTPUT].numpy()


def _interface(path):
    """{signature: (input specs, output specs)} of a SavedModel."""
    loaded = tf.saved_model.load(path)
    return {name: (str(function.structured_input_signature), str(function.structured_outputs))
            for name, function in loaded.signatures.items()}


def _export_command(tmp_path, capsys, *args):
    """(exit status, the JSON line or None, stderr) of `python -m export.run` run in this process."""
    from export import run as export_cli

    status, out, err = main_in_process(export_cli, capsys, f"--export_dir={tmp_path / 'exports'}", *args)
    lines = out.strip().splitlines()
    return status, json.loads(lines[-1]) if lines else None, err


def test_a_keras_file_from_jax_exports_to_the_saved_model_a_tensorflow_run_gets(jax_trained, tmp_path, capsys):
    config, directory, _ = jax_trained
    outputs = np.load(directory / "outputs.npz")
    status, result, _ = _export_command(tmp_path, capsys, f"--keras_file={directory / 'generator.keras'}",
                                        "--version=5")
    assert status == 0 and result["path"] == str(tmp_path / "exports" / "5") and result["preset"] == "tiny"
    np.testing.assert_allclose(_served(result["path"], outputs), outputs["images"], atol=2e-5, rtol=0)
    untrained = restore.build_generator(config)(outputs["z"], outputs["labels"], training=False)
    assert np.abs(outputs["images"] - np.asarray(untrained)).max() > 1e-2  # trained weights, not the initial ones

    from_tensorflow = serving.export_generator(restore.build_generator(config), config, str(tmp_path / "tf"), 1)
    assert _interface(result["path"]) == _interface(from_tensorflow)
    with open(f"{result['path']}/assets/{serving.EXPORT_INFO_ASSET}") as f:
        info = json.load(f)
    assert info["config"] == json.loads(json.dumps(config.model.to_dict()))
    assert info["keras_file"] == str(directory / "generator.keras") and info["version"] == 5
    assert result["class_names_source"] == "numbers" and info["class_names"] == ["0", "1", "2", "3"]
    assert "records no class names" in result["note"] and "--preset" in result["note"]


def test_a_weights_file_from_jax_exports_with_its_config(jax_trained, tmp_path):
    config, directory, _ = jax_trained
    outputs = np.load(directory / "outputs.npz")
    result = serving.export_keras_file(str(directory / "generator.weights.h5"), str(tmp_path), 3, config=config)
    assert (result["path"], result["version"], result["preset"]) == (str(tmp_path / "3"), 3, "tiny")
    np.testing.assert_allclose(_served(result["path"], outputs), outputs["images"], atol=2e-5, rtol=0)


def test_bad_command_lines_are_usage_errors(jax_trained, tmp_path, capsys):
    _, directory, _ = jax_trained
    cases = [
        ((f"--keras_file={directory / 'generator.weights.h5'}", "--preset=dcgan64", "--version=6"),
         "does not hold the weights of a 'dcgan64' generator (64x64, 0 classes)"),
        ((f"--keras_file={directory / 'generator.keras'}", "--model_dir=runs/x", "--version=6"),
         "Pass exactly one of --model_dir"),
        ((f"--keras_file={directory / 'generator.keras'}",), "needs a version number (--version)"),
        ((f"--keras_file={directory / 'generator.keras'}", "--version=6", "--checkpoint=best"),
         "--checkpoint and --noema choose within a training run"),
        (("--model_dir=runs/x", "--preset=dcgan64"), "--preset goes with --keras_file"),
        ((f"--keras_file={directory / 'generator.keras'}", "--preset=no_such_preset", "--version=6"),
         "no_such_preset"),
    ]
    for args, message in cases:
        status, result, err = _export_command(tmp_path, capsys, *args)
        assert (status, result) == (2, None) and message in err, (args, err)
    assert not (tmp_path / "exports").exists()


def test_files_that_do_not_fit_are_usage_errors(jax_trained, tmp_path):
    config, directory, _ = jax_trained
    weights, saved = str(directory / "generator.weights.h5"), str(directory / "generator.keras")
    cases = [
        (weights, None, "holds weights only: name the generator's config"),
        (weights, presets.get_preset("synthetic32"), "does not hold the weights of a 'synthetic32' generator"),
        (weights, tiny_config(num_classes=0), "does not hold the weights of a 'tiny' generator (16x16, 0 classes)"),
        (saved, tiny_config(32), "differs from the one given ('tiny') in: d_attention_resolutions, d_channels, "
                                 "d_downsample, g_attention_resolutions, g_channels, image_size."),
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
