"""The `tf.distribute` strategy of a training run, and what a strategy changes about training.

    chief = distribute.will_be_chief("mirrored")     # from TF_CONFIG, before the strategy joins a cluster
    strategy = distribute.get_distribution_strategy("mirrored")

Modelled on Model Garden's `official/common/distribute_utils.py`: one function makes every strategy, validates its
arguments with errors that name them, and keeps cluster resolution inside. Create the strategy before any other
TensorFlow work: splitting the CPU and configuring collectives must happen before the runtime starts.
"""

import json
import os

import keras
import tensorflow as tf
from absl import logging

from sagan_tf.errors import UsageError
from sagan_tf.models import SAGAN, MultiWorkerSAGAN

#: "auto": all GPUs with two or more, else one device (the default strategy: with one GPU, that GPU); "mirrored":
#: all GPUs (or all logical CPUs); "multi_worker": from TF_CONFIG; "tpu": a TPU (see `tpu_address`); "off": the
#: default strategy (one device).
STRATEGIES = ("auto", "mirrored", "multi_worker", "tpu", "off")


def strategy_kind(distribution_strategy, num_gpus):
    """Which strategy `get_distribution_strategy` makes: "default", "mirrored", "multi_worker" or "tpu".

    "auto" is the default strategy on a CPU or a single GPU (a one-device MirroredStrategy would only add a
    cross-device layer and, with Keras, turn XLA off) and MirroredStrategy over two or more GPUs.

    Args:
      distribution_strategy: one of `STRATEGIES`.
      num_gpus: the number of GPUs this process sees.
    """
    if distribution_strategy == "auto":
        return "mirrored" if num_gpus >= 2 else "default"
    return {"off": "default"}.get(distribution_strategy, distribution_strategy)


def get_distribution_strategy(distribution_strategy="auto", tpu_address="", cpu_devices=1):
    """The `tf.distribute.Strategy` named by `distribution_strategy`.

    Args:
      distribution_strategy: one of `STRATEGIES`.
      tpu_address: TPU name or grpc:// address for "tpu" ("" = the local TPU VM).
      cpu_devices: split the CPU into this many logical devices first (to try "mirrored" on a CPU machine); 1 leaves
        the devices alone.

    Returns:
      The strategy.

    Raises:
      UsageError: an unknown strategy, a missing or invalid TF_CONFIG for "multi_worker", no reachable TPU, or a CPU
        split asked for after TensorFlow started.
    """
    if distribution_strategy not in STRATEGIES:
        raise UsageError(f"strategy must be one of {', '.join(STRATEGIES)}. "
                         f"Received: strategy={distribution_strategy!r}")
    if isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or cpu_devices < 1:
        raise UsageError(f"cpu_devices must be an integer >= 1. Received: cpu_devices={cpu_devices!r}")
    if cpu_devices > 1:
        _split_cpu(cpu_devices)
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    if not num_gpus and distribution_strategy != "tpu":
        one_op_at_a_time_on_cpu()
    if distribution_strategy == "multi_worker":
        # Before anything initialises the runtime: the strategy configures collective ops at startup.
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    kind = strategy_kind(distribution_strategy, num_gpus)
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU" if num_gpus else "CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        raise UsageError(
            f"Could not connect to a TPU ({type(error).__name__}: {error}). Run on a TPU VM, or pass the TPU's name "
            "or grpc:// address with --tpu, or choose another --strategy (auto, mirrored, off).") from None
    return tf.distribute.TPUStrategy(resolver)


