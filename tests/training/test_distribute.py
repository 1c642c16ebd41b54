"""training.distribute: making strategies, validating what they need, and what they change about training."""

import json
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.errors import UsageError
from sagan_tf.models import SAGAN, MultiWorkerSAGAN, build_sagan
from tests.tiny import PYTHON, ROOT, subprocess_environment, tiny_config
from training import distribute


def test_one_device_strategies():
    for name in ("off", "auto"):  # no GPU here: "auto" is the default strategy too
        strategy = distribute.get_distribution_strategy(name)
        assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
        assert distribute.is_chief(strategy) and not distribute.is_multi_worker(strategy)
        assert distribute.task_id(strategy) == 0 and distribute.model_class(strategy) is SAGAN
        assert distribute.describe(strategy) == "one device"
        assert distribute.num_workers(strategy) == 1 and distribute.task_name(strategy) == "worker 0"


def test_the_chief_is_known_from_tf_config_before_the_strategy_joins_the_cluster(monkeypatch):
    def config(task_type, index, chief=False):
        cluster = {"worker": ["h1:1", "h2:1"], **({"chief": ["h0:1"]} if chief else {})}
        return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})

    for tf_config, chief in ((config("worker", 0), True), (config("worker", 1), False),
                             (config("chief", 0, chief=True), True), (config("worker", 0, chief=True), False)):
        monkeypatch.setenv("TF_CONFIG", tf_config)
        assert distribute.will_be_chief("multi_worker") is chief, tf_config
        assert distribute.will_be_chief("off") and distribute.will_be_chief("auto")  # TF_CONFIG means nothing there
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(UsageError, match="--strategy=multi_worker needs the TF_CONFIG environment variable"):
        distribute.will_be_chief("multi_worker")


def test_the_start_line_names_the_devices_and_an_unused_gpu_is_one_warning():
    assert distribute.describe_devices() == "CPU"  # no GPU here
    assert distribute.describe_devices(["NVIDIA H100 80GB HBM3"]) == "1 GPU (NVIDIA H100 80GB HBM3)"
    assert distribute.describe_devices(["NVIDIA A100-SXM4-40GB"] * 2) == "2 GPUs (NVIDIA A100-SXM4-40GB)"

    def evidence(environ=None, paths=(), installed=()):
        return distribute.gpu_software_evidence(environ or {}, exists=lambda path: path in paths,
                                                installed=set(installed))

    assert evidence(paths=("/dev/nvidia0",)) == "the NVIDIA driver (/dev/nvidia0)"
    assert evidence(installed=("nvidia-cudnn-cu12",)) == "TensorFlow's CUDA libraries (nvidia-cudnn-cu12)"
    assert evidence() is None  # a CPU machine (a CUDA toolkit without a driver does not count)
    for hidden in ("-1", ""):  # GPUs hidden on purpose: no warning
        assert evidence({"CUDA_VISIBLE_DEVICES": hidden}, paths=("/proc/driver/nvidia/version",)) is None
    warnings = []
    warn = lambda message, *args: warnings.append(message % args)  # noqa: E731
    assert not distribute.warn_if_gpu_unused(1, "the NVIDIA driver (/dev/nvidia0)", warn)
    assert not distribute.warn_if_gpu_unused(0, None, warn)
    assert distribute.warn_if_gpu_unused(0, "the NVIDIA driver (/dev/nvidia0)", warn)
    assert len(warnings) == 1 and warnings[0].startswith(
        "TensorFlow sees no GPU although the NVIDIA driver (/dev/nvidia0) is installed: this run trains on the CPU")
    assert "CUDA_VISIBLE_DEVICES=-1" in warnings[0]


def test_mirrored_over_the_logical_cpus(mirrored_strategy):
    # conftest splits the CPU in two logical devices before TensorFlow starts.
    strategy = distribute.get_distribution_strategy("mirrored", cpu_devices=2)
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 2
    assert distribute.is_chief(strategy) and distribute.describe(strategy) == "MirroredStrategy"


def test_gather_rows_gives_every_replica_every_row(mirrored_strategy):
    """The all-gather that lets workers agree on a checkpoint (`train_lib.Trainer._agree_on_checkpoint`), here over
    two replicas of one process: each replica's row, by replica id, exact for steps beyond float32's 2**24."""
    rows = {0: (1, 0, 0, 2**40 + 3, 0), 1: (0, 0, 1, -1, 2)}
    assert distribute.gather_rows(mirrored_strategy, rows.__getitem__) == [rows[0], rows[1]]
    assert distribute.gather_rows(tf.distribute.get_strategy(), rows.__getitem__) == [rows[0]]


