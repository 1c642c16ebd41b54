"""Serving latency of exported generators: prints one JSON line per SavedModel.

Usage:
  python benchmarks/serving_latency.py --presets=synthetic32,imagenet128          # exports random weights first
  python benchmarks/serving_latency.py --saved_model_dirs=exports/synthetic32/2000
  python benchmarks/serving_latency.py --presets=imagenet128 --iterations=10 --batch64_iterations=2

For each preset, a generator with random weights (speed does not depend on them) is exported with
`sagan_tf.serving.export_generator` to a temporary directory; every model is then loaded with
`tf.saved_model.load` in this process, as TF Serving's runtime would load it, and its signatures called through
TensorFlow's function runtime with no server or RPC in between. Reported per line:

  batch1_p50_ms, batch1_p99_ms   latency of one `serving_default` call (1 image) over `--iterations` calls
  batch64_s                      median wall time of one `serving_default` call with 64 images
  batch64_images_per_s           64 / batch64_s
  generate_batch1_p50_ms         median latency of `generate` with 1 label (latent sampling, uint8 and PNG included)
  export_s, load_s               time to write (presets only) and to load the SavedModel
  device                         what ran it; load_avg_1min_* the machine's load before and after (shared cores)
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.train_throughput import device_name  # noqa: E402
from sagan_tf.config import presets  # noqa: E402
from sagan_tf.serving import signatures as serving  # noqa: E402
from sagan_tf.run.restore import build_generator  # noqa: E402


def _timed(function, iterations, warmup):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def _serve_call(signature, z_shape, conditional, batch):
    rng = np.random.default_rng(0)
    args = {"z": tf.constant(rng.standard_normal((batch, z_shape)).astype(np.float32))}
    if conditional:
        args["labels"] = tf.zeros((batch,), tf.int32)
    return lambda: signature(**args)["images"].numpy()


def measure(saved_model_dir, iterations, batch64_iterations, warmup):
    """The figures of one SavedModel (see the module docstring)."""
    start = time.perf_counter()
    loaded = tf.saved_model.load(saved_model_dir)
    load_s = time.perf_counter() - start
    serve = loaded.signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    latent_dim = int(inputs["z"].shape[-1])
    conditional = "labels" in inputs
    batch1 = _timed(_serve_call(serve, latent_dim, conditional, 1), iterations, warmup)
    batch64 = _timed(_serve_call(serve, latent_dim, conditional, 64), batch64_iterations, 1)
    generate = loaded.signatures["generate"]
    generate_args = {"seed": tf.constant(0, tf.int64), "truncation": tf.constant(1.0)}
    generate_args.update({"labels": tf.zeros((1,), tf.int32)} if conditional else {"batch_size": tf.constant(1)})
    generate_times = _timed(lambda: generate(**generate_args)["png_bytes"].numpy(), max(iterations // 2, 1), warmup)
    batch64_s = statistics.median(batch64)
    return {
        "batch1_p50_ms": round(1000 * float(np.percentile(batch1, 50)), 3),
        "batch1_p99_ms": round(1000 * float(np.percentile(batch1, 99)), 3),
        "batch1_iterations": iterations,
        "batch64_s": round(batch64_s, 5),
        "batch64_images_per_s": round(64 / batch64_s, 2),
        "batch64_iterations": batch64_iterations,
        "generate_batch1_p50_ms": round(1000 * float(np.percentile(generate_times, 50)), 3),
        "load_s": round(load_s, 2),
        "image_size": int(serve.structured_outputs["images"].shape[1]),
        "latent_dim": latent_dim,
        "conditional": conditional,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="", help="Comma-separated presets to export with random weights.")
    parser.add_argument("--saved_model_dirs", default="", help="Comma-separated SavedModel version directories.")
    parser.add_argument("--iterations", type=int, default=50, help="Timed batch-1 calls.")
    parser.add_argument("--batch64_iterations", type=int, default=5, help="Timed batch-64 calls.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed calls first (tracing, allocation).")
    args = parser.parse_args()
    presets = [name for name in args.presets.split(",") if name]
    directories = [path for path in args.saved_model_dirs.split(",") if path]
    if not presets and not directories:
        parser.error("pass --presets and/or --saved_model_dirs")
    device = device_name()
    targets = [("saved_model", path) for path in directories] + [("preset", name) for name in presets]
    for kind, target in targets:
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as scratch:
            record = {"preset": target} if kind == "preset" else {"saved_model_dir": target}
            path = target
            if kind == "preset":
                config = presets.get_preset(target).model
                start = time.perf_counter()
                # A cap of 64 at least: the batch-64 call must not be refused.
                path = serving.export_generator(build_generator(config), config, scratch, 1, max_batch_size=64)
                record["export_s"] = round(time.perf_counter() - start, 2)
            record.update(measure(path, args.iterations, args.batch64_iterations, args.warmup))
        record.update({"device": device, "tensorflow": tf.__version__,
                       "load_avg_1min_before": round(load_before, 2),
                       "load_avg_1min_after": round(os.getloadavg()[0], 2)})
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
