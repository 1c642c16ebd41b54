r"""Trains the synthetic-domain classifier used for FID/IS on the `synthetic` dataset, and ships it.

    python -m training.train_classifier                    # writes sagan_tf/metrics/assets/synthetic_classifier.keras
    python -m training.train_classifier --output=/tmp/c.keras --steps=500

It trains on the synthetic 'train' stream, prints progress and the accuracy on the held-out 'test' split, and
writes the model only if that accuracy is at least --min_accuracy (else: a one-paragraph error, exit status 2,
and any existing file at --output is left untouched). `sagan_tf.metrics.load_classifier("synthetic")` loads the
shipped file. The network itself is `sagan_tf.metrics.synthetic_classifier.build_synthetic_classifier`.
"""

import os
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from sagan_tf import cli  # noqa: E402
from sagan_tf.errors import InsufficientAccuracyError, UsageError  # noqa: E402
from sagan_tf.metrics import synthetic_classifier  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("output", synthetic_classifier.SYNTHETIC_CLASSIFIER_PATH,
                        "The .keras file to write. Default: the file shipped inside the package.",
                        flag_values=flag_values)
    flags.DEFINE_integer("steps", 2000, "Optimizer steps.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 64, "Images per step.", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, augmentation and the training stream.",
                         flag_values=flag_values)
    flags.DEFINE_float("learning_rate", 2e-3, "Peak Adam learning rate (cosine decay over --steps).",
                       flag_values=flag_values)
    flags.DEFINE_integer("eval_examples", None, "Held-out test images to measure accuracy on. Default: all 10,240.",
                         flag_values=flag_values)
    flags.DEFINE_float("min_accuracy", 0.95, "Refuse to write a model with a lower held-out accuracy.",
                       flag_values=flag_values)
    flags.DEFINE_integer("log_every", 100, "Steps between progress lines.", flag_values=flag_values)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def _augment(images, labels, seed, noise_stddev):
    """Additive Gaussian noise with a per-image strength in [0, noise_stddev), clipped back to [-1, 1].

    Keeps the features from hanging on the dataset's perfectly flat colours, which no generator reproduces.

    Args:
        images: a batch of images in [-1, 1], [n, h, w, 3].
        labels: their labels, passed through.
        seed: a stateless-random seed, int64 [2].
        noise_stddev: the largest noise standard deviation.

    Returns:
        The (noisy images, labels) pair.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    strength = tf.random.stateless_uniform([n, 1, 1, 1], seed, maxval=noise_stddev)
    noise = tf.random.stateless_normal(tf.shape(images), seed + 1) * strength
    return tf.clip_by_value(images + noise, -1.0, 1.0), labels


def _progress_callback(steps, log_every, log):
    """A Keras callback that logs, every `log_every` steps and at the last of `steps`, the loss and accuracy
    averaged over the steps since the previous line.

    Args:
        steps: the number of training steps (the last one is always reported).
        log_every: steps between lines.
        log: called with each line.

    Returns:
        A `keras.callbacks.Callback`.
    """
    import keras

    class _Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last_step, self.last_sums = 0, {}

        def on_train_batch_end(self, batch, logs=None):
            step = batch + 1
            if step % log_every and step != steps:
                return
            # Keras reports means since the start of the epoch; differences of sums give the window's means.
            sums = {key: float(logs[key]) * step for key in ("loss", "accuracy")}
            window = {k: (sums[k] - self.last_sums.get(k, 0.0)) / (step - self.last_step) for k in sums}
            log(f"step {step}/{steps}: loss {window['loss']:.4f}, train accuracy {window['accuracy']:.4f}")
            self.last_step, self.last_sums = step, sums

    return _Progress()


def _save_atomically(model, output_path):
    """Saves `model` to the `.keras` file `output_path` through a temporary file in the same directory, so that
    readers see the old file or the new one, never a partial one. Creates the directory."""
    directory = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=directory)
    os.close(handle)
    try:
        model.save(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; the shipped file must be world-readable.
        os.replace(temporary, output_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def train_synthetic_classifier(
    output_path=synthetic_classifier.SYNTHETIC_CLASSIFIER_PATH,
    steps=2000,
    batch_size=64,
    seed=0,
    image_size=32,
    *,
    learning_rate=2e-3,
    noise_stddev=0.1,
    widths=synthetic_classifier.DEFAULT_WIDTHS,
    eval_examples=None,
    min_accuracy=None,
    log_every=100,
    log_fn=None,
):
    """Trains the synthetic-domain classifier, measures it on held-out images and saves it.

    Training reads the synthetic 'train' stream of `seed` with random flips and mild noise (see `_augment`),
    minimising softmax cross-entropy with Adam and a cosine learning-rate decay. Accuracy is measured on the
    'test' split, which no training stream contains.

    Args:
        output_path: `.keras` file to write (replaced atomically; the directory is created).
        steps: optimizer steps.
        batch_size: images per step.
        seed: weight initialisation, augmentation and training stream.
        image_size: side length of the training images and of the model's input.
        learning_rate: peak Adam learning rate.
        noise_stddev: largest standard deviation of the additive Gaussian noise (0: no noise).
        widths: channels per stage, see `synthetic_classifier.build_synthetic_classifier`.
        eval_examples: held-out test images to measure accuracy on (None: all 10,240).
        min_accuracy: when given, a model less accurate than this is not saved and
            `InsufficientAccuracyError` is raised.
        log_every: steps between progress reports.
        log_fn: called with one progress line at a time (None: silent).

    Returns:
        The held-out accuracy, a float in [0, 1].

    Raises:
        UsageError: a non-positive `steps`, `batch_size` or `log_every`, or an `output_path` not ending in .keras.
        InsufficientAccuracyError: the accuracy is below `min_accuracy`; nothing was written.
    """
    import keras
    import tensorflow as tf

    from sagan_tf.data import synthetic

    _check_positive_int("steps", steps)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("log_every", log_every)
    if not str(output_path).endswith(".keras"):
        raise UsageError(f"The classifier is saved as a .keras file; pass a path ending in .keras. "
                         f"Received: output_path={output_path!r}")
    log = log_fn or (lambda line: None)

    keras.utils.set_random_seed(seed)
    model = synthetic_classifier.build_synthetic_classifier(image_size, synthetic.NUM_CLASSES, widths)
    # Train through a logits-only view of the same layers: no loss is attached to the features output.
    trainer = keras.Model(model.inputs, model.outputs[1])
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.02)
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    dataset = synthetic.load("train", image_size, batch_size, random_flip=True, seed=seed)
    if noise_stddev > 0:
        augment_seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, augment_seeds).map(
            lambda batch, s: _augment(*batch, s, noise_stddev),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
                callbacks=[_progress_callback(steps, log_every, log)])

    accuracy = synthetic_classifier.evaluate_accuracy(model, image_size, eval_examples)
    where = "all" if eval_examples is None else f"the first {eval_examples}"
    log(f"held-out accuracy on {where} synthetic test images: {accuracy:.4f}")
    if min_accuracy is not None and accuracy < min_accuracy:
        raise InsufficientAccuracyError(
            f"The trained classifier reached {accuracy:.4f} accuracy on held-out synthetic test images, below "
            f"the required {min_accuracy}, so it was not written to {output_path!r}. Train longer (more "
            f"--steps), or lower --min_accuracy if a weaker classifier is really wanted. "
            f"Received: steps={steps}, min_accuracy={min_accuracy}"
        )
    _save_atomically(model, output_path)
    log(f"saved {output_path} ({os.path.getsize(output_path)} bytes)")
    return accuracy


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    start = time.time()

    def log(line):
        print(f"[{time.time() - start:7.1f}s] {line}", flush=True)

    accuracy = train_synthetic_classifier(
        values.output, values.steps, values.batch_size, values.seed, learning_rate=values.learning_rate,
        eval_examples=values.eval_examples, min_accuracy=values.min_accuracy, log_every=values.log_every,
        log_fn=log)
    print(f"held-out accuracy: {accuracy:.4f}; wrote {values.output} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
