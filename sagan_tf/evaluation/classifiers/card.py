"""A domain classifier's card: what it was trained on and how, written beside its `.keras` file when it is trained.

Each classifier file `<name>.keras` has a card `<name>.card.json` (`card_path`):

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

`sagan_tf.evaluation.classifiers.load_classifier` reads the card of any `.keras` file that has one and names the
classifier "domain" (`check_file`); `sagan_tf.evaluation` refuses a domain classifier whose card names other images or
another image size (`check_card`).
"""

import datetime
import hashlib
import json
import os

from sagan_tf.run import atomic_write
from sagan_tf.evaluation.classifiers.fingerprint import describe_fingerprint, fingerprint_key
from sagan_tf.errors import ClassifierCardError

#: The card layout written by this version (also part of the cache file names, `cache.cache_path`: changing it
#: orphans every cached classifier).
CARD_FORMAT = "sagan_tf.domain_classifier/1"


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
    atomic_write.write_atomically(card_path(classifier_path), json.dumps(card, indent=1, sort_keys=True), unique=True)
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


__all__ = ["CARD_FORMAT", "file_sha256", "card_path", "new_card", "write_card", "read_card", "check_file",
           "check_card"]
