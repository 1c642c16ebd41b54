"""Training a classifier of the metrics: the shipped synthetic classifier (`train_synthetic_classifier`) and the
domain classifier of any dataset (`train_domain_classifier`), with one loop (`fit_classifier`).

A domain classifier learns the dataset's labels, or, for an unlabelled dataset, which of 4 rotations was applied
(`training_data` says which images are held out). It is refused when it is no better than always answering the most
frequent class (or below `min_accuracy`), and written with its card (`card`). `python -m training.train_classifier`
is the command line over this module.
"""

import math
import os
import time

from sagan_tf.run import atomic_write
from sagan_tf.evaluation.classifiers import card as card_module
from sagan_tf.evaluation.classifiers import network, synthetic, training_data
from sagan_tf.errors import InsufficientAccuracyError, UsageError


def default_steps(num_train, batch_size, epochs=30, min_steps=300, max_steps=3000):
    """Training steps of a domain classifier: `epochs` passes over `num_train` images, within [min_steps, max_steps].

    None or an unknown `num_train` (a large TFDS split or a stream) gives `max_steps`.
    """
    if not num_train:
        return max_steps
    return int(min(max_steps, max(min_steps, math.ceil(epochs * num_train / batch_size))))


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
    with atomic_write.replacing(os.path.abspath(output_path), unique=True, suffix=".keras") as temporary:
        model.save(temporary)  # Keras wants the .keras ending


def train_synthetic_classifier(
    output_path=synthetic.SYNTHETIC_CLASSIFIER_PATH,
    steps=2000,
    batch_size=64,
    seed=0,
    image_size=32,
    *,
    learning_rate=2e-3,
    noise_stddev=0.1,
    widths=synthetic.DEFAULT_WIDTHS,
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
        widths: channels per stage, see `synthetic.build_synthetic_classifier`.
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

    from sagan_tf.data import synthetic as synthetic_data

    network.check_positive_int("steps", steps)
    network.check_positive_int("batch_size", batch_size)
    network.check_positive_int("log_every", log_every)
    if not str(output_path).endswith(".keras"):
        raise UsageError(f"The classifier is saved as a .keras file; pass a path ending in .keras. "
                         f"Received: output_path={output_path!r}")
    log = log_fn or (lambda line: None)

    keras.utils.set_random_seed(seed)
    model = synthetic.build_synthetic_classifier(image_size, synthetic_data.NUM_CLASSES, widths)
    dataset = synthetic_data.load("train", image_size, batch_size, random_flip=True, seed=seed)
    if noise_stddev > 0:
        augment_seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, augment_seeds).map(
            lambda batch, s: _augment(*batch, s, noise_stddev),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    fit_classifier(model, dataset, steps, learning_rate, log_every, log)

    accuracy = synthetic.evaluate_accuracy(model, image_size, eval_examples)
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
    output_path,
    *,
    steps=None,
    batch_size=64,
    seed=0,
    learning_rate=2e-3,
    min_accuracy=None,
    log_every=100,
    log_fn=None,
):
    """Trains the domain classifier of `dataset` at `image_size`, measures it on held-out images, saves it with its
    card, and returns (path, card).

    The images, labels or rotation pretext, held-out split and augmentation are `training_data.classifier_data`'s;
    the network is `network.build_domain_classifier(image_size, len(classes))`; the loop is `fit_classifier`.

    Args:
        dataset: a `sagan_tf.data.Dataset` (`data.resolve` of a TFDS name, "folder:<path>" or "synthetic"; a folder's
            scan is reused for its fingerprint and its images).
        image_size: side length of the images (the size the GAN trains at).
        output_path: `.keras` file to write (its card goes beside it, `card.card_path`); the cache file that
            `--classifier=domain` reads is `cache.cache_path(...)`.
        steps: optimizer steps; None: `default_steps` (30 epochs within [300, 3000]).
        batch_size: images per step.
        seed: weight initialisation, shuffling and augmentation.
        learning_rate: peak Adam learning rate.
        min_accuracy: refuse (write nothing) below this held-out accuracy; a classifier no better than always
            answering the most frequent class is refused in any case.
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

    network.check_positive_int("image_size", image_size)
    network.check_positive_int("batch_size", batch_size)
    network.check_positive_int("log_every", log_every)
    if steps is not None:
        network.check_positive_int("steps", steps)
    if not str(output_path).endswith(".keras"):
        raise UsageError(f"The classifier is saved as a .keras file; pass a path ending in .keras. "
                         f"Received: output_path={output_path!r}")
    log = log_fn or (lambda line: None)
    start = time.perf_counter()
    name, fingerprint = dataset.name, dataset.fingerprint()
    images = training_data.classifier_data(dataset, image_size, batch_size, seed)
    steps = steps or default_steps(images.num_train, batch_size)
    train_size = "a stream of" if images.num_train is None else f"{images.num_train}"
    log(f"training a domain classifier of {name} at {image_size}x{image_size}: task {images.task} "
        f"({len(images.classes)} classes), {train_size} training images, {images.num_heldout} held out, "
        f"{steps} steps of {batch_size}")

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        keras.utils.set_random_seed(seed)
        model = network.build_domain_classifier(image_size, len(images.classes))
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
            f"The domain classifier of {name} reached {accuracy:.4f} held-out accuracy, {why} (always "
            "answering "
            f"the most frequent class gives {images.majority_accuracy:.4f}), so its features would say little and it "
            f"was not written to {output_path}. Train longer (more --steps), use more images, or lower "
            f"--min_accuracy. Received: steps={steps}, min_accuracy={min_accuracy}")
    seconds = time.perf_counter() - start
    _save_atomically(model, output_path)
    card = card_module.new_card(
        name, fingerprint, images.task, images.classes, image_size, training_data.PREPROCESSING,
        {"builder": "sagan_tf.evaluation.classifiers.network.build_domain_classifier",
         "widths": list(network.default_widths(image_size)), "convs_per_stage": 2,
         "feature_dim": int(model.outputs[0].shape[-1])},
        {"steps": steps, "batch_size": batch_size, "seed": seed, "learning_rate": learning_rate,
         "schedule": "cosine decay to 2%", "optimizer": "Adam", "augmentation": images.augmentation},
        images.num_train or 0, images.num_heldout, accuracy, images.majority_accuracy, seconds)
    card = card_module.write_card(output_path, card)
    log(f"saved {output_path} and its card {card_module.card_path(output_path)} ({seconds:.0f} s)")
    return output_path, card


__all__ = ["default_steps", "fit_classifier", "heldout_accuracy", "train_synthetic_classifier",
           "train_domain_classifier"]
