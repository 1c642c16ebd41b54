"""MirroredStrategy over 2 logical CPU devices against one device, at the same global batch.

Usage:
  python benchmarks/mirrored_scaling.py --preset=synthetic32 --batch=64 --steps=10 --xla=off,on

Splits this machine's CPU into two logical devices (before TensorFlow starts), then times the Keras train function
of the same preset three ways in one process: on one device (the default strategy), and under MirroredStrategy over
the two logical devices without and with per-replica XLA (`--xla`). Both logical devices share the same cores, so
the figure is what mirroring costs (cross-device all-reduce of the gradients, the batch-norm averaging, the
per-replica bookkeeping), not a speed-up; on N GPUs the same code runs N times the work. Prints one JSON line per
configuration with its median step time and its ratio to one device.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.train_throughput import device_name  # noqa: E402
from sagan_tf.config import presets  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402


def time_steps(strategy, experiment, batch, steps, warmup, xla):
    cfg = experiment.model
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_sagan(experiment.replace(batch_size=batch), seed=0, jit_compile=xla)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype("float32")
    labels = rng.integers(0, max(cfg.num_classes, 1), (batch,)).astype("int32")
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((images, labels)).repeat())
    iterator = iter(dataset)
    model.make_train_function()

    def step():
        logs = model.train_function(iterator)
        return float(keras.ops.convert_to_numpy(logs["d_loss"]))  # waits for the step

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="synthetic32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--xla", default="off,on", help="per-replica XLA under MirroredStrategy: off, on or both")
    args = parser.parse_args(argv)
    experiment = presets.get_preset(args.preset)
    one_device = time_steps(tf.distribute.get_strategy(), experiment, args.batch, args.steps, args.warmup, False)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    record = {"benchmark": "mirrored_scaling", "device": device_name(), "preset": args.preset, "batch": args.batch,
              "one_device_step_s": round(one_device, 4)}
    print(json.dumps({**record, "strategy": "one device", "xla": False, "step_time_s": round(one_device, 4),
                      "ratio_to_one_device": 1.0}), flush=True)
    for xla in args.xla.split(","):
        seconds = time_steps(mirrored, experiment, args.batch, args.steps, args.warmup, xla == "on")
        print(json.dumps({**record, "strategy": "mirrored, 2 logical CPU devices", "xla": xla == "on",
                          "step_time_s": round(seconds, 4), "ratio_to_one_device": round(seconds / one_device, 3),
                          "load_avg_1min": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