@pytest.mark.parametrize("arguments, message", [
    (dict(distribution_strategy="gpu"), "strategy must be one of auto, mirrored, multi_worker, tpu, off. "
                                        "Received: strategy='gpu'"),
    (dict(cpu_devices=0), "cpu_devices must be an integer >= 1. Received: cpu_devices=0"),
    (dict(cpu_devices=3), "cpu_devices=3 must be set before TensorFlow initialises its devices"),
])
def test_bad_arguments_name_themselves(arguments, message):
    with pytest.raises(UsageError, match=message):
        distribute.get_distribution_strategy(**arguments)


def test_multi_worker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="needs the TF_CONFIG environment variable"):
        distribute.get_distribution_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}}))
    with pytest.raises(UsageError, match="TF_CONFIG is not a valid cluster description"):
        distribute.get_distribution_strategy("multi_worker")


def test_multi_worker_model_logs_have_a_replica_axis():
    # Keras reduces fit's logs across workers along axis 0 (see MultiWorkerSAGAN).
    gan = build_sagan(tiny_config(), seed=0, model_class=MultiWorkerSAGAN)
    logs = gan.train_step((tf.zeros((4, 16, 16, 3)), tf.zeros((4,), tf.int32)))
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(logs)
    assert all(tuple(value.shape) == (1,) for value in logs.values())
    assert np.isfinite([float(value[0]) for value in logs.values()]).all()


@pytest.mark.parametrize("num_gpus, kind, xla", [(0, "default", False), (1, "default", True), (2, "mirrored", True)])
def test_auto_picks_the_strategy_and_xla_from_the_gpus(monkeypatch, num_gpus, kind, xla):
    """One GPU trains under the default strategy (a one-device MirroredStrategy only adds a layer and made Keras
    turn XLA off); XLA is on with GPUs, off on CPU, and passed to compile explicitly."""
    from sagan_tf.models import gan

    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(num_gpus)]
    logical = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(num_gpus)]
    real_physical, real_logical = tf.config.list_physical_devices, tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else real_physical(kind))
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: logical if kind == "GPU" else real_logical(kind))
    made = []
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda devices: made.append(devices) or "mirrored")
    assert distribute.strategy_kind("auto", num_gpus) == kind
    strategy = distribute.get_distribution_strategy("auto")
    if kind == "default":
        assert strategy is tf.distribute.get_strategy() and made == []
    else:
        assert made == [["/device:GPU:0", "/device:GPU:1"]]
    assert gan.default_jit_compile() is xla
    # Asked for by name, "mirrored" spans every GPU (one included), "off" is always the default strategy.
    assert distribute.strategy_kind("mirrored", num_gpus) == "mirrored"
    assert distribute.strategy_kind("off", num_gpus) == "default"


def test_a_cpu_run_runs_one_op_at_a_time():
    # A fresh process as `training.run` starts, without the test session's thread settings: making the strategy
    # leaves TensorFlow one inter-op thread, which is what makes oneDNN's convolution gradients repeat bit for bit.
    script = ("from training import distribute\n"
              "distribute.get_distribution_strategy('auto')\n"
              "import tensorflow as tf\n"
              "print(tf.config.threading.get_inter_op_parallelism_threads())\n")
    result = subprocess.run([PYTHON, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=subprocess_environment(TF_NUM_INTEROP_THREADS=None, TF_NUM_INTRAOP_THREADS=None))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


def _runtime_is_up(num_threads):
    raise RuntimeError("Inter op parallelism cannot be modified after initialization.")


def test_a_runtime_started_too_early_is_one_warning(monkeypatch, caplog):
    # This test process's runtime is up, so the setting cannot change any more: one warning says what it means.
    tf.constant(1.0)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 0)
    # As TensorFlow answers a change once its runtime is up (a test before this one may have set 1 in time, and then
    # setting 1 again is no change and raises nothing).
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads", _runtime_is_up)
    with caplog.at_level("WARNING"):
        distribute.one_op_at_a_time_on_cpu()
    assert "may not repeat bit for bit (set TF_NUM_INTEROP_THREADS=1" in caplog.text
    caplog.clear()
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "1")
    with caplog.at_level("WARNING"):
        distribute.one_op_at_a_time_on_cpu()
    assert caplog.text == ""
