"""What gradient accumulation saves: one JSON line with the memory and images/s of one preset and batch trained
with `grad_accumulation` = 1, 2, 4 (each in a fresh process, `benchmarks/train_throughput.py`'s configuration).

Usage:
  python benchmarks/accumulation_memory.py --preset=dcgan64 --batch=64 --grad_accumulation=1,2,4 --steps=3

The figures per N (`runs`): `allocator_peak_mib`, the peak of TensorFlow's allocator over the timed steps (on CPU
too: `tf.config.experimental.get_memory_info("CPU:0")`, tensors only), and `allocator_step_mib`, that peak minus
what was allocated before the steps (weights, optimizer slots, the batch): what a step's activations and gradients
need, the part accumulation divides. `peak_rss_mib` is the process's maximum resident set size (getrusage: the
runtime, tracing and allocator caching included); `images_per_s` the real images consumed per second (median
step). `step_memory_ratio` compares each N's `allocator_step_mib` with N = 1's. A GPU run reports its device's
allocator the same way.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(preset, batch, precision, accumulation, steps, warmup):
    """One configuration in a fresh process (its own peak RSS and allocator statistics): train_throughput's record."""
    spec = dict(preset=preset, batch=batch, precision=precision, xla=False, steps=steps, warmup=warmup,
                grad_accumulation=accumulation)
    out = subprocess.run([sys.executable, os.path.join(HERE, "train_throughput.py"), "--child", json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"grad_accumulation={accumulation} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan64")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--grad_accumulation", default="1,2,4", help="comma-separated micro-batches per update")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (the first one traces)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    runs = []
    for accumulation in (int(n) for n in args.grad_accumulation.split(",")):
        record = measure(args.preset, args.batch, args.precision, accumulation, args.steps, args.warmup)
        step = None
        if record["allocator_peak_mib"] is not None and record["allocator_resident_mib"] is not None:
            step = round(record["allocator_peak_mib"] - record["allocator_resident_mib"], 1)
        runs.append({"grad_accumulation": accumulation, "micro_batch": args.batch // accumulation,
                     "images_per_s": record["images_per_s"], "step_time_s": record["step_time_s"],
                     "allocator_peak_mib": record["allocator_peak_mib"],
                     "allocator_resident_mib": record["allocator_resident_mib"], "allocator_step_mib": step,
                     "peak_rss_mib": record["peak_memory_mib"], "rss_before_steps_mib": record["rss_before_steps_mib"]})
    base = runs[0]["allocator_step_mib"]
    for run in runs:
        run["step_memory_ratio"] = None if not base or run["allocator_step_mib"] is None else round(
            run["allocator_step_mib"] / base, 3)
    print(json.dumps({"preset": args.preset, "batch": args.batch, "precision": args.precision,
                      "device": record["device"], "steps_timed": args.steps,
                      "memory_source": "TensorFlow allocator (get_memory_info) and getrusage peak RSS",
                      "runs": runs, "load_avg_1min_before": load_before,
                      "load_avg_1min_after": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
