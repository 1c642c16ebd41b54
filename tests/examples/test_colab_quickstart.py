"""Runs examples/colab_quickstart.ipynb top to bottom with tiny settings on both Keras backends, so that a broken
notebook fails CI.

The notebook trains a few steps on the synthetic dataset (no network) over two CPU devices (the path a Colab
runtime with several GPUs or TPU cores takes): on TensorFlow under MirroredStrategy with two logical CPU replicas, on
JAX under keras.distribution.DataParallel with two XLA host devices. It evaluates, draws attention maps and exports.
The test then checks what it left behind against independent computations: the export serves the images of the
generator it was made from (on TensorFlow the checkpoint restored by `sagan_tf.run.restore`, on JAX the Keras file
loaded here on TensorFlow's backend), and the pictures are real PNG files.
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import callbacks
from sagan_tf.config import presets
from sagan_tf.run import restore, run_dir
from sagan_tf.models import build_sagan

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "colab_quickstart.ipynb"
TINY_STEPS = 8


def kernel_environment(backend, work_dir):
    """The environment variables the notebook's kernel runs with on `backend`: tiny settings, two CPU devices."""
    environment = {"SAGAN_TF_QUICKSTART_TINY": "1", "SAGAN_TF_QUICKSTART_DIR": str(work_dir),
                   "SAGAN_TF_QUICKSTART_DATASET": "synthetic", "SAGAN_TF_CACHE": str(work_dir / "cache"),
                   "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1",
                   # The kernel starts in examples/: this checkout's sagan_tf, not whichever one is installed.
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if backend == "tensorflow":
        # MirroredStrategy over two logical CPUs: the path a Colab GPU runtime takes.
        environment["SAGAN_TF_QUICKSTART_CPU_REPLICAS"] = "2"
    else:
        # DataParallel over two XLA host devices: the path of a runtime with several accelerators.
        environment["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    return environment


def execute(backend, work_dir):
    """(executed notebook, quickstart_summary.json) of a run of the notebook on `backend` in `work_dir`."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    environment = kernel_environment(backend, work_dir)
    previous = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOK.parent)}})
        client.execute()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    summary = json.loads((work_dir / "quickstart_summary.json").read_text())
    assert summary["backend"] == backend
    return notebook, summary


@pytest.fixture(scope="module", params=["tensorflow", "jax"])
def executed(request, tmp_path_factory):
    """(executed notebook, work directory, quickstart_summary.json) of one run of the notebook on a backend."""
    work_dir = tmp_path_factory.mktemp(f"quickstart_{request.param}")
    notebook, summary = execute(request.param, work_dir)
    return notebook, work_dir, summary


def served_and_expected(export_path, generator, model_config):
    """The export's serving_default images and `generator`'s for the same fixed latents and labels."""
    loaded = tf.saved_model.load(export_path)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, model_config.latent_dim)).astype("float32")
    labels = rng.integers(0, model_config.num_classes, 5).astype("int32")
    served = loaded.signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
    return served, np.asarray(generator(z, labels, training=False))


def test_notebook_runs_every_cell_without_errors(executed):
    notebook, _, summary = executed
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.execution_count is not None for cell in code_cells)
    errors = [output for cell in code_cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors
    images_shown = sum("image/png" in output.get("data", {}) for cell in code_cells for output in cell.outputs)
    # The sample grid, the labelled samples, the attention maps, the interpolations, a served image.
    assert images_shown >= 5
    assert summary["dataset"] == "synthetic" and summary["step"] == TINY_STEPS and summary["replicas"] == 2
    # The model comes from the library's builder, not from a copy of it that could drift (one omitted ema_start).
    sources = "\n".join(cell.source for cell in code_cells)
    assert "build_sagan(cfg" in sources and "SAGAN(" not in sources
    training = presets.get_preset("synthetic32").training
    assert (summary["ema_decay"], summary["ema_start"]) == (training.ema_decay, training.ema_start)


def test_evaluations_ran_at_start_periodically_and_at_the_end(executed):
    _, _, summary = executed
    evaluations = summary["evaluations"]
    assert sorted(int(step) for step in evaluations) == [0, 4, 8]
    for figures in evaluations.values():
        assert np.isfinite(figures["fid"]) and figures["fid"] >= 0
        assert 1.0 <= figures["inception_score"] <= 4.0  # between 1 and the synthetic classifier's 4 classes
        assert figures["num_samples"] == 64


@pytest.mark.parametrize("executed", ["tensorflow"], indirect=True)
def test_checkpointed_generator_equals_the_export(executed):
    _, work_dir, summary = executed
    restored = restore.restore_generator(str(work_dir / "run"))  # config.json + checkpoints/: a run the CLI accepts
    assert restored.step == TINY_STEPS and restored.ema
    served, expected = served_and_expected(summary["export"], restored.generator, restored.config.model)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert summary["served_vs_in_memory_max_abs_difference"] < 1e-4


@pytest.mark.parametrize("executed", ["jax"], indirect=True)
def test_jax_generator_file_equals_the_export(executed):
    _, work_dir, summary = executed
    # The EMA generator trained on JAX, saved in Keras's format, loaded here on the TensorFlow backend.
    generator, model_config = restore.restore_generator_file(summary["keras_file"])
    assert summary["export"] == str(work_dir / "export" / str(TINY_STEPS))
    served, expected = served_and_expected(summary["export"], generator, model_config)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    # Served on TensorFlow against the notebook's images of the JAX generator in memory.
    assert summary["served_vs_in_memory_max_abs_difference"] < 1e-4


@pytest.mark.parametrize("executed", ["jax"], indirect=True)
def test_jax_weights_file_holds_the_step_and_the_exported_generator(executed):
    _, work_dir, summary = executed
    # What a rerun of the notebook loads to resume: the SAGAN of the run's config.json with the file's weights.
    gan = build_sagan(run_dir.RunDirectory(str(work_dir / "run")).read_config(), seed=1)
    gan.load_weights(summary["checkpoint"])
    assert summary["checkpoint"] == str(work_dir / "run" / "sagan.weights.h5")
    assert callbacks.global_step(gan) == TINY_STEPS
    exported, model_config = restore.restore_generator_file(summary["keras_file"])
    rng = np.random.default_rng(4)
    z = rng.standard_normal((4, model_config.latent_dim)).astype("float32")
    labels = np.arange(4, dtype="int32") % model_config.num_classes
    np.testing.assert_allclose(np.asarray(gan.ema_generator(z, labels, training=False)),
                               np.asarray(exported(z, labels, training=False)), atol=1e-6)


def test_pictures_were_written(executed):
    _, work_dir, summary = executed
    for key in ("samples", "attention_maps", "interpolation"):
        png = pathlib.Path(summary[key]).read_bytes()
        assert png.startswith(b"\x89PNG")
        decoded = tf.io.decode_png(png).numpy()
        assert decoded.ndim == 3 and decoded.shape[2] == 3 and decoded.std() > 0
    assert (work_dir / "served_0.png").read_bytes().startswith(b"\x89PNG")


def printed(notebook):
    """The text the notebook's code cells printed."""
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []) if output.output_type == "stream")


