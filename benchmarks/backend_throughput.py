"""TensorFlow against JAX: the same SAGAN train step on both Keras backends on this machine, one JSON line.

Usage:
  python benchmarks/backend_throughput.py --preset=dcgan64 --batch_size=64 --precisions=float32,mixed_bfloat16 \
      --steps=3 --warmup=1

Runs `benchmarks/train_throughput.py` once per backend (each configuration in its own process, as that script
does; TensorFlow with XLA as `--tf_xla` says, off by default: the package's default on a CPU, where it was measured
slower), then prints one line: for each precision the TensorFlow and the JAX record's step time, images/s and
fractions of that backend's own matmul ceilings, and `jax_speedup` (TensorFlow's median step time over JAX's: above 1,
JAX trains faster). The two backends run one after the other: on a shared machine compare the load averages each
record carries before trusting a ratio.
"""

import argparse
import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_throughput.py")
KEPT = ("device", "step_time_s", "images_per_s", "first_step_s", "xla", "achieved_flops_per_s",
        "fraction_of_f32_ceiling", "fraction_of_bf16_ceiling", "matmul_ceiling_f32_flops_per_s",
        "matmul_ceiling_bf16_flops_per_s", "peak_memory_mib", "load_avg_1min_before", "load_avg_1min_after")


def run_backend(backend, args):
    """The JSON records `train_throughput.py --backend=<backend>` prints for the requested configurations."""
    command = [sys.executable, SCRIPT, f"--backend={backend}", f"--presets={args.preset}",
               f"--batch_sizes={args.batch_size}", f"--precisions={args.precisions}", f"--steps={args.steps}",
               f"--warmup={args.warmup}", f"--xla={args.tf_xla if backend == 'tensorflow' else 'on'}"]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend})
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr.strip()[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def compare(tensorflow_records, jax_records):
    """{precision: {"tensorflow": {...}, "jax": {...}, "jax_speedup": float or None}} from both runs' records."""
    results = {}
    for backend, records in (("tensorflow", tensorflow_records), ("jax", jax_records)):
        for record in records:
            entry = results.setdefault(record["precision"], {})
            entry[backend] = ({"error": record["error"]} if "error" in record
                              else {key: record[key] for key in KEPT if key in record})
    for entry in results.values():
        times = [entry.get(backend, {}).get("step_time_s") for backend in ("tensorflow", "jax")]
        entry["jax_speedup"] = round(times[0] / times[1], 3) if all(times) else None
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan64")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--tf_xla", default="off", choices=("off", "on"), help="XLA for the TensorFlow step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (the first one compiles)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tensorflow_records = run_backend("tensorflow", args)
    jax_records = run_backend("jax", args)
    print(json.dumps({"preset": args.preset, "batch": args.batch_size, "steps_timed": args.steps,
                      "results": compare(tensorflow_records, jax_records)}), flush=True)


if __name__ == "__main__":
    main()
