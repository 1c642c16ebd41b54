"""Per-step overhead of `fit` with the training command's callbacks, against the bare train function.

Usage:
  python benchmarks/step_overhead.py --steps=300 --repeats=3

The model is small (16x16 images, 8 channels, batch 4), so that a step takes milliseconds and what the host does per
step shows. All three measurements use the same compiled `SAGAN` (a `training.train_lib.Trainer` with its default
callbacks: non-finite guard, signal handling, progress every --log_every steps, sample grids and checkpoints every
500) and the same input pipeline:

  bare_step_ms   `model.train_function(iterator)` called --steps times in a loop on a fresh iterator of the dataset
                 (as `fit` makes one), one host read at the end
  fit_step_ms    `model.fit` over the same number of steps with the Trainer's callbacks, timed from the start of the
                 first batch to the end of the last one (callbacks that act at the start or the end of training, the
                 final checkpoint and sample grid, are outside the window; the progress lines inside it are in)
  fit_bare_step_ms  `model.fit` over the same steps with no callback but the timer: what Keras's loop itself adds
  overhead       fit_step_ms / bare_step_ms - 1 (the goal: <= 0.05)
  callbacks_overhead  fit_step_ms / fit_bare_step_ms - 1: what the package's callbacks add to Keras's loop

The three are measured in turn, --repeats rounds of each, so that a change of the machine's load falls on all of
them; each figure is the best of its rounds (other load only adds time). Prints one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from benchmarks.train_throughput import device_name  # noqa: E402
from sagan_tf.config import ExperimentConfig, ModelConfig, TrainingConfig  # noqa: E402
from training import train_lib  # noqa: E402


def small_config(steps):
    # 8 channels and a batch of 4: a step is then mostly TensorFlow's per-op dispatch (~17 ms for the ~1,000 ops of
    # a SAGAN step on a 2-core CPU), the floor under which the host's own per-step work would show.
    model = ModelConfig(name="small16", image_size=16, num_classes=4, g_channels=(8, 8, 8),
                        g_attention_resolutions=(8,), d_channels=(8, 8, 8), d_downsample=(True, True, False),
                        d_attention_resolutions=(8,), latent_dim=32)
    return ExperimentConfig(model, TrainingConfig(dataset="synthetic", batch_size=4, train_steps=10 * steps))


class WindowTimer(keras.callbacks.Callback):
    """Times `fit` from the first `on_train_batch_begin` to `on_train_end` (put it first in the callback list)."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log_every", type=int, default=100)
    args = parser.parse_args(argv)
    logging.set_verbosity(logging.WARNING)
    config = small_config(args.steps)
    with tempfile.TemporaryDirectory() as model_dir:
        options = train_lib.TrainOptions(model_dir=model_dir, strategy="off", log_every=args.log_every,
                                         handle_signals=True, jit_compile=False)
        trainer = train_lib.Trainer(config, options)
        model = trainer.model
        dataset = trainer.strategy.distribute_datasets_from_function(train_lib.input_fn(config, options, 0))
        iterator = iter(dataset)
        model.make_train_function()
        for _ in range(20):  # trace and warm up
            logs = model.train_function(iterator)
        float(keras.ops.convert_to_numpy(logs["d_loss"]))

        def bare_loop():
            fresh = iter(dataset)
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = model.train_function(fresh)
            float(keras.ops.convert_to_numpy(logs["d_loss"]))
            return (time.perf_counter() - start) / args.steps

        def fit_loop(callbacks):
            timer = WindowTimer()
            model.fit(dataset, epochs=1, steps_per_epoch=args.steps, callbacks=[timer] + callbacks, verbose=0,
                      shuffle=False)
            return timer.seconds / args.steps

        bare, fitted, fit_bare = [], [], []
        for _ in range(args.repeats):
            bare.append(bare_loop())
            fitted.append(fit_loop(trainer.callbacks))
            fit_bare.append(fit_loop([]))
    bare_step, fit_step, fit_bare_step = min(bare), min(fitted), min(fit_bare)
    print(json.dumps({
        "benchmark": "step_overhead",
        "device": device_name(),
        "model": config.model.name,
        "batch": config.training.batch_size,
        "steps": args.steps,
        "log_every": args.log_every,
        "callbacks": [type(c).__name__ for c in trainer.callbacks],
        "bare_step_ms": round(1000 * bare_step, 3),
        "fit_step_ms": round(1000 * fit_step, 3),
        "fit_bare_step_ms": round(1000 * fit_bare_step, 3),
        "overhead": round(fit_step / bare_step - 1, 4),
        "callbacks_overhead": round(fit_step / fit_bare_step - 1, 4),
        "load_avg_1min": os.getloadavg()[0],
    }), flush=True)


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    main()
