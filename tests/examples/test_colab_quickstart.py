"""Runs examples/colab_quickstart.ipynb top to bottom with tiny settings, so that a broken notebook fails CI.

The notebook trains a few steps on the synthetic dataset (no network) under MirroredStrategy with two logical CPU
replicas (the path a Colab GPU runtime takes), evaluates, draws attention maps and exports.
The test then checks what it left behind against independent computations: the checkpoint it wrote restores to a
generator whose images equal the exported SavedModel's, and each attention map row sums to one.
"""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import presets, restore

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "colab_quickstart.ipynb"
TINY_STEPS = 8


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("quickstart")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    environment = {"SAGAN_TF_QUICKSTART_TINY": "1", "SAGAN_TF_QUICKSTART_DIR": str(work_dir),
                   "SAGAN_TF_QUICKSTART_DATASET": "synthetic", "SAGAN_TF_CACHE": str(work_dir / "cache"),
                   # MirroredStrategy over two logical CPUs: the path a Colab GPU runtime takes.
                   "SAGAN_TF_QUICKSTART_CPU_REPLICAS": "2",
                   "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1",
                   # The kernel starts in examples/: this checkout's sagan_tf, not whichever one is installed.
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
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
    return notebook, work_dir, summary


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


def test_checkpointed_generator_equals_the_export(executed):
    _, work_dir, summary = executed
    model_dir = str(work_dir / "run")
    restored = restore.restore_generator(model_dir)  # config.json + checkpoints/: a run the CLI tools accept
    assert restored.step == TINY_STEPS and restored.ema
    loaded = tf.saved_model.load(summary["export"])
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, restored.config.model.latent_dim)).astype("float32")
    labels = rng.integers(0, restored.config.model.num_classes, 5).astype("int32")
    served = loaded.signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
    expected = np.asarray(restored.generator(z, labels, training=False))
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert summary["served_vs_in_memory_max_abs_difference"] < 1e-4


def test_pictures_were_written(executed):
    _, work_dir, summary = executed
    for key in ("samples", "attention_maps", "interpolation"):
        png = pathlib.Path(summary[key]).read_bytes()
        assert png.startswith(b"\x89PNG")
        decoded = tf.io.decode_png(png).numpy()
        assert decoded.ndim == 3 and decoded.shape[2] == 3 and decoded.std() > 0
    assert (work_dir / "served_0.png").read_bytes().startswith(b"\x89PNG")
