"""Input throughput of the embedded synthetic dataset, against what training consumes: one JSON line per image size.
With --folder: of the folder pipeline with one inter-op thread (as CPU training runs) and with TensorFlow's default.

Usage: python benchmarks/data_throughput.py [--image_sizes=32,64] [--batches=8] [--batch_size=512]
       python benchmarks/data_throughput.py --folder=PATH [--folder_image_size=64] [--batches=24] [--batch_size=32]
           [--repeats=3]

Reported per line:

  generate_images_per_s   `sagan_tf.data.synthetic.generate` on index batches of --batch_size (the drawing alone)
  pipeline_images_per_s   `sagan_tf.data.load("synthetic", ...)` batches pulled from the tf.data pipeline
  train_images_per_s      real images one synthetic32-architecture train step consumes per second at this size
                          (only for the preset's own size, 32; measured here, float32, batch 32)
  pipeline_to_train_ratio pipeline_images_per_s / train_images_per_s: how many times faster the data comes than
                          training takes it (above 1: the input pipeline is not the bottleneck)

The ratio is the figure to compare across machines; the rates depend on the CPU of the day.

With --folder (a folder of images, e.g. photo-sized JPEGs and PNGs), `sagan_tf.data.load("folder:PATH", ...)` is
timed in a fresh process per measurement, alternately with TensorFlow's default inter-op threads ("default") and
with one (`training.distribute.one_op_at_a_time_on_cpu`, "one_inter_op_thread"), --repeats times each. One JSON line:

  <config>_images_per_s      median images per second pulled from the pipeline (after one warm-up batch)
  <config>_cpu_ms_per_image  median process CPU time per image (user + system): the work, whatever the machine's load
  <config>_map_calls_at_once the most calls of a `num_parallel_calls=AUTOTUNE` map (as the pipeline's, autotuning
                             off) that ran at the same time: 1 would mean the decode and resize run one at a time
  one_to_default_ratio       one_inter_op_thread_images_per_s / default_images_per_s (median of the per-repeat ratios)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.train_throughput import device_name  # noqa: E402
from sagan_tf import data  # noqa: E402
from sagan_tf.config import presets  # noqa: E402
from sagan_tf.data import synthetic  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402


def generate_rate(image_size, batches, batch_size):
    synthetic.generate(tf.range(64, dtype=tf.int64), image_size)  # warm-up (tracing)
    start = time.perf_counter()
    for i in range(batches):
        synthetic.generate(tf.range(i * batch_size, (i + 1) * batch_size, dtype=tf.int64), image_size)
    return batches * batch_size / (time.perf_counter() - start)


def pipeline_rate(image_size, batches, batch_size):
    iterator = iter(data.load("synthetic", "train", image_size=image_size, batch_size=batch_size, seed=0))
    next(iterator)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def train_rate(steps=5):
    """Real images per second consumed by synthetic32's train step (float32, its batch size)."""
    config = presets.get_preset("synthetic32")
    training = config.training
    model = build_sagan(config, seed=0)
    rng = np.random.default_rng(0)
    size = config.model.image_size
    real = training.images_per_step
    images = rng.uniform(-1, 1, (real, size, size, 3)).astype("float32")
    labels = rng.integers(0, config.model.num_classes, real).astype("int32")
    batch = (tf.constant(images), tf.constant(labels))
    model.train_on_batch(*batch)  # tracing
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(*batch)
    return steps * real / (time.perf_counter() - start)


FOLDER_CONFIGS = ("default", "one_inter_op_thread")


def map_calls_at_once(calls=32, seconds=0.05):
    """The most calls of a `num_parallel_calls=AUTOTUNE` map, autotuning off as in `sagan_tf.data`, that run at once
    (each call sleeps, so the count does not depend on the machine's load)."""
    from sagan_tf.data import preprocessing

    lock, running, most = threading.Lock(), [0], [0]

    def call(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(seconds)
        with lock:
            running[0] -= 1
        return x

    dataset = tf.data.Dataset.range(calls).map(lambda x: tf.py_function(call, [x], tf.int64),
                                               num_parallel_calls=preprocessing.AUTOTUNE)
    list(preprocessing.without_autotune(dataset))
    return most[0]


def folder_child(config, folder, image_size, batches, batch_size):
    """One measurement in this (fresh) process: prints one JSON line."""
    if config == "one_inter_op_thread":
        from training import distribute
        distribute.one_op_at_a_time_on_cpu()
    iterator = iter(data.load(f"folder:{folder}", "train", image_size=image_size, batch_size=batch_size, seed=0))
    next(iterator)  # warm-up
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    images = batches * batch_size
    print(json.dumps({"images_per_s": images / wall, "cpu_ms_per_image": 1000 * cpu / images,
                      "map_calls_at_once": map_calls_at_once(),
                      "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}), flush=True)


def folder_throughput(args):
    """Alternates the configurations, each in a fresh process (the inter-op threads are fixed once per process)."""
    runs = {config: [] for config in FOLDER_CONFIGS}
    for _ in range(args.repeats):
        for config in FOLDER_CONFIGS:
            output = subprocess.run(
                [sys.executable, os.path.abspath(__file__), f"--folder={args.folder}", f"--folder_child={config}",
                 f"--folder_image_size={args.folder_image_size}", f"--batches={args.batches}",
                 f"--batch_size={args.batch_size}"], check=True, capture_output=True, text=True).stdout
            runs[config].append(json.loads(output.strip().splitlines()[-1]))
    record = {"folder": args.folder, "image_size": args.folder_image_size, "batch_size": args.batch_size,
              "batches": args.batches, "repeats": args.repeats, "cpu_count": os.cpu_count()}
    for config, measured in runs.items():
        record[f"{config}_images_per_s"] = round(statistics.median(m["images_per_s"] for m in measured), 1)
        record[f"{config}_cpu_ms_per_image"] = round(statistics.median(m["cpu_ms_per_image"] for m in measured), 2)
        record[f"{config}_map_calls_at_once"] = max(m["map_calls_at_once"] for m in measured)
    record["one_to_default_ratio"] = round(statistics.median(
        one["images_per_s"] / default["images_per_s"]
        for one, default in zip(runs["one_inter_op_thread"], runs["default"])), 2)
    record["device"] = device_name()
    print(json.dumps(record), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image_sizes", default="32,64")
    parser.add_argument("--batches", type=int, default=None, help="default: 8 (synthetic), 24 (--folder)")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 512 (synthetic), 32 (--folder)")
    parser.add_argument("--folder", default=None, help="a folder of images: time the folder pipeline instead")
    parser.add_argument("--folder_image_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder_child", choices=FOLDER_CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.folder:
        args.batches = args.batches or 24
        args.batch_size = args.batch_size or 32
        if args.folder_child:
            folder_child(args.folder_child, args.folder, args.folder_image_size, args.batches, args.batch_size)
        else:
            folder_throughput(args)
        return
    args.batches = args.batches or 8
    args.batch_size = args.batch_size or 512
    training = train_rate()
    for image_size in (int(size) for size in args.image_sizes.split(",")):
        record = {
            "image_size": image_size,
            "batch_size": args.batch_size,
            "generate_images_per_s": round(generate_rate(image_size, args.batches, args.batch_size), 1),
            "pipeline_images_per_s": round(pipeline_rate(image_size, args.batches, args.batch_size), 1),
            "device": device_name(),
        }
        if image_size == presets.get_preset("synthetic32").model.image_size:
            record["train_images_per_s"] = round(training, 1)
            record["pipeline_to_train_ratio"] = round(record["pipeline_images_per_s"] / training, 2)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
