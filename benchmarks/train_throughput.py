"""Training throughput of SAGAN presets: prints one JSON line per (preset, batch, precision, XLA) configuration.

Usage:
  python benchmarks/train_throughput.py --presets=synthetic32,cifar32 --batch_sizes=64 \
      --precisions=float32,mixed_bfloat16 --xla=off,on --steps=5 --warmup=2
  python benchmarks/train_throughput.py --presets=dcgan64 --batch_sizes=64 --precisions=float32 --xla=off \
      --grad_accumulation=1,2,4 --steps=3 --warmup=1   # what accumulation saves (benchmarks/accumulation_memory.py)
  KERAS_BACKEND=jax python benchmarks/train_throughput.py --backend=jax --preset=imagenet128 --batch_size=256 \
      --precision=mixed_bfloat16   # Keras's JAX backend: needs Keras, JAX and NumPy only (BUILD.md, GPU figures)

Each configuration runs in a fresh subprocess (so the mixed-precision policy, XLA caches and the peak-memory
high-water mark are its own) and calls the model's own Keras train function (what `fit` runs: `d_steps`
discriminator updates and one generator update per step) on one in-memory batch of random images, so no dataset
I/O is timed: on TensorFlow the batch is repeated by tf.data; on JAX (`--backend=jax`, `benchmarks/jax_timing.py`)
it is put on the device once and the jitted train function is called with Keras's state tuple as `fit` calls it,
each step timed to `block_until_ready`. The JAX path imports no TensorFlow. `--preset`, `--batch_size` and
`--precision` are the singular spellings of `--presets`, `--batch_sizes` and `--precisions`.

Reported per line:

  step_time_s        median wall time of one train step after `--warmup` untimed steps
  images_per_s       real images consumed per second (d_steps * batch per step)
  peak_memory_mib    CPU: the process's maximum resident set size (getrusage; includes the TF runtime);
                     GPU: TensorFlow's peak allocated device memory
  rss_before_steps_mib  CPU: the resident set size once the model is built, before the first step (the TF runtime,
                     weights and optimizer slots): peak_memory_mib minus it is what the steps add (activations,
                     gradients, tracing)
  allocator_peak_mib, allocator_resident_mib  TensorFlow's own allocator on the benchmark's device
                     (`tf.config.experimental.get_memory_info`; on CPU too, TF 2.21): the peak over the timed steps
                     (statistics reset after the warm-up) and what was allocated before them (weights, optimizer
                     slots, the batch); tensors only, without the runtime's own memory. null where unavailable
  grad_accumulation  micro-batches per update (`--grad_accumulation`)
  flops_per_step     analytic count from the model's layers (benchmarks/flops.py; a multiply-add is 2 FLOPs)
  achieved_flops_per_s, fraction_of_f32_ceiling, fraction_of_bf16_ceiling: against a 2048x2048 matmul measured
                     by this script on this machine (BUILD.md fact 7), reported as matmul_ceiling_*
  load_avg_1min_*    the machine's load average before and after the configuration (other processes compete)

On JAX the same keys (there peak_memory_mib and allocator_peak_mib are JAX's allocator peak on a GPU, the maximum
RSS and null on a CPU; allocator_resident_mib the device memory in use before the timed steps), plus `backend`
("jax"), `ms_per_step` and `matmul_precision` (JAX's default matmul precision: on NVIDIA GPUs float32 matmuls
and convolutions may run in TF32 at that default, the model's and the ceiling's alike). The ceiling's matmul is
2048x2048 on a CPU and 8192x8192 on a GPU, where a 2048^3 product measures launch overhead rather than the matrix
units.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.machine import cpu_description, fastest_call, rss_mib  # noqa: E402

# Keras, TensorFlow and JAX are imported where they are used, after `main` has set KERAS_BACKEND from --backend:
# the JAX path never imports TensorFlow.
BACKENDS = ("tensorflow", "jax")


def device_name():
    """A short description of the device TensorFlow runs on."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return cpu_description()