def one_op_at_a_time_on_cpu():
    """Runs TensorFlow's ops one at a time (one inter-op thread; each op still uses every core), so that a CPU run
    computes the same numbers every time.

    With two inter-op threads (TensorFlow's default on 2 cores), the discriminator's convolution filter gradients
    came out different in their last bits in one process in two to four, and only they: the difference is a choice
    that oneDNN (TensorFlow's default CPU kernels) makes once per process, depending on which thread runs what; with
    `TF_ENABLE_ONEDNN_OPTS=0` or one inter-op thread it went away. Measured on `cifar32` at batch 8 (2-core Xeon with
    AMX, TF 2.21): up to 5e-6 after one step, 0.15 after twelve, so runs with the same seed diverged and a resumed run
    differed from the straight one. GPUs are left alone. The input pipeline is not slowed: tf.data runs its map
    functions (the folder pipeline's decode and resize) on a thread pool of its own, one thread per core, whatever
    the inter-op setting (`benchmarks/data_throughput.py --folder`: as many map calls at once and the same images/s
    with one inter-op thread as with TensorFlow's default).

    Must run before TensorFlow initialises its runtime; if it already has, the setting cannot change and a warning
    says so (unless TF_NUM_INTEROP_THREADS=1 was set).
    """
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        if (tf.config.threading.get_inter_op_parallelism_threads() != 1
                and os.environ.get("TF_NUM_INTEROP_THREADS") != "1"):
            logging.warning("TensorFlow started before the strategy was made, so its ops may run two at a time: "
                            "this CPU run may not repeat bit for bit (set TF_NUM_INTEROP_THREADS=1 to make sure).")


def _split_cpu(count):
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        # The runtime is already initialised (e.g. by a test harness); fine if the devices are there.
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise UsageError(
                f"cpu_devices={count} must be set before TensorFlow initialises its devices, and this process "
                f"already has {len(tf.config.list_logical_devices('CPU'))} logical CPU devices. Start a fresh "
                "process, or leave cpu_devices at 1.") from None


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not raw:
        raise UsageError("--strategy=multi_worker needs the TF_CONFIG environment variable describing the cluster "
                         f"and this process's task, e.g. {example} (index 1 on the second host).")
    try:
        spec = json.loads(raw)
        spec["cluster"], spec["task"]["type"], spec["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"TF_CONFIG is not a valid cluster description: {raw!r}. Expected e.g. {example}.") from None


def is_chief(strategy):
    """Whether this process is the chief (the one writing summaries, samples and the real checkpoints)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None or task_type == "chief":
        return True
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def will_be_chief(distribution_strategy):
    """Whether this process will be the chief of the strategy `get_distribution_strategy(distribution_strategy)`
    makes (as `is_chief` says of it), told from TF_CONFIG before that strategy exists, i.e. before a multi-worker
    process joins its cluster.

    Raises:
      UsageError: "multi_worker" without a valid TF_CONFIG.
    """
    if distribution_strategy != "multi_worker":
        return True
    _check_tf_config()
    spec = json.loads(os.environ["TF_CONFIG"])
    task_type, index = spec["task"]["type"], spec["task"]["index"]
    return task_type == "chief" or (task_type == "worker" and int(index) == 0 and "chief" not in spec["cluster"])


def is_multi_worker(strategy):
    """Whether `strategy` spans several worker processes."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def describe(strategy):
    """How the progress log names `strategy`: "one device" (the default strategy), "MultiWorkerMirroredStrategy",
    "MirroredStrategy" or "TPUStrategy"."""
    if is_multi_worker(strategy):
        return "MultiWorkerMirroredStrategy"
    for kind in (tf.distribute.MirroredStrategy, tf.distribute.TPUStrategy):
        if isinstance(strategy, kind):
            return kind.__name__
    return "one device" if strategy is tf.distribute.get_strategy() else type(strategy).__name__


def describe_devices(gpus=None):
    """The compute devices of this process as the start line names them: "CPU", or "1 GPU (NVIDIA H100 80GB HBM3)",
    "2 GPUs (NVIDIA A100-SXM4-40GB)".

    Args:
      gpus: the GPU device names to describe (each as `tf.config.experimental.get_device_details` names it); None:
        this process's visible GPUs.
    """
    if gpus is None:
        gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", "unknown model")
                for gpu in tf.config.list_physical_devices("GPU")]
    if not gpus:
        return "CPU"
    models = ", ".join(sorted(set(gpus)))
    return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({models})"


