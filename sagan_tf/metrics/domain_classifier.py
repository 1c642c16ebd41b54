"""Domain classifiers: a small CNN trained on a dataset's own images, the feature extractor of FID/KID/IS/precision/
recall wherever TF-GAN's Inception is not available (offline) or says little (images far from ImageNet).

    python -m training.train_classifier --dataset=folder:/data/icons --image_size=32    # trains, caches, writes card
    python -m training.run --dataset=folder:/data/icons --image_size=32 --classifier=domain

The network (`build_domain_classifier`) is the architecture of the shipped synthetic classifier, with as many
stages as bring the image down to 8x8: stages of (3x3 conv, batch norm, ReLU) x 2 with a 2x2 max-pool between
them, global average pooling -> "features" (the penultimate layer: what FID, KID and precision/recall compare, as
Inception's pool_3) -> dense -> "logits" (what the Inception Score uses, as Inception's logits). It is a plain
Keras functional model, saved as a `.keras` file; the training loop lives in `training/train_classifier.py`.

What it learns: the dataset's labels when it has classes; for an unlabelled dataset, a self-supervised pretext
(Gidaris et al., ICLR 2018): which of 4 rotations (0, 90, 180, 270 degrees) was applied. Its logits are then
rotation logits, so its Inception Score only says how confidently upright images look (close to 1 for upright
images); FID, KID, precision and recall use the features and keep their meaning.

Each classifier file `<name>.keras` has a card `<name>.card.json` (`card_path`), written when it is trained:

    format               CARD_FORMAT
    dataset, fingerprint the dataset name and `dataset_fingerprint` of its images
    task, classes        "labels" (the class names) or "rotation" (["0", "90", "180", "270"])
    image_size           the input size it was trained at (the dataset's images at the GAN's resolution)
    preprocessing        how images reach it
    architecture, training   widths; steps, batch size, seed, learning rate, augmentation
    num_train, num_heldout   images it trained on and images held out
    heldout_accuracy, majority_accuracy   accuracy on the held-out images, and that of always answering the most
                         frequent class (what a classifier that learned nothing gets)
    training_seconds, created
    classifier_sha256    SHA-256 of the .keras file: a file that does not match its card is refused (corrupt or
                         replaced)

`sagan_tf.metrics.load_classifier` reads the card of any `.keras` file that has one and names the classifier
"domain"; `sagan_tf.evaluation` refuses a domain classifier whose card names other images or another image size
(`check_card`). Trained classifiers are cached per (dataset fingerprint, image size) in `default_cache_dir()`
(`cache_path`).
"""

import datetime
import hashlib
import json
import math
import os
import re
import tempfile

from sagan_tf.errors import ClassifierCardError, UsageError
from sagan_tf.metrics.fingerprint import describe_fingerprint, fingerprint_key

#: The card layout written by this version.
CARD_FORMAT = "sagan_tf.domain_classifier/1"
#: A labelled folder needs at least this many images in every class (some are held out to measure accuracy).
MIN_IMAGES_PER_CLASS = 10
#: An unlabelled folder (rotation pretext) needs at least this many images.
MIN_UNLABELLED_IMAGES = 40
#: The pretext task of unlabelled datasets: these rotations, in degrees counter-clockwise.
ROTATIONS = ("0", "90", "180", "270")
#: Environment variable of the cache root (shared with the real statistics: `$SAGAN_TF_CACHE/domain_classifiers`).
CACHE_ENV = "SAGAN_TF_CACHE"
_WIDTHS = (32, 64, 128, 128, 128, 128)
_FEATURE_STAGE_SIZE = 8


def default_cache_dir():
    """Where trained domain classifiers are cached: `$SAGAN_TF_CACHE/domain_classifiers`, else
    `~/.cache/sagan_tf/domain_classifiers` (beside the real statistics, `real_stats/`)."""
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "sagan_tf")
    return os.path.join(base, "domain_classifiers")