def matmul_ceiling(dtype, size=2048, repeats=10):
    """Best-of-repeats FLOP/s of a size x size matmul in `dtype` on TensorFlow's default device."""
    import tensorflow as tf

    a = tf.random.normal((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    return 2 * size ** 3 / fastest_call(lambda: matmul(a, b).numpy(), repeats)


def peak_memory_mib():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10  # KiB on Linux


def allocator_device():
    """The TensorFlow device whose allocator holds the step's tensors: "GPU:0" with a GPU, else "CPU:0"."""
    import tensorflow as tf

    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def allocator_mib(key):
    """`get_memory_info(allocator_device())[key]` in MiB, or None where TensorFlow does not track it."""
    import tensorflow as tf

    try:
        return round(tf.config.experimental.get_memory_info(allocator_device())[key] / 2 ** 20, 1)
    except (ValueError, RuntimeError):
        return None


def matmul_ceilings(backend):
    """{"float32": FLOP/s, "bfloat16": FLOP/s} of a square matmul on `backend`'s default device."""
    if backend == "jax":
        from benchmarks import jax_timing

        return {dtype: jax_timing.matmul_ceiling(dtype) for dtype in ("float32", "bfloat16")}
    import tensorflow as tf

    return {"float32": matmul_ceiling(tf.float32), "bfloat16": matmul_ceiling(tf.bfloat16)}


def time_tensorflow_steps(model, images, labels, steps, warmup):
    """Times the model's Keras train function (TensorFlow backend) on a tf.data repetition of one batch: the
    `jax_timing.time_train_steps` dict plus `peak_memory_mib` and `allocator_peak_mib`."""
    import tensorflow as tf

    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    model.make_train_function()
    rss_before_steps = rss_mib()

    def step():
        logs = model.train_function(iterator)
        if hasattr(logs, "get_value"):
            logs = logs.get_value()
        return float(logs["d_loss"])  # blocks until the step has finished

    start = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - start  # tracing (and XLA compilation)
    for _ in range(max(warmup - 1, 0)):
        step()
    resident = allocator_mib("current")
    try:
        tf.config.experimental.reset_memory_stats(allocator_device())
    except (ValueError, RuntimeError):
        pass
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        d_loss = step()
        times.append(time.perf_counter() - start)
    return {"first_step_s": first_step_s, "times": times, "d_loss": d_loss, "rss_before_steps": rss_before_steps,
            "allocator_resident_mib": resident, "peak_memory_mib": peak_memory_mib(),
            "allocator_peak_mib": allocator_mib("peak"), "device": device_name()}


def time_jax_steps(model, images, labels, steps, warmup):
    """`jax_timing.time_train_steps` with the peak memory and the device."""
    from benchmarks import jax_timing

    timed = jax_timing.time_train_steps(model, images, labels if model.num_classes else None, steps, warmup,
                                        rss_mib)
    return {**timed, "peak_memory_mib": jax_timing.peak_memory_mib(), "allocator_peak_mib": jax_timing.memory_mib()[0],
            "device": jax_timing.device_name()}


def run_configuration(preset, batch, precision, xla, steps, warmup, grad_accumulation=1, backend="tensorflow"):
    """Times one configuration in this process; returns its JSON record (without ceiling fractions)."""
    import keras

    from benchmarks import flops as flops_lib
    from sagan_tf.config import presets
    from sagan_tf.models import build_sagan

    if keras.backend.backend() != backend:
        raise RuntimeError(f"Keras runs on {keras.backend.backend()} in this process: set KERAS_BACKEND={backend} "
                           f"before Keras is imported. Received: backend={backend}")
    load_before = os.getloadavg()[0]
    keras.mixed_precision.set_global_policy(precision)
    experiment = presets.get_preset(preset).replace(batch_size=batch, grad_accumulation=grad_accumulation)
    cfg, d_steps = experiment.model, experiment.training.d_steps
    model = build_sagan(experiment, seed=0, jit_compile=xla)
    counted = flops_lib.count_train_step_flops(model.generator, model.discriminator, batch, d_steps)

    rng = np.random.default_rng(0)
    real = batch * d_steps
    images = rng.uniform(-1, 1, (real, cfg.image_size, cfg.image_size, 3)).astype("float32")
    labels = rng.integers(0, max(cfg.num_classes, 1), (real,)).astype("int32")
    time_steps = time_jax_steps if backend == "jax" else time_tensorflow_steps
    timed = time_steps(model, images, labels, steps, warmup)
    times, d_loss = timed["times"], timed["d_loss"]
    if not np.isfinite(d_loss):
        raise RuntimeError(f"non-finite d_loss {d_loss} in {preset} {precision}")
    median = statistics.median(times)
    record = {
        "preset": preset,
        "batch": batch,
        "d_steps": d_steps,
        "grad_accumulation": grad_accumulation,
        "precision": precision,
        "xla": xla,
        "device": timed["device"],
        "steps_timed": steps,
        "first_step_s": round(timed["first_step_s"], 2),
        "step_time_s": round(median, 4),
        "step_time_min_s": round(min(times), 4),
        "images_per_s": round(real / median, 2),
        "peak_memory_mib": round(timed["peak_memory_mib"], 1),
        "rss_before_steps_mib": round(timed["rss_before_steps"], 1),
        "allocator_peak_mib": timed["allocator_peak_mib"],
        "allocator_resident_mib": timed["allocator_resident_mib"],
        "flops_per_step": counted["total"],
        "achieved_flops_per_s": round(counted["total"] / median),
        "load_avg_1min_before": load_before,
        "load_avg_1min_after": os.getloadavg()[0],
    }
    if backend == "jax":
        from benchmarks import jax_timing

        record.update(backend="jax", ms_per_step=round(1000 * median, 2),
                      matmul_precision=jax_timing.matmul_precision())
    return record


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), choices=BACKENDS,
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow); jax needs no TensorFlow")
    parser.add_argument("--presets", "--preset", dest="presets", default="synthetic32,cifar32")
    parser.add_argument("--batch_sizes", "--batch_size", dest="batch_sizes", default="64")
    parser.add_argument("--precisions", "--precision", dest="precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--xla", default=None,
                        help="comma-separated subset of off,on (default off,on; JAX: on, its step is always jitted)")
    parser.add_argument("--grad_accumulation", default="1", help="comma-separated micro-batches per update")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first one traces)")
    parser.add_argument("--no_isolate", action="store_true",
                        help="run every configuration in this process (peak memory is then cumulative)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.xla is None:
        args.xla = "on" if args.backend == "jax" else "off,on"
    for value in args.xla.split(","):
        if value not in ("off", "on"):
            parser.error(f"--xla takes a comma-separated subset of off,on. Received: --xla={args.xla}")
        if value == "off" and args.backend == "jax":
            parser.error("--xla=off is TensorFlow's: Keras always jit-compiles the train step on JAX. "
                         f"Received: --backend=jax --xla={args.xla}")
    if args.steps < 1 or args.warmup < 1:
        parser.error(f"--steps and --warmup must be >= 1. Received: --steps={args.steps} --warmup={args.warmup}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_configuration(**json.loads(args.child))), flush=True)
        return
    os.environ["KERAS_BACKEND"] = args.backend  # for this process's Keras (imported later) and the children
    child_env = dict(os.environ)
    if args.backend == "jax" and not args.no_isolate:
        # This process only measures the matmul ceilings: JAX would otherwise take most of the GPU's memory here,
        # away from the children that train.
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    ceilings = matmul_ceilings(args.backend)
    for preset in args.presets.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for precision in args.precisions.split(","):
                for xla, accumulation in ((x, int(n)) for x in args.xla.split(",")
                                          for n in args.grad_accumulation.split(",")):
                    spec = dict(preset=preset, batch=batch, precision=precision, xla=xla == "on",
                                steps=args.steps, warmup=args.warmup, grad_accumulation=accumulation,
                                backend=args.backend)
                    if args.no_isolate:
                        record = run_configuration(**spec)
                    else:
                        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                                             capture_output=True, text=True, env=child_env)
                        if out.returncode:
                            print(json.dumps({**spec, "error": out.stderr.strip().splitlines()[-1:]}), flush=True)
                            continue
                        record = json.loads(out.stdout.strip().splitlines()[-1])
                    achieved = record["achieved_flops_per_s"]
                    record.update({
                        "matmul_ceiling_f32_flops_per_s": round(ceilings["float32"]),
                        "matmul_ceiling_bf16_flops_per_s": round(ceilings["bfloat16"]),
                        "fraction_of_f32_ceiling": round(achieved / ceilings["float32"], 4),
                        "fraction_of_bf16_ceiling": round(achieved / ceilings["bfloat16"], 4),
                    })
                    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
