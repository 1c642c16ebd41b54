r"""Trains the synthetic-domain classifier used for FID/IS on the `synthetic` dataset, and ships it.

    python -m training.train_classifier                    # writes sagan_tf/metrics/assets/synthetic_classifier.keras
    python -m training.train_classifier --output=/tmp/c.keras --steps=500

It trains on the synthetic 'train' stream, prints progress and the accuracy on the held-out 'test' split, and
writes the model only if that accuracy is at least --min_accuracy (else: a one-paragraph error, exit status 2,
and any existing file at --output is left untouched). `sagan_tf.metrics.load_classifier("synthetic")` loads the
shipped file.
"""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from sagan_tf.metrics import synthetic_classifier  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("output", synthetic_classifier.SYNTHETIC_CLASSIFIER_PATH,
                    "The .keras file to write. Default: the file shipped inside the package.")
flags.DEFINE_integer("steps", 2000, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 64, "Images per step.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, augmentation and the training stream.")
flags.DEFINE_float("learning_rate", 2e-3, "Peak Adam learning rate (cosine decay over --steps).")
flags.DEFINE_integer("eval_examples", None, "Held-out test images to measure accuracy on. Default: all 10,240.")
flags.DEFINE_float("min_accuracy", 0.95, "Refuse to write a model with a lower held-out accuracy.")
flags.DEFINE_integer("log_every", 100, "Steps between progress lines.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from sagan_tf.errors import UsageError

    start = time.time()

    def log(line):
        print(f"[{time.time() - start:7.1f}s] {line}", flush=True)

    try:
        accuracy = synthetic_classifier.train_synthetic_classifier(
            FLAGS.output, FLAGS.steps, FLAGS.batch_size, FLAGS.seed,
            learning_rate=FLAGS.learning_rate, eval_examples=FLAGS.eval_examples,
            min_accuracy=FLAGS.min_accuracy, log_every=FLAGS.log_every, log_fn=log)
    except UsageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(f"held-out accuracy: {accuracy:.4f}; wrote {FLAGS.output} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    app.run(main)
