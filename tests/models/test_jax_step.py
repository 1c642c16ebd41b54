"""The JAX train step (sagan_tf/models/jax_step.py) against the TensorFlow one, seeded reproducibility, clear errors.

This pytest process runs Keras on TensorFlow, so the JAX side runs once per module in a subprocess
(tests/models/jax_step_checks.py, with TensorFlow unimportable there) and the tests read what it wrote. The
TensorFlow side of the comparison runs here, through the same `benchmarks/backend_parity.py` functions the
benchmark uses: same initial state, batches and noise (fed with the batch) on both backends.
"""

import json
import os
import subprocess

import pytest

from benchmarks import backend_parity
from tests.tiny import PYTHON, ROOT, tiny_config

STEPS = 2
SEED = 0
#: The tiny conditional model with every small-data option on (ADA with p at 0.5, LeCam, orthogonal
#: regularization, fake labels with the data's class frequencies), d_steps 2.
CONFIG = tiny_config(d_steps=2, ema_start=1, **backend_parity.SMALL_DATA, fake_labels="data")


def run_checks(workdir, precision="float32"):
    # XLA's LLVM optimizations off: these tiny steps spend far longer compiling than running (half the time here).
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_backend_optimization_level=0"}
    subprocess.run([PYTHON, str(ROOT / "tests" / "models" / "jax_step_checks.py"), workdir, precision], env=env,
                   check=True, timeout=900)


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """(results.json of the JAX checks, the directory holding both backends' states)."""
    workdir = str(tmp_path_factory.mktemp("jax_step"))
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"config": CONFIG.to_dict(), "steps": STEPS, "seed": SEED}, f)
    backend_parity.train(CONFIG, "tensorflow", workdir, STEPS, SEED)
    run_checks(workdir)
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f), workdir


def test_jax_steps_match_the_tensorflow_steps(jax_run):
    """Each group's update (after the steps minus before) on JAX within 1e-2 of TensorFlow's, relative to its norm:
    measured 9e-6 (G) and below 2e-6 elsewhere; a JAX step that halves or skips G's update gives 0.5 or 1 in G, and
    its weights end within 2.4e-4 of TensorFlow's (a largest-difference check relative to the weights passes it)."""
    _, workdir = jax_run
    figures = backend_parity.compare(workdir)
    assert set(figures) == set(backend_parity.GROUPS)
    assert backend_parity.within_tolerance(figures), figures
    # Rounding flips few elements: under 1% of any group's elements differ by more than 1e-5 (a skipped or halved G
    # update: 87-93% of G's and EMA's).
    assert all(group["fraction_over_1e-5"] < 0.01 for group in figures.values()), figures


def test_seeded_jax_runs_are_identical(jax_run):
    reproducible = jax_run[0]["reproducible"]
    assert reproducible["identical"] and reproducible["finite"] and reproducible["seed_moved"]
    assert reproducible["variables"] > 100


@pytest.mark.slow
def test_seeded_jax_runs_are_identical_in_mixed_bfloat16(tmp_path):
    with open(tmp_path / "config.json", "w") as f:
        json.dump({"config": CONFIG.to_dict(), "parity": False}, f)
    run_checks(str(tmp_path), "mixed_bfloat16")
    with open(tmp_path / "results.json") as f:
        reproducible = json.load(f)["reproducible"]
    assert reproducible["identical"] and reproducible["finite"] and reproducible["precision"] == "mixed_bfloat16"


def test_a_failed_fit_or_train_on_batch_keeps_the_weights(jax_run):
    """Keras's JAX trainer detaches every variable's value before `fit`'s first step: a step that raises leaves the
    state it started from (or that of the last completed step), and the error unchanged."""
    failures = jax_run[0]["failures"]
    assert set(failures) == {"first_step", "callback_list", "interrupted", "second_step", "train_on_batch"}
    assert {name: failure["kept"] for name, failure in failures.items()} == dict.fromkeys(failures, True)
    for name in ("first_step", "callback_list", "second_step", "train_on_batch"):
        assert failures[name]["error"].startswith("ValueError: Each train_step consumes d_steps=2 real batches")
        assert "Received: batch=3" in failures[name]["error"]
    assert failures["interrupted"]["error"] == "KeyboardInterrupt: "


def test_the_jax_step_refuses_what_it_does_not_do(jax_run):
    errors = jax_run[0]["errors"]
    assert "not supported on the JAX backend" in errors["grad_accumulation"]
    assert "Received: grad_accumulation=2" in errors["grad_accumulation"]
    assert "multiple of d_steps" in errors["uneven_batch"] and "Received: batch=3" in errors["uneven_batch"]
    assert "mixed_float16" in errors["mixed_float16"]


def test_the_core_runs_without_tensorflow(jax_run):
    results, _ = jax_run
    assert not results["tensorflow_imported"]
    for module in ("sagan_tf.layers", "sagan_tf.models", "sagan_tf.models.jax_step", "sagan_tf.models.losses",
                   "sagan_tf.models.augment", "sagan_tf.models.regularizers", "sagan_tf.sampling.latents"):
        assert module in results["imports"]
    assert "sagan_tf.models.tensorflow_step" not in results["imports"]
    assert "install TensorFlow" in results["latents_error"]


def test_the_parity_benchmark_refuses_an_unknown_preset(capsys):
    assert backend_parity.main(["--preset=nope", "--steps=1"]) == 2
    assert "Unknown preset 'nope'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("small_data", [False, True], ids=["plain", "small_data"])
@pytest.mark.parametrize("preset", ["synthetic32", "dcgan64"])
def test_the_parity_benchmark_holds_for_presets(preset, small_data):
    command = [PYTHON, str(ROOT / "benchmarks" / "backend_parity.py"), f"--preset={preset}", "--steps=2",
               "--batch_size=4"] + (["--small_data"] if small_data else [])
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["within_tolerance"] and result["preset"] == preset and result["small_data"] == small_data
