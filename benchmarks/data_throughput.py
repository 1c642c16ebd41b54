"""Input throughput of the embedded synthetic dataset, against what training consumes: one JSON line per image size.

Usage: python benchmarks/data_throughput.py [--image_sizes=32,64] [--batches=8] [--batch_size=512]

Reported per line:

  generate_images_per_s   `sagan_tf.data.synthetic.generate` on index batches of --batch_size (the drawing alone)
  pipeline_images_per_s   `sagan_tf.data.load("synthetic", ...)` batches pulled from the tf.data pipeline
  train_images_per_s      real images one synthetic32-architecture train step consumes per second at this size
                          (only for the preset's own size, 32; measured here, float32, batch 32)
  pipeline_to_train_ratio pipeline_images_per_s / train_images_per_s: how many times faster the data comes than
                          training takes it (above 1: the input pipeline is not the bottleneck)

The ratio is the figure to compare across machines; the rates depend on the CPU of the day.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.train_throughput import device_name  # noqa: E402
from sagan_tf import data, presets  # noqa: E402
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image_sizes", default="32,64")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=512)
    args = parser.parse_args(argv)
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
