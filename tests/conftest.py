"""Test-session setup: TensorFlow backend, quiet logs, two logical CPU devices for tf.distribute tests."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# With pytest -n 2 on 2 cores, each worker's TensorFlow (and each command a test starts) would run as many threads as
# there are cores: one thread per pool each takes the test files in 91 s instead of 101 s (tests/models/test_gan.py).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) >= (os.cpu_count() or 1) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# The tests check what XLA computes, not how fast its code runs: without LLVM's optimization passes a tiny GAN step
# compiles in 11 s instead of 25 s on 2 cores (inherited by the commands tests start).
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Split the CPU into two logical devices before TensorFlow initialises its runtime, so that
# MirroredStrategy tests can run two replicas on this machine (BUILD.md fact 6). Single-device code
# keeps using the first one.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with float32 policy and a fresh Keras name scope.

    Without the full garbage collection `clear_session` runs by default: its time grows with everything a pytest
    worker has built, to 3-5 s per test late in a full run (about a third of the suite's time).
    """
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.clear_session(free_memory=False)
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Real statistics and domain classifiers go to a cache of this test session ($SAGAN_TF_CACHE, inherited by the
    commands tests start), never to ~/.cache/sagan_tf."""
    previous = os.environ.get("SAGAN_TF_CACHE")
    os.environ["SAGAN_TF_CACHE"] = str(tmp_path_factory.mktemp("sagan_tf_cache"))
    yield
    if previous is None:
        os.environ.pop("SAGAN_TF_CACHE", None)
    else:
        os.environ["SAGAN_TF_CACHE"] = previous


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPU devices, shared by every test.

    Each new strategy numbers its collective ops from the same start, and TensorFlow's collective executor keeps
    state across strategies in one process: a second strategy's synchronized batch norm then collided with the
    first one's collectives ("Shape mismatch in the collective instance"). One strategy keeps the keys unique.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def run_temp(tmp_path_factory):
    """A directory of this pytest run that every xdist worker shares (the parent of the workers' own base
    temporary directories), or the base temporary directory without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def jax_trained(run_temp):
    """(config, output directory, results dict) of one run of tests/jax_child.py (see its docstring): a tiny 16x16
    conditional SAGAN trained on Keras's JAX backend, on one and on two CPU devices, in a child process that cannot
    import TensorFlow. One child for the whole run: the export, data-parallel and benchmark tests share it, on
    whichever worker they run (the first to need it runs the child under a file lock; the others wait and read)."""
    import fcntl
    import json
    import subprocess

    from tests.tiny import PYTHON, ROOT, subprocess_environment, tiny_config

    directory, config = run_temp / "jax_trained", tiny_config()
    with open(run_temp / "jax_trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "results.json").exists():
            directory.mkdir(exist_ok=True)
            env = subprocess_environment(
                KERAS_BACKEND="jax",
                XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip())
            out = subprocess.run([PYTHON, str(ROOT / "tests" / "jax_child.py"), str(directory),
                                  json.dumps(config.to_dict())], env=env, capture_output=True, text=True, timeout=900)
            assert out.returncode == 0, out.stderr[-4000:]
    with open(directory / "results.json") as f:
        return config, directory, json.load(f)