# Slow: a second execution of the notebook (~45 s, more on JAX); the first one runs the same cells, but for the
# branches a rerun takes.
@pytest.mark.slow
def test_a_rerun_resumes_from_the_checkpoint_and_keeps_the_exported_version(executed, tmp_path):
    """Rerunning the notebook in its work directory (a copy of the executed one) loads its checkpoint, trains no
    further (the run is at TRAIN_STEPS) and leaves the exported version as it was ("export unless the version
    exists"); the served images still equal the resumed generator's (the notebook asserts it)."""
    _, work_dir, summary = executed
    backend = summary["backend"]
    copy = tmp_path / "work"
    shutil.copytree(work_dir, copy)  # copy2: modification times kept
    exported = sorted(path for path in (copy / "export" / str(TINY_STEPS)).rglob("*") if path.is_file())
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in exported}
    notebook, rerun = execute(backend, copy)
    text = printed(notebook)
    resumed_from = (f"Resumed from {copy / 'run' / 'checkpoints' / f'ckpt-{TINY_STEPS}'}" if backend == "tensorflow"
                    else f"Resumed from {copy / 'run' / 'sagan.weights.h5'} (step {TINY_STEPS})")
    assert resumed_from in text, text
    assert rerun["step"] == TINY_STEPS and rerun["evaluations"] == {}  # fit did not run
    assert rerun["export"] == str(copy / "export" / str(TINY_STEPS))
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in exported} == before
    assert sorted(path.name for path in (copy / "export").iterdir()) == [str(TINY_STEPS)]
    assert rerun["served_vs_in_memory_max_abs_difference"] < 1e-4