def default_widths(image_size):
    """Stage widths for `image_size`: one stage per halving down to 8x8 (3 stages at 32x32, 4 at 64x64), at most 6.

    Returns:
        A tuple of widths, starting (32, 64, 128, ...); the last one (128 from 32x32 up) is the feature dimension.
    """
    stages = 1
    size = image_size
    while size % 2 == 0 and size // 2 >= _FEATURE_STAGE_SIZE and stages < len(_WIDTHS):
        size //= 2
        stages += 1
    return _WIDTHS[:stages]


def check_positive_int(name, value):
    """`value` when it is an int >= 1 (not a bool); else a UsageError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def build_domain_classifier(image_size, num_classes, widths=None, convs_per_stage=2, name="domain_classifier"):
    """Builds an (untrained) domain classifier.

    Args:
        image_size: input side length, divisible by 2**(len(widths) - 1).
        num_classes: number of logits.
        widths: channels of each stage (None: `default_widths(image_size)`); the last one is the feature dimension.
            A 2x2 max-pool halves the resolution between consecutive stages.
        convs_per_stage: 3x3 convolutions (each followed by batch norm and ReLU) per stage.
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping images [n, image_size, image_size, 3] in [-1, 1] to `[features, logits]`,
        float32 [n, widths[-1]] and [n, num_classes].
    """
    import keras

    check_positive_int("image_size", image_size)
    check_positive_int("num_classes", num_classes)
    check_positive_int("convs_per_stage", convs_per_stage)
    widths = default_widths(image_size) if widths is None else tuple(widths)
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
            layer = f"stage{stage + 1}_conv{k + 1}"
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=layer)(x)
            # Momentum 0.9, not Keras's 0.99: the moving statistics must follow weights that change fast in a short
            # training run (with 0.99 a 200-step run was 100% accurate in training mode and ~50% in inference mode).
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{layer}_bn")(x)
            x = keras.layers.ReLU(name=f"{layer}_relu")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(images, [features, logits], name=name)


def file_sha256(path):
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path(classifier_path):
    """The card of a classifier file: `<name>.keras` -> `<name>.card.json`."""
    path = os.fspath(classifier_path)
    return (path[: -len(".keras")] if path.endswith(".keras") else path) + ".card.json"


def cache_path(directory, dataset, image_size, fingerprint):
    """The `.keras` file of the cached domain classifier of these images at `image_size`.

    The name is readable (dataset and size) plus the first 16 hex digits of a SHA-256 of the fingerprint's
    identifying part (`fingerprint_key`), the image size and `CARD_FORMAT`.
    """
    key = json.dumps({"fingerprint": fingerprint_key(fingerprint), "image_size": int(image_size),
                      "format": CARD_FORMAT}, sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9._]+", "_", os.path.basename(dataset.rstrip("/")) or dataset).strip("_")[:60]
    return os.path.join(directory, f"{readable}-{int(image_size)}-{digest}.keras")


def new_card(dataset, fingerprint, task, classes, image_size, preprocessing, architecture, training, num_train,
             num_heldout, heldout_accuracy, majority_accuracy, training_seconds):
    """A card (see the module docstring) without `classifier_sha256`, which `write_card` adds."""
    return {
        "format": CARD_FORMAT,
        "dataset": dataset,
        "fingerprint": fingerprint,
        "task": task,
        "classes": list(classes),
        "image_size": int(image_size),
        "preprocessing": preprocessing,
        "architecture": architecture,
        "training": training,
        "num_train": int(num_train),
        "num_heldout": int(num_heldout),
        "heldout_accuracy": float(heldout_accuracy),
        "majority_accuracy": float(majority_accuracy),
        "training_seconds": float(training_seconds),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_card(classifier_path, card):
    """Writes `card` plus the classifier file's SHA-256 to `card_path(classifier_path)`, atomically; returns it."""
    card = {**card, "classifier_sha256": file_sha256(classifier_path)}
    path = card_path(classifier_path)
    handle, temporary = tempfile.mkstemp(suffix=".json", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(card, file, indent=1, sort_keys=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return card


def read_card(classifier_path):
    """The card of `classifier_path`, or None when it has none.

    Raises:
        ClassifierCardError: the card exists but is not a readable card of this format.
    """
    path = card_path(classifier_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            card = json.load(handle)
    except (OSError, ValueError) as error:
        raise ClassifierCardError(
            f"The classifier card {path} cannot be read ({type(error).__name__}: {error}). Delete it and the "
            f"classifier beside it ({classifier_path}) and train again with `python -m training.train_classifier`, "
            "or restore both from a backup.") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ClassifierCardError(
            f"{path} is not a domain classifier card of format {CARD_FORMAT!r}; train the classifier again with "
            "`python -m training.train_classifier`. Received: format="
            f"{card.get('format') if isinstance(card, dict) else type(card).__name__!r}")
    return card


def check_file(card, classifier_path, digest=None):
    """Refuses a classifier file whose bytes are not the ones its card was written for.

    Raises:
        ClassifierCardError: naming the file and how to replace it.
    """
    digest = digest or file_sha256(classifier_path)
    if card.get("classifier_sha256") != digest:
        raise ClassifierCardError(
            f"The classifier file {classifier_path} does not match its card {card_path(classifier_path)} (SHA-256 "
            f"{digest[:16]}... instead of {str(card.get('classifier_sha256'))[:16]}...): it is corrupt or was "
            "replaced. Delete both files and train it again (`python -m training.train_classifier "
            f"--dataset={card.get('dataset')} --image_size={card.get('image_size')}`, or run the command with "
            "--classifier=domain, which trains it when it is missing).")


def check_card(card, fingerprint, image_size, where):
    """Refuses a domain classifier trained on other images or at another image size.

    Args:
        card: the classifier's card.
        fingerprint: `dataset_fingerprint` of the dataset being evaluated.
        image_size: the size of the images being evaluated (the generator's output size).
        where: the classifier's location, for the message.

    Raises:
        ClassifierCardError: naming both datasets or sizes and what to do.
    """
    if fingerprint_key(card.get("fingerprint") or {}) != fingerprint_key(fingerprint):
        raise ClassifierCardError(
            f"The domain classifier {where} was trained on other images than the dataset being evaluated: its card "
            f"names {describe_fingerprint(card.get('fingerprint') or {})} ({card.get('dataset')}), the dataset is "
            f"{describe_fingerprint(fingerprint)}. Pass --classifier=domain to use (and train once) the classifier of "
            "this dataset, or evaluate the dataset the classifier was trained on.")
    if int(card.get("image_size", -1)) != int(image_size):
        raise ClassifierCardError(
            f"The domain classifier {where} was trained on {card.get('image_size')}x{card.get('image_size')} images, "
            f"not on the {image_size}x{image_size} images being evaluated. Pass --classifier=domain to use (and "
            f"train once) the classifier of this image size. Received: image_size={image_size}")


def default_steps(num_train, batch_size, epochs=30, min_steps=300, max_steps=3000):
    """Training steps of a domain classifier: `epochs` passes over `num_train` images, within [min_steps, max_steps].

    None or an unknown `num_train` (a large TFDS split or a stream) gives `max_steps`.
    """
    if not num_train:
        return max_steps
    return int(min(max_steps, max(min_steps, math.ceil(epochs * num_train / batch_size))))


__all__ = ["CARD_FORMAT", "MIN_IMAGES_PER_CLASS", "MIN_UNLABELLED_IMAGES", "ROTATIONS", "default_cache_dir",
           "default_widths", "build_domain_classifier", "file_sha256", "card_path", "cache_path", "new_card",
           "write_card", "read_card", "check_file", "check_card", "default_steps", "check_positive_int"]
