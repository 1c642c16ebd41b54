"""`python -m export.run` and `serving.export_run`: from a training run to `export_dir/<version>/`, safely."""

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

from sagan_tf.run import restore, run_lock
from sagan_tf.serving import signatures as serving
from sagan_tf.data import get_info
from sagan_tf.errors import CheckpointError, UsageError, WriteFailedError
from sagan_tf.run.checkpoint_store import CheckpointStore
from sagan_tf.run.run_dir import RunDirectory
from tests.tiny import PYTHON, ROOT, main_in_process, subprocess_environment, tiny_config
from training import train_lib


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A 2-step training run of a tiny conditional config with checkpoints at steps 1 and 2."""
    directory = tmp_path_factory.mktemp("run")
    options = train_lib.TrainOptions(model_dir=str(directory), sample_every=0, checkpoint_every=1,
                                     handle_signals=False)
    train_lib.run(tiny_config(32, train_steps=2), options)
    return str(directory)


def _serve(path, config, seed=0):
    z = np.random.default_rng(seed).standard_normal((4, config.model.latent_dim)).astype(np.float32)
    labels = np.arange(4, dtype=np.int32)
    images = tf.saved_model.load(path).signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))
    return z, labels, images["images"].numpy()


def _export_run(cwd, *args):
    return subprocess.run([PYTHON, "-m", "export.run", *args], cwd=cwd, env=subprocess_environment(),
                          capture_output=True, text=True, timeout=180)


def test_exports_the_ema_generator_of_the_latest_checkpoint(model_dir, tmp_path):
    result = serving.export_run(model_dir, str(tmp_path / "exports"))
    assert (result["version"], result["step"], result["ema"]) == (2, 2, True)
    assert result["path"] == str(tmp_path / "exports" / "2")
    assert sorted(os.listdir(tmp_path / "exports")) == ["2"]  # no temporary directory left behind
    restored = restore.restore_generator(model_dir)
    z, labels, served = _serve(result["path"], restored.config)
    expected = keras.ops.convert_to_numpy(restored.generator(z, labels, training=False))
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)
    raw = restore.restore_generator(model_dir, use_ema=False)
    raw_images = keras.ops.convert_to_numpy(raw.generator(z, labels, training=False))
    assert np.abs(served - raw_images).max() > 1e-4  # the EMA weights, not the raw ones
    with open(os.path.join(result["path"], "assets", serving.EXPORT_INFO_ASSET)) as f:
        info = json.load(f)
    assert (info["step"], info["ema"], info["checkpoint"]) == (2, True, restored.checkpoint)


def test_raw_weights_older_checkpoint_and_explicit_version(model_dir, tmp_path):
    result = serving.export_run(model_dir, str(tmp_path), checkpoint="1", version=7, use_ema=False)
    assert (result["version"], result["step"], result["ema"]) == (7, 1, False)
    restored = restore.restore_generator(model_dir, checkpoint=1, use_ema=False)
    z, labels, served = _serve(result["path"], restored.config)
    np.testing.assert_allclose(served, keras.ops.convert_to_numpy(restored.generator(z, labels, training=False)),
                               atol=1e-5, rtol=0)


def test_never_overwrites_a_version(model_dir, tmp_path):
    first = serving.export_run(model_dir, str(tmp_path), version=3)
    before = {name: os.path.getmtime(os.path.join(first["path"], name)) for name in os.listdir(first["path"])}
    with pytest.raises(UsageError, match="exists already"):
        serving.export_run(model_dir, str(tmp_path), version=3)
    assert {name: os.path.getmtime(os.path.join(first["path"], name)) for name in os.listdir(first["path"])} == before
    assert sorted(os.listdir(tmp_path)) == ["3"]


def test_a_failed_export_leaves_nothing_behind(model_dir, tmp_path, monkeypatch):
    written = []

    def failing_save(module, directory, signatures=None):
        os.makedirs(os.path.join(directory, "variables"))
        with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        written.append(directory)
        raise RuntimeError("disk full")

    monkeypatch.setattr(serving.tf.saved_model, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        serving.export_run(model_dir, str(tmp_path / "exports"))
    assert written and os.path.dirname(written[0]) == str(tmp_path / "exports")
    assert os.listdir(tmp_path / "exports") == []


def test_bad_version_and_missing_run(model_dir, tmp_path):
    with pytest.raises(UsageError, match="Received: version=-1"):
        serving.export_run(model_dir, str(tmp_path), version=-1)
    with pytest.raises(CheckpointError, match="nothing is not a training run directory: it does not exist"):
        serving.export_run(str(tmp_path / "nothing"), str(tmp_path / "exports"))
    assert not os.path.exists(tmp_path / "exports")


def test_command_line(model_dir, tmp_path, capsys):
    from export import run as export_cli

    export_dir = str(tmp_path / "exports")
    result = _export_run(ROOT, f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--checkpoint=1")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["version"], report["step"], report["ema"]) == (1, 1, True)
    assert sorted(os.listdir(export_dir)) == ["1"]
    assert tf.saved_model.contains_saved_model(os.path.join(export_dir, "1"))

    # The refusals in this process (the command's own exit status 2 and one-paragraph error, without a traceback:
    # test_best_and_damaged_checkpoints_on_the_command_line).
    status, out, err = main_in_process(export_cli, capsys, f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                                       "--checkpoint=1")
    assert (status, out) == (2, "") and "exists already" in err

    status, out, err = main_in_process(export_cli, capsys, f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                                       "--checkpoint=9")
    assert (status, out) == (2, "")
    error = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "No checkpoint" in error[0] and "ckpt-2" in error[0]
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_best_and_damaged_checkpoints_on_the_command_line(model_dir, tmp_path, capsys):
    from export import run as export_cli

    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    directory = CheckpointStore(run)
    # A best checkpoint chosen during training (as callbacks.BestCheckpoint keeps it), here the step-1 state.
    os.makedirs(directory.best_dir)
    for path in glob.glob(directory.path(1) + ".*"):
        shutil.copy(path, directory.best_dir)
    directory.write_best_record({"step": 1, "checkpoint": directory.best_path(1), "metric": "fid",
                                 "mode": "min", "value": 10.0, "figures": {"fid": 10.0}})
    status, out, err = main_in_process(export_cli, capsys, f"--model_dir={run}", f"--export_dir={tmp_path / 'best'}",
                                       "--checkpoint=best")
    assert status == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["step"], report["checkpoint"]) == (1, directory.best_path(1))

    with open(directory.path(2) + ".data-00000-of-00001", "w"):
        pass  # the latest checkpoint lost its data (e.g. a full disk)
    damaged = _export_run(ROOT, f"--model_dir={run}", f"--export_dir={tmp_path / 'latest'}")
    assert damaged.returncode == 2 and "Traceback" not in damaged.stderr
    error = [line for line in damaged.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and re.search(r"ckpt-2 is damaged: .*Read less bytes.*other steps in .*: 1\)", error[0])
    assert not os.path.exists(tmp_path / "latest")


def test_exporting_imports_no_training_code(model_dir, tmp_path):
    # An export needs the run directory, the checkpoint and the generator: not the training callbacks, the training
    # library or the metrics.
    code = ("import sys\n"
            "from export import run\n"
            "run.define_flags()\n"
            f"run.flags.FLAGS(['export', '--model_dir={model_dir}', '--export_dir={tmp_path}'])\n"
            "status = run.main(['export'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('sagan_tf.', 'training'))))\n"
            "sys.exit(status)\n")
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=subprocess_environment(), capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = set(eval(result.stdout.strip().splitlines()[-1]))
    assert {"sagan_tf.serving", "sagan_tf.run.restore", "sagan_tf.run.checkpoint", "sagan_tf.run.run_dir"} <= modules
    assert not {"sagan_tf.callbacks", "sagan_tf.evaluation", "sagan_tf.evaluation.metrics",
                "sagan_tf.sampling.summaries"} & modules
    assert not any(name.startswith("training") for name in modules)
    assert os.listdir(tmp_path) == ["2"]


def test_the_run_class_names_travel_to_the_export_and_older_runs_still_export(model_dir, tmp_path):
    names = [name.decode() for name in tf.saved_model.load(serving.export_run(
        model_dir, str(tmp_path / "named"))["path"]).signatures["class_names"]()["class_names"].numpy()]
    assert names == list(get_info("synthetic").class_names)
    assert json.load(open(os.path.join(model_dir, "class_names.json")))["class_names"] == names

    # A run written before class names were recorded: its config and checkpoints, no class_names.json.
    old = tmp_path / "old_run"
    old.mkdir()
    (old / "checkpoints").symlink_to(os.path.join(model_dir, "checkpoints"))
    (old / "config.json").write_text(open(os.path.join(model_dir, "config.json")).read())
    result = serving.export_run(str(old), str(tmp_path / "old"))
    assert result["class_names_source"] == "dataset" and "recorded no class names" in result["note"]
    # ... whose dataset is not available here (a folder moved away): the classes are named by their ids.
    config = RunDirectory(old).read_config()
    (old / "config.json").write_text(config.replace(dataset=f"folder:{tmp_path / 'moved'}").to_json())
    result = serving.export_run(str(old), str(tmp_path / "numbers"))
    assert result["class_names_source"] == "numbers" and "by their ids" in result["note"]
    loaded = tf.saved_model.load(result["path"])
    assert [n.decode() for n in loaded.signatures["class_names"]()["class_names"].numpy()] == ["0", "1", "2", "3"]
    with open(os.path.join(result["path"], "assets", serving.EXPORT_INFO_ASSET)) as f:
        info = json.load(f)
    assert info["class_names_source"] == "numbers" and info["note"] == result["note"]


def test_a_run_that_is_training_exports_without_its_lock(model_dir, tmp_path, capsys):
    from export import run as export_cli

    holder = run_lock.RunLock(os.path.join(model_dir, "training.lock")).acquire()  # a live training run holds it
    try:
        lock = (pathlib.Path(model_dir) / "training.lock").read_text()
        values = absl_flags.FlagValues()
        export_cli.define_flags(values)
        values(["export", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'exports'}"])
        assert export_cli.main(["export"], values) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
        assert sorted(os.listdir(tmp_path / "exports")) == ["2"]
        assert (pathlib.Path(model_dir) / "training.lock").read_text() == lock  # neither taken nor touched
    finally:
        holder.release()


def test_an_export_the_filesystem_refuses_names_it_and_leaves_nothing(model_dir, tmp_path, monkeypatch):
    def full_disk(module, directory, signatures=None):
        os.makedirs(os.path.join(directory, "variables"))
        with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise tf.errors.ResourceExhaustedError(None, None, f"{directory}/variables/variables.data-00000-of-00001"
                                               ".tempstate1; No space left on device")

    monkeypatch.setattr(serving.tf.saved_model, "save", full_disk)
    exports = tmp_path / "exports"
    with pytest.raises(WriteFailedError, match=re.escape(
            f"Could not write the export {exports}/2: no space left on device. The last good checkpoint is "
            f"{model_dir}/checkpoints/ckpt-2, intact. Free space on that filesystem (or use a directory on another "
            "one), then rerun the same command.")):
        serving.export_run(model_dir, str(exports))
    assert os.listdir(exports) == []


def test_the_cap_comes_from_the_memory_budget_and_an_explicit_cap_wins_with_a_warning(model_dir, tmp_path, capsys):
    from export import run as export_cli
    from sagan_tf.serving import memory as serving_memory

    def export(*args):
        values = absl_flags.FlagValues()
        export_cli.define_flags(values)
        values(["export", f"--model_dir={model_dir}", *args])
        assert values["memory_budget_mib"].default == serving_memory.DEFAULT_MEMORY_BUDGET_MIB  # the library's
        assert export_cli.main(["export"], values) == 0
        captured = capsys.readouterr()
        return json.loads(captured.out.strip().splitlines()[-1]), captured.err

    config = RunDirectory(model_dir).read_config().model
    report, err = export(f"--export_dir={tmp_path / 'budget'}", "--memory_budget_mib=64")
    expected = serving_memory.choose_max_batch_size(config, memory_budget_mib=64)
    assert {key: report[key] for key in expected} == expected and "warning" not in report and "Warning" not in err
    assert report["expected_peak_mib"] <= 64 < report["expected_peak_mib"] + report["mib_per_image"]
    loaded = tf.saved_model.load(report["path"])
    assert loaded.signatures["limits"]()["max_batch_size"].numpy() == report["max_batch_size"]
    with open(os.path.join(report["path"], "assets", serving.EXPORT_INFO_ASSET)) as f:
        info = json.load(f)
    assert info["max_batch_size"] == report["max_batch_size"] and info["memory"]["memory_budget_mib"] == 64
    # The JSON line, the assets and the limits signature give the longest class name's length in bytes too.
    longest = max(len(name.encode()) for name in info["class_names"])
    assert report["max_class_name_length"] == info["max_class_name_length"] == longest
    assert loaded.signatures["limits"]()["max_class_name_length"].numpy() == longest

    report, err = export(f"--export_dir={tmp_path / 'explicit'}", "--max_batch_size=100000")
    assert report["max_batch_size"] == 100000 and report["warning"].startswith("One request at max_batch_size=100000")
    warnings = [line for line in err.splitlines() if line.startswith("Warning: ")]
    assert warnings == [f"Warning: {report['warning']}"]
    assert tf.saved_model.load(report["path"]).signatures["limits"]()["max_batch_size"].numpy() == 100000
