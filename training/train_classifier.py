r"""Trains a domain classifier, the feature extractor of FID/KID/IS/precision/recall on any dataset.

    python -m training.train_classifier                    # writes sagan_tf/metrics/assets/synthetic_classifier.keras
    python -m training.train_classifier --output=/tmp/c.keras --steps=500
    python -m training.train_classifier --dataset=folder:/data/icons --image_size=32     # any dataset, with a card

With the default --dataset=synthetic it (re)makes the classifier shipped for the embedded synthetic dataset: it
trains on the synthetic 'train' stream with mild noise, prints progress and the accuracy on the held-out 'test'
split, and writes the model only if that accuracy is at least --min_accuracy (default 0.95; else: a one-paragraph
error, exit status 2, and any existing file at --output is left untouched).
`sagan_tf.metrics.load_classifier("synthetic")` loads the shipped file.

For any other dataset (a TFDS name or folder:DIR) it trains a domain classifier (`sagan_tf.metrics.domain_classifier`)
on the dataset's train split at --image_size: on its labels, or, for an unlabelled dataset, on which of 4 rotations
was applied (`training.classifier_data` says which images are held out). It prints progress and the held-out
accuracy, refuses a classifier no better than always answering the most frequent class (or below --min_accuracy),
and writes the model with its card (dataset fingerprint, classes, image size, preprocessing, held-out accuracy,
training time) to --output, by default the cache that `--classifier=domain` of training.run and training.evaluate
reads (`$SAGAN_TF_CACHE/domain_classifiers`), so those commands then reuse it. Both kinds share one training loop
(`fit_classifier`) and one network (`sagan_tf.metrics.domain_classifier.build_domain_classifier`).
"""

import os
import tempfile
import time

from absl import flags

from sagan_tf import cli
from sagan_tf.errors import InsufficientAccuracyError, UsageError
from sagan_tf.metrics import domain_classifier, synthetic_classifier

#: The dataset whose classifier ships with the package (the default of --dataset).
SHIPPED_DATASET = "synthetic"


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("dataset", SHIPPED_DATASET, "synthetic (the shipped classifier) or any other dataset name, "
                        "e.g. folder:/data/icons or cifar10 (a domain classifier with a card).",
                        flag_values=flag_values)
    flags.DEFINE_integer("image_size", None, "Image size of a domain classifier: the size the GAN trains at. Default: "
                         "the dataset's default size (32 for synthetic).", flag_values=flag_values)
    flags.DEFINE_string("output", None, "The .keras file to write. Default: the file shipped inside the package for "
                        "synthetic; for other datasets the cache that --classifier=domain reads.",
                        flag_values=flag_values)
    flags.DEFINE_integer("steps", None, "Optimizer steps. Default: 2000 for synthetic; for other datasets 30 epochs of "
                         "the training images, between 300 and 3000.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 64, "Images per step.", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, augmentation and the training stream.",
                         flag_values=flag_values)
    flags.DEFINE_float("learning_rate", 2e-3, "Peak Adam learning rate (cosine decay over --steps).",
                       flag_values=flag_values)
    flags.DEFINE_integer("eval_examples", None, "Held-out synthetic test images to measure accuracy on. Default: all "
                         "10,240.", flag_values=flag_values)
    flags.DEFINE_float("min_accuracy", None, "Refuse to write a model with a lower held-out accuracy. Default: 0.95 "
                       "for synthetic; for other datasets only a classifier no better than always answering the most "
                       "frequent class is refused.", flag_values=flag_values)
    flags.DEFINE_integer("log_every", 100, "Steps between progress lines.", flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).",
                        flag_values=flag_values)


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


