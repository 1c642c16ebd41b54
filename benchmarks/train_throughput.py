"""Training throughput of SAGAN presets: prints one JSON line per (preset, batch, precision, XLA) configuration.

Usage:
  python benchmarks/train_throughput.py --presets=synthetic32,cifar32 --batch_sizes=64 \
      --precisions=float32,mixed_bfloat16 --xla=off,on --steps=5 --warmup=2
  python benchmarks/train_throughput.py --presets=dcgan64 --batch_sizes=64 --precisions=float32 --xla=off \
      --grad_accumulation=1,2,4 --steps=3 --warmup=1   # what accumulation saves (benchmarks/accumulation_memory.py)

Each configuration runs in a fresh subprocess (so the mixed-precision policy, XLA caches and the peak-memory
high-water mark are its own) and calls the model's own Keras train function (what `fit` runs: `d_steps`
discriminator updates and one generator update per step) on one in-memory batch of random images repeated by
tf.data, so no dataset I/O is timed. Reported per line:

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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import flops as flops_lib  # noqa: E402
from sagan_tf import presets  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402


def device_name():
    """A short description of the device the benchmark runs on."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    model = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model} ({os.cpu_count()} cores)"


def matmul_ceiling(dtype, size=2048, repeats=10):
    """Best-of-repeats FLOP/s of a size x size matmul in `dtype` on the default device."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times)


def peak_memory_mib():
    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10  # KiB on Linux


def rss_mib():
    """The current resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def allocator_device():
    """The TensorFlow device whose allocator holds the step's tensors: "GPU:0" with a GPU, else "CPU:0"."""
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def allocator_mib(key):
    """`get_memory_info(allocator_device())[key]` in MiB, or None where TensorFlow does not track it."""
    try:
        return round(tf.config.experimental.get_memory_info(allocator_device())[key] / 2 ** 20, 1)
    except (ValueError, RuntimeError):
        return None


def run_configuration(preset, batch, precision, xla, steps, warmup, grad_accumulation=1):
    """Times one configuration in this process; returns its JSON record (without ceiling fractions)."""
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
    if not np.isfinite(d_loss):
        raise RuntimeError(f"non-finite d_loss {d_loss} in {preset} {precision}")
    median = statistics.median(times)
    return {
        "preset": preset,
        "batch": batch,
        "d_steps": d_steps,
        "grad_accumulation": grad_accumulation,
        "precision": precision,
        "xla": xla,
        "device": device_name(),
        "steps_timed": steps,
        "first_step_s": round(first_step_s, 2),
        "step_time_s": round(median, 4),
        "step_time_min_s": round(min(times), 4),
        "images_per_s": round(real / median, 2),
        "peak_memory_mib": round(peak_memory_mib(), 1),
        "rss_before_steps_mib": round(rss_before_steps, 1),
        "allocator_peak_mib": allocator_mib("peak"),
        "allocator_resident_mib": resident,
        "flops_per_step": counted["total"],
        "achieved_flops_per_s": round(counted["total"] / median),
        "load_avg_1min_before": load_before,
        "load_avg_1min_after": os.getloadavg()[0],
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="synthetic32,cifar32")
    parser.add_argument("--batch_sizes", default="64")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--xla", default="off,on", help="comma-separated subset of off,on")
    parser.add_argument("--grad_accumulation", default="1", help="comma-separated micro-batches per update")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first one traces)")
    parser.add_argument("--no_isolate", action="store_true",
                        help="run every configuration in this process (peak memory is then cumulative)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_configuration(**json.loads(args.child))), flush=True)
        return
    for value in args.xla.split(","):
        if value not in ("off", "on"):
            raise SystemExit(f"--xla takes a comma-separated subset of off,on. Received: --xla={args.xla}")
    ceilings = {"float32": matmul_ceiling(tf.float32), "bfloat16": matmul_ceiling(tf.bfloat16)}
    for preset in args.presets.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for precision in args.precisions.split(","):
                for xla, accumulation in ((x, int(n)) for x in args.xla.split(",")
                                          for n in args.grad_accumulation.split(",")):
                    spec = dict(preset=preset, batch=batch, precision=precision, xla=xla == "on",
                                steps=args.steps, warmup=args.warmup, grad_accumulation=accumulation)
                    if args.no_isolate:
                        record = run_configuration(**spec)
                    else:
                        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                                             capture_output=True, text=True)
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
