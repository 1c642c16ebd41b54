"""`python -m training.visualize`: attention maps and labelled samples of a tiny trained run; clean errors."""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
from absl import flags as absl_flags
from PIL import Image

from sagan_tf.sampling import images, interpolation
from sagan_tf.run import restore
from sagan_tf.sampling import attention_maps as vis
from sagan_tf.data import get_info
from sagan_tf.errors import UsageError
from tests.tiny import PYTHON, ROOT, subprocess_environment, tiny_config, train_options
from training import train_lib
from training import visualize as visualize_cli


def tiny_run(directory, **overrides):
    """Trains a tiny 32x32 synthetic model for 2 steps into `directory`."""
    train_lib.run(tiny_config(32, train_steps=2, **overrides), train_options(directory))
    return str(directory)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("run"))


def run_cli(*args):
    return subprocess.run([PYTHON, "-m", "training.visualize", *args], cwd=ROOT, env=subprocess_environment(),
                          capture_output=True, text=True, timeout=180)


def read_png(path):
    return np.array(Image.open(path).convert("RGB"))


def test_cli_writes_attention_maps_and_labelled_samples(model_dir, tmp_path):
    out = tmp_path / "pictures"
    result = run_cli(f"--model_dir={model_dir}", f"--output_dir={out}", "--num_images=2", "--query_points=0,0;31,31",
                     "--samples_per_class=3", "--seed=5")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout.strip().splitlines()[-1])
    assert written["samples"] == str(out / "samples.png") and written["attention_maps"] == str(out /
                                                                                              "attention_maps.png")
    assert (written["step"], written["ema"], written["query_points"]) == (2, True, [[0, 0], [31, 31]])

    # The files hold what the library draws for the restored EMA generator with the same seed.
    restored = restore.restore_generator(model_dir)
    z, labels, _, rows, cols = images.grid_inputs(8, 4, samples_per_class=3, seed=5)
    generated = keras.ops.convert_to_numpy(restored.generator(z, labels, training=False))
    expected_samples = images.labelled_grid(generated, labels, get_info("synthetic").class_names)
    samples = read_png(out / "samples.png")
    assert samples.shape == expected_samples.shape
    np.testing.assert_allclose(samples.astype(int), expected_samples.astype(int), atol=1)  # float round-off
    assert rows == 4 and cols == 3

    attention = read_png(out / "attention_maps.png")
    pad, tile = images.GRID_PADDING, 128  # 32x32 images drawn at scale 4
    assert attention.shape[1] == pad + (1 + 1 * 2) * (tile + pad)  # image + 1 layer x 2 queries
    z = np.random.default_rng(5).standard_normal((2, 8)).astype("float32")
    maps = vis.attention_maps(restored.generator, z, [0, 1], [(0, 0), (31, 31)])
    expected_attention = vis.render_attention_maps(maps)
    assert attention.shape == expected_attention.shape
    assert np.abs(attention.astype(int) - expected_attention.astype(int)).mean() < 0.5



def test_default_output_directory_and_query_points(model_dir):
    written = visualize_cli.visualize(model_dir, num_images=1, samples_per_class=1)
    assert sorted(os.listdir(os.path.join(model_dir, "visualize"))) == ["attention_maps.png", "samples.png"]
    assert written["query_points"] == vis.default_query_points(32).tolist()
    assert written["samples"] == os.path.join(model_dir, "visualize", "samples.png")


def test_raw_weights_and_samples_only(model_dir, tmp_path, capsys):
    values = absl_flags.FlagValues()
    visualize_cli.define_flags(values)
    values(["visualize", f"--model_dir={model_dir}", f"--output_dir={tmp_path}", "--noema", "--noattention",
            "--samples_per_class=2"])
    assert visualize_cli.main(["visualize"], values) == 0
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert written["ema"] is False and "attention_maps" not in written
    assert os.listdir(tmp_path) == ["samples.png"]
    raw = restore.restore_generator(model_dir, use_ema=False)
    z, labels, _, _, _ = images.grid_inputs(8, 4, samples_per_class=2, seed=0)
    generated = keras.ops.convert_to_numpy(raw.generator(z, labels, training=False))
    expected = images.labelled_grid(generated, labels, get_info("synthetic").class_names)
    np.testing.assert_allclose(read_png(tmp_path / "samples.png").astype(int), expected.astype(int), atol=1)


def test_missing_model_dir_is_a_one_paragraph_error_with_exit_status_2(tmp_path):
    result = run_cli("--model_dir=/no/such/run", f"--output_dir={tmp_path}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "/no/such/run is not a training run directory" in errors[0], result.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--query_points=0,40"], "inside the 32x32 image"),
    (["--query_points=a;b"], "'row,col' integer pixel pairs"),
    (["--checkpoint=9"], "No checkpoint"),
    (["--checkpoint=best"], "has no best checkpoint: it is chosen by the evaluations during training"),
])
def test_bad_flags_are_one_paragraph_errors(model_dir, tmp_path, capsys, args, message):
    # The command in this process, on its own flag set (the subprocess test above covers absl's app.run).
    values = absl_flags.FlagValues()
    visualize_cli.define_flags(values)
    values(["visualize", f"--model_dir={model_dir}", f"--output_dir={tmp_path}", *args])
    assert visualize_cli.main(["visualize"], values) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("Error:") and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not os.listdir(tmp_path)  # nothing written


def test_run_without_attention_gets_samples_then_a_clear_error(tmp_path):
    run = tiny_run(tmp_path / "run", g_attention_resolutions=(), d_attention_resolutions=())
    out = str(tmp_path / "out")
    with pytest.raises(UsageError, match="without self-attention layers.*--noattention"):
        visualize_cli.visualize(run, output_dir=out, samples_per_class=2)
    assert os.listdir(out) == ["samples.png"]
    written = visualize_cli.visualize(run, output_dir=out, samples_per_class=2, attention=False)
    assert "attention_maps" not in written and read_png(written["samples"]).shape[0] > 4 * 32


def test_interpolation_png_shows_latent_and_class_rows_with_the_class_names(model_dir, tmp_path):
    values = absl_flags.FlagValues()
    visualize_cli.define_flags(values)
    values(["visualize", f"--model_dir={model_dir}", f"--output_dir={tmp_path}", "--noattention", "--interpolate",
            "--interpolation_steps=5", "--interpolation=linear", "--seed=3"])
    assert visualize_cli.main(["visualize"], values) == 0
    assert sorted(os.listdir(tmp_path)) == ["interpolation.png", "samples.png"]
    restored = restore.restore_generator(model_dir)
    assert restored.class_names_source == "run"
    names = restored.class_names
    assert names == get_info("synthetic").class_names
    rows = interpolation.interpolation_rows(restored.generator, 4, 8, steps=5, seed=3, method="linear")
    expected = interpolation.render(rows, names)
    written = read_png(tmp_path / "interpolation.png")
    assert written.shape == expected.shape
    np.testing.assert_allclose(written.astype(int), expected.astype(int), atol=1)  # float round-off
    labels = [interpolation.row_label(row, names) for row in rows]
    assert labels[0] == f"{names[0]} (linear)" and labels[4] == f"{names[0]} -> {names[2]}"