def fit_classifier(model, dataset, steps, learning_rate, log_every, log):
    """The training loop of every classifier: softmax cross-entropy on the logits, Adam with a cosine decay.

    Args:
        model: a classifier returning `[features, logits]`; it is trained through a logits-only view of its layers
            (no loss on the features).
        dataset: an infinite `tf.data.Dataset` of (images, labels) batches.
        steps: optimizer steps.
        learning_rate: peak learning rate; it decays along a cosine to 2% of it over `steps`.
        log_every: steps between progress lines (see `_progress_callback`).
        log: called with each line.
    """
    import keras

    trainer = keras.Model(model.inputs, model.outputs[1])
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.02)
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0,
                callbacks=[_progress_callback(steps, log_every, log)])


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

    domain_classifier.check_positive_int("steps", steps)
    domain_classifier.check_positive_int("batch_size", batch_size)
    domain_classifier.check_positive_int("log_every", log_every)
    if not str(output_path).endswith(".keras"):
        raise UsageError(f"The classifier is saved as a .keras file; pass a path ending in .keras. "
                         f"Received: output_path={output_path!r}")
    log = log_fn or (lambda line: None)

    keras.utils.set_random_seed(seed)
    model = synthetic_classifier.build_synthetic_classifier(image_size, synthetic.NUM_CLASSES, widths)
    dataset = synthetic.load("train", image_size, batch_size, random_flip=True, seed=seed)
    if noise_stddev > 0:
        augment_seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, augment_seeds).map(
            lambda batch, s: _augment(*batch, s, noise_stddev),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    fit_classifier(model, dataset, steps, learning_rate, log_every, log)

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


def heldout_accuracy(model, heldout):
    """Fraction of the (images, labels) batches of `heldout` that `model` ([features, logits]) classifies correctly."""
    import keras
    import numpy as np

    correct = seen = 0
    for images, labels in heldout:
        _, logits = model(images, training=False)
        correct += int(np.sum(np.argmax(keras.ops.convert_to_numpy(logits), axis=-1) == np.asarray(labels)))
        seen += int(labels.shape[0])
    if not seen:
        raise UsageError("No held-out image could be read to measure the classifier's accuracy.")
    return correct / seen


def train_domain_classifier(
    dataset,
    image_size,
    output_path=None,
    *,
    data_dir=None,
    steps=None,
    batch_size=64,
    seed=0,
    learning_rate=2e-3,
    min_accuracy=None,
    classifier_dir=None,
    log_every=100,
    log_fn=None,
):
    """Trains the domain classifier of `dataset` at `image_size`, measures it on held-out images, saves it with its
    card, and returns (path, card).

    The images, labels or rotation pretext, held-out split and augmentation are `training.classifier_data`'s; the
    network is `domain_classifier.build_domain_classifier(image_size, len(classes))`; the loop is `fit_classifier`.

    Args:
        dataset: a `sagan_tf.data` name (a TFDS name, "folder:<path>" or "synthetic") or `Dataset`.
        image_size: side length of the images (the size the GAN trains at).
        output_path: `.keras` file to write (its card goes beside it, `domain_classifier.card_path`); None: the
            cache file `domain_classifier.cache_path(classifier_dir, ...)` that `--classifier=domain` reads.
        data_dir: TFDS data directory, or the base of a relative folder path.
        steps: optimizer steps; None: `domain_classifier.default_steps` (30 epochs within [300, 3000]).
        batch_size: images per step.
        seed: weight initialisation, shuffling and augmentation.
        learning_rate: peak Adam learning rate.
        min_accuracy: refuse (write nothing) below this held-out accuracy; a classifier no better than always
            answering the most frequent class is refused in any case.
        classifier_dir: the cache directory; None: `domain_classifier.default_cache_dir()`.
        log_every: steps between progress lines.
        log_fn: called with each progress line (None: silent).

    Returns:
        (the written path, the card).

    Raises:
        DatasetError: the dataset cannot be read, or is too small (the message names the minimum).
        InsufficientAccuracyError: the classifier learned too little; nothing was written.
        UsageError: bad arguments.
    """
    import keras

    from sagan_tf import data
    from training import classifier_data

    domain_classifier.check_positive_int("image_size", image_size)
    domain_classifier.check_positive_int("batch_size", batch_size)
    domain_classifier.check_positive_int("log_every", log_every)
    if steps is not None:
        domain_classifier.check_positive_int("steps", steps)
    if output_path is not None and not str(output_path).endswith(".keras"):
        raise UsageError(f"The classifier is saved as a .keras file; pass a path ending in .keras. "
                         f"Received: output_path={output_path!r}")
    log = log_fn or (lambda line: None)
    start = time.perf_counter()
    dataset = data.resolve(dataset, data_dir)  # one scan of a folder for its fingerprint and its images
    fingerprint = dataset.fingerprint()
    if output_path is None:
        output_path = domain_classifier.cache_path(classifier_dir or domain_classifier.default_cache_dir(),
                                                   dataset.name, image_size, fingerprint)
    images = classifier_data.classifier_data(dataset, image_size, batch_size, seed)
    steps = steps or domain_classifier.default_steps(images.num_train, batch_size)
    train_size = "a stream of" if images.num_train is None else f"{images.num_train}"
    log(f"training a domain classifier of {dataset.name} at {image_size}x{image_size}: task {images.task} "
        f"({len(images.classes)} classes), {train_size} training images, {images.num_heldout} held out, "
        f"{steps} steps of {batch_size}")

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        keras.utils.set_random_seed(seed)
        model = domain_classifier.build_domain_classifier(image_size, len(images.classes))
        fit_classifier(model, images.train, steps, learning_rate, log_every, log)
        accuracy = heldout_accuracy(model, images.heldout)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    log(f"held-out accuracy {accuracy:.4f} on {images.num_heldout} images (always answering the most frequent "
        f"class: {images.majority_accuracy:.4f})")
    if accuracy <= images.majority_accuracy or (min_accuracy is not None and accuracy < min_accuracy):
        why = (f"below the required {min_accuracy}" if min_accuracy is not None and accuracy < min_accuracy else
               "no better than always answering the most frequent class")
        raise InsufficientAccuracyError(
            f"The domain classifier of {dataset.name} reached {accuracy:.4f} held-out accuracy, {why} (always "
            "answering "
            f"the most frequent class gives {images.majority_accuracy:.4f}), so its features would say little and it "
            f"was not written to {output_path}. Train longer (more --steps), use more images, or lower "
            f"--min_accuracy. Received: steps={steps}, min_accuracy={min_accuracy}")
    seconds = time.perf_counter() - start
    _save_atomically(model, output_path)
    card = domain_classifier.new_card(
        dataset.name, fingerprint, images.task, images.classes, image_size, classifier_data.PREPROCESSING,
        {"builder": "sagan_tf.metrics.domain_classifier.build_domain_classifier",
         "widths": list(domain_classifier.default_widths(image_size)), "convs_per_stage": 2,
         "feature_dim": int(model.outputs[0].shape[-1])},
        {"steps": steps, "batch_size": batch_size, "seed": seed, "learning_rate": learning_rate,
         "schedule": "cosine decay to 2%", "optimizer": "Adam", "augmentation": images.augmentation},
        images.num_train or 0, images.num_heldout, accuracy, images.majority_accuracy, seconds)
    card = domain_classifier.write_card(output_path, card)
    log(f"saved {output_path} and its card {domain_classifier.card_path(output_path)} ({seconds:.0f} s)")
    return output_path, card


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    start = time.time()

    def log(line):
        print(f"[{time.time() - start:7.1f}s] {line}", flush=True)

    if values.dataset == SHIPPED_DATASET and values.image_size in (None, 32):
        output = values.output or synthetic_classifier.SYNTHETIC_CLASSIFIER_PATH
        min_accuracy = 0.95 if values.min_accuracy is None else values.min_accuracy
        accuracy = train_synthetic_classifier(
            output, values.steps or 2000, values.batch_size, values.seed, learning_rate=values.learning_rate,
            eval_examples=values.eval_examples, min_accuracy=min_accuracy, log_every=values.log_every, log_fn=log)
        print(f"held-out accuracy: {accuracy:.4f}; wrote {output} in {time.time() - start:.0f} s")
        return 0
    from sagan_tf import data

    image_size = values.image_size or data.get_info(values.dataset, values.data_dir).default_image_size
    path, card = train_domain_classifier(
        values.dataset, image_size, values.output, data_dir=values.data_dir, steps=values.steps,
        batch_size=values.batch_size, seed=values.seed, learning_rate=values.learning_rate,
        min_accuracy=values.min_accuracy, log_every=values.log_every, log_fn=log)
    print(f"held-out accuracy: {card['heldout_accuracy']:.4f} ({card['task']}, {len(card['classes'])} classes, "
          f"{card['num_heldout']} held-out images); wrote {path} and {domain_classifier.card_path(path)} in "
          f"{time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
