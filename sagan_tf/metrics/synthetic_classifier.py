"""The domain classifier that stands in for Inception on the embedded `synthetic` dataset.

Inception's weights cannot be had offline, and its ImageNet features say little about four classes of drawn
scenes anyway. FID and IS of a model trained on `synthetic` (Heusel et al. 2017; Salimans et al. 2016) are
therefore computed with this small CNN, trained by `python -m training.train_classifier` and shipped inside
the package at `SYNTHETIC_CLASSIFIER_PATH`; `load_classifier("synthetic")` loads it.

The network is a plain Keras functional model made of `keras.layers` only, so the `.keras` file loads with
any Keras 3 backend and without importing sagan_tf:

    images [n, 32, 32, 3] in [-1, 1]
      -> 3 stages of (3x3 conv, batch norm, ReLU) x 2, 2x2 max-pool between stages (widths 32, 64, 128)
      -> global average pooling                 -> "features" [n, 128]   (what FID and KID compare)
      -> dense                                  -> "logits"   [n, 4]     (what IS uses)

The features are the pooled ReLU activations of the last stage, not a low-dimensional bottleneck, so they
describe more than the class: colours, sizes, positions and the sharpness of edges all move them.
"""

import os
import tempfile

from sagan_tf.errors import InsufficientAccuracyError, UsageError

#: Where the shipped classifier lives inside the installed package.
SYNTHETIC_CLASSIFIER_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "assets", "synthetic_classifier.keras"
)
#: Input side length of the shipped classifier; other sizes are resized to it by `Classifier`.
SYNTHETIC_CLASSIFIER_IMAGE_SIZE = 32
#: Dimension of the feature vector (the first output) of the shipped classifier.
SYNTHETIC_FEATURE_DIM = 128
DEFAULT_WIDTHS = (32, 64, SYNTHETIC_FEATURE_DIM)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def build_synthetic_classifier(image_size=32, num_classes=4, widths=DEFAULT_WIDTHS, convs_per_stage=2):
    """Builds the (untrained) synthetic-domain classifier.

    Args:
        image_size: input side length (a multiple of 4, so that the two 2x2 poolings divide it evenly).
        num_classes: number of logits.
        widths: channels of each stage; the last one is the feature dimension. A max-pool halves the
            resolution between consecutive stages.
        convs_per_stage: 3x3 convolutions (each followed by batch norm and ReLU) per stage.

    Returns:
        A functional `keras.Model` named "synthetic_classifier" mapping images [n, image_size, image_size, 3]
        in [-1, 1] to `[features, logits]`, float32 [n, widths[-1]] and [n, num_classes].
    """
    import keras

    _check_positive_int("image_size", image_size)
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("convs_per_stage", convs_per_stage)
    widths = tuple(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"`widths` must be a non-empty sequence of positive integers. Received: widths={widths}")
    if image_size % 2 ** (len(widths) - 1):
        raise ValueError(
            f"`image_size` must be divisible by 2**(len(widths) - 1) = {2 ** (len(widths) - 1)}. "
            f"Received: image_size={image_size}"
        )

    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    for stage, width in enumerate(widths):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for k in range(convs_per_stage):
            name = f"stage{stage + 1}_conv{k + 1}"
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=name)(x)
            # Momentum 0.9, not Keras's 0.99: the moving statistics must follow weights that change fast
            # in a short training run (with 0.99 a 200-step run was 100% accurate in training mode and
            # ~50% in inference mode).
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(images, [features, logits], name="synthetic_classifier")


def _augment(images, labels, seed, noise_stddev):
    """Additive Gaussian noise with a per-image strength in [0, noise_stddev), clipped back to [-1, 1].

    Keeps the features from hanging on the dataset's perfectly flat colours, which no generator reproduces.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    strength = tf.random.stateless_uniform([n, 1, 1, 1], seed, maxval=noise_stddev)
    noise = tf.random.stateless_normal(tf.shape(images), seed + 1) * strength
    return tf.clip_by_value(images + noise, -1.0, 1.0), labels


def evaluate_accuracy(model, image_size=32, num_examples=None, batch_size=256):
    """Fraction of the synthetic 'test' split (its first `num_examples`, default all) classified correctly.

    Args:
        model: a model returning `[features, logits]` (e.g. `build_synthetic_classifier()`).
        image_size: side length of the test images (the model's input size).
        num_examples: how many test images to use (None: the whole split, 10,240).
        batch_size: images per batch.

    Returns:
        The accuracy as a Python float.
    """
    import keras
    import numpy as np

    from sagan_tf.data import synthetic

    total = synthetic.TEST_SIZE if num_examples is None else min(num_examples, synthetic.TEST_SIZE)
    correct = seen = 0
    for start in range(0, total, batch_size):
        indices = np.arange(start, min(start + batch_size, total))
        images, labels = synthetic.generate(indices, image_size, "test")
        _, logits = model(images, training=False)
        predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        seen += len(indices)
    return correct / seen


def train_synthetic_classifier(
    output_path=SYNTHETIC_CLASSIFIER_PATH,
    steps=2000,
    batch_size=64,
    seed=0,
    image_size=32,
    *,
    learning_rate=2e-3,
    noise_stddev=0.1,
    widths=DEFAULT_WIDTHS,
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
        widths: channels per stage, see `build_synthetic_classifier`.
        eval_examples: held-out test images to measure accuracy on (None: all 10,240).
        min_accuracy: when given, a model less accurate than this is not saved and
            `InsufficientAccuracyError` is raised.
        log_every: steps between progress reports.
        log_fn: called with one progress line at a time (None: silent).

    Returns:
        The held-out accuracy, a float in [0, 1].

    Raises:
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
    model = build_synthetic_classifier(image_size, synthetic.NUM_CLASSES, widths)
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

    class _Progress(keras.callbacks.Callback):
        """Every `log_every` steps: loss and accuracy averaged over the steps since the last report."""

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

    trainer.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[_Progress()])

    accuracy = evaluate_accuracy(model, image_size, eval_examples)
    where = "all" if eval_examples is None else f"the first {eval_examples}"
    log(f"held-out accuracy on {where} synthetic test images: {accuracy:.4f}")
    if min_accuracy is not None and accuracy < min_accuracy:
        raise InsufficientAccuracyError(
            f"The trained classifier reached {accuracy:.4f} accuracy on held-out synthetic test images, below "
            f"the required {min_accuracy}, so it was not written to {output_path!r}. Train longer (more "
            f"--steps), or lower --min_accuracy if a weaker classifier is really wanted. "
            f"Received: steps={steps}, min_accuracy={min_accuracy}"
        )
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
    log(f"saved {output_path} ({os.path.getsize(output_path)} bytes)")
    return accuracy