def gpu_software_evidence(environ=None, exists=os.path.exists, installed=None):
    """What says that this machine is meant to train on an NVIDIA GPU: a loaded NVIDIA kernel driver
    (/proc/driver/nvidia, /dev/nvidia0) or TensorFlow's CUDA libraries from pip (`tensorflow[and-cuda]`'s
    nvidia-cudnn-cu12 and nvidia-cuda-runtime-cu12). Returns a short description of the first found, or None. A CUDA
    toolkit alone (e.g. /usr/local/cuda with no driver) does not count: with no driver there is no GPU to use.

    Args:
      environ: the environment (default `os.environ`); `CUDA_VISIBLE_DEVICES=-1` (or empty) hides GPUs on purpose,
        and then nothing counts.
      exists: `os.path.exists`, injectable for tests.
      installed: the installed distribution names (default: `importlib.metadata`'s).
    """
    environ = os.environ if environ is None else environ
    if environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return None
    for path in ("/proc/driver/nvidia/version", "/dev/nvidia0"):
        if exists(path):
            return f"the NVIDIA driver ({path})"
    if installed is None:
        import importlib.metadata
        installed = {(dist.metadata["Name"] or "").lower() for dist in importlib.metadata.distributions()}
    for name in ("nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12"):
        if name in installed:
            return f"TensorFlow's CUDA libraries ({name})"
    return None


def warn_if_gpu_unused(num_gpus, evidence, warn):
    """Says, in one warning through `warn`, that training runs on the CPU although `evidence` (see
    `gpu_software_evidence`) says a GPU was expected; nothing when a GPU is visible or nothing was expected.
    Returns whether it warned."""
    if num_gpus or evidence is None:
        return False
    warn("TensorFlow sees no GPU although %s is installed: this run trains on the CPU, many times slower. Check that "
         "`nvidia-smi` lists the GPU, that the CUDA and cuDNN libraries match this TensorFlow "
         "(tf.sysconfig.get_build_info(); `pip install tensorflow[and-cuda]` installs them) and that "
         "CUDA_VISIBLE_DEVICES does not hide it; `--verbosity=1` shows TensorFlow's own lines on why. To train on the "
         "CPU on purpose, set CUDA_VISIBLE_DEVICES=-1.", evidence)
    return True


def task_id(strategy):
    """This process's task index in the cluster (0 without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return getattr(resolver, "task_id", None) or 0


def num_workers(strategy):
    """The number of worker processes (chief included) that train together under `strategy` (1 without a cluster)."""
    if not is_multi_worker(strategy):
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return max(1, sum(len(cluster.get(job, ())) for job in ("chief", "worker")))


def task_name(strategy):
    """This process's task as TensorFlow's errors name it, e.g. "worker 1" ("worker 0" without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{getattr(resolver, 'task_type', None) or 'worker'} {task_id(strategy)}"


def gather_rows(strategy, row_of_replica):
    """Every replica's row of numbers, by one all-gather across the replicas (and so the workers) of `strategy`.

    Args:
      strategy: a `tf.distribute` strategy.
      row_of_replica: a function of a replica's id in its sync group (0, 1, ...) that returns that replica's row (a
        tuple of numbers, exact up to 2**53); a worker gives the same row for each of its replicas.

    Returns:
      The rows of all replicas, by replica id, as tuples of floats.
    """
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([row_of_replica(context.replica_id_in_sync_group)], tf.float64))
    return [tuple(row) for row in strategy.gather(values, axis=0).numpy().tolist()]


def model_class(strategy):
    """The SAGAN class to train under `strategy`: `MultiWorkerSAGAN` across workers, else `SAGAN`."""
    return MultiWorkerSAGAN if is_multi_worker(strategy) else SAGAN


__all__ = ["STRATEGIES", "strategy_kind", "get_distribution_strategy", "one_op_at_a_time_on_cpu", "is_chief",
           "will_be_chief", "is_multi_worker", "describe", "task_id", "num_workers", "task_name", "gather_rows",
           "model_class"]
