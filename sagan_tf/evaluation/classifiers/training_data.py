"""The images a domain classifier trains on and is measured on: `classifier_data(dataset, image_size, ...)`.

- A labelled image folder: its class labels. Per class, the images whose relative paths hash lowest
  (`HELDOUT_FRACTION` of them, at least 2) are held out; the split depends only on the file names, so it stays the
  same when images are added elsewhere. Every class needs `MIN_IMAGES_PER_CLASS` images.
- An unlabelled folder, celeb_a, lsun/*: the rotation pretext (Gidaris et al., ICLR 2018): each image is rotated by
  0, 90, 180 or 270 degrees and the label is which; held-out images are measured at all four rotations. A folder
  needs `MIN_UNLABELLED_IMAGES` images.
- A labelled TFDS dataset (cifar10, imagenet2012): the "train" split, measured on (the first `MAX_HELDOUT` images
  of) its "test" split (the validation split where there is no test split).
- synthetic: the training stream of the seed, measured on the first `MAX_HELDOUT` images of the "test" split.

Training images get random horizontal flips and random translations of up to 1/8 of the side (reflect-padded
crops); held-out images are used as they are. Preprocessing is the GAN's (`sagan_tf.data.preprocessing`: largest
central square, antialiased bilinear resize, [-1, 1]).
"""

import dataclasses
import hashlib
import os
from typing import Any, Tuple

import numpy as np
import tensorflow as tf

from sagan_tf import data
from sagan_tf.data import preprocessing
from sagan_tf.errors import DatasetError

# tf.data's autotuning thread can hold up the end of `fit` for up to a minute (as for every GAN input pipeline).
_without_autotune = preprocessing.without_autotune

#: A labelled folder needs at least this many images in every class (some are held out to measure accuracy).
MIN_IMAGES_PER_CLASS = 10
#: An unlabelled folder (rotation pretext) needs at least this many images.
MIN_UNLABELLED_IMAGES = 40
#: The pretext task of unlabelled datasets: these rotations, in degrees counter-clockwise.
ROTATIONS = ("0", "90", "180", "270")
#: Share of each class held out to measure accuracy.
HELDOUT_FRACTION = 0.15
#: Held-out images used at most (TFDS test splits and the synthetic test split are larger than needed).
MAX_HELDOUT = 5000
#: Decoded folder images are kept in memory when they take less than this (bytes).
CACHE_LIMIT_BYTES = 1 << 30
PREPROCESSING = ("largest central square crop, antialiased bilinear resize to the image size, values in [-1, 1] "
                 "(sagan_tf.data.preprocessing, as for GAN training); images of another size are resized to the "
                 "classifier's input bilinearly by sagan_tf.evaluation.classifiers.Classifier")


@dataclasses.dataclass
class ClassifierData:
    """What `classifier_data` returns.

    Attributes:
      train: an infinite `tf.data.Dataset` of augmented (images, labels) batches.
      heldout: a finite `tf.data.Dataset` of (images, labels) batches, never trained on.
      task: "labels" or "rotation".
      classes: the class names (for "rotation": `ROTATIONS`).
      num_train: images trained on (None for a stream or a large TFDS split).
      num_heldout: held-out examples (rotated copies counted).
      majority_accuracy: the held-out accuracy of always answering the most frequent training class.
      augmentation: a description of the training augmentation.
    """

    train: Any
    heldout: Any
    task: str
    classes: Tuple[str, ...]
    num_train: Any
    num_heldout: int
    majority_accuracy: float
    augmentation: str


def _hash_order(path, root):
    return hashlib.sha256(os.path.relpath(path, root).encode("utf-8")).hexdigest()


def split_folder(files, labels, root, fraction=HELDOUT_FRACTION, minimum=2):
    """Splits a folder's images into (train, held-out) lists of (file, label), per label, by hash of the path.

    Args:
        files: image paths.
        labels: their labels (one group per label).
        root: the folder, to hash paths relative to it.
        fraction: share of each group held out.
        minimum: fewest held-out images per group.

    Returns:
        (train, heldout): lists of (file, label) pairs, each sorted by file.
    """
    groups = {}
    for file, label in zip(files, labels):
        groups.setdefault(label, []).append(file)
    train, heldout = [], []
    for label, group in sorted(groups.items()):
        ordered = sorted(group, key=lambda f: _hash_order(f, root))
        count = max(minimum, int(round(fraction * len(ordered))))
        heldout += [(f, label) for f in ordered[:count]]
        train += [(f, label) for f in ordered[count:]]
    return sorted(train), sorted(heldout)


def _check_folder_size(path, files, labels, classes):
    if classes:
        counts = np.bincount(labels, minlength=len(classes))
        small = [f"{name} ({count})" for name, count in zip(classes, counts) if count < MIN_IMAGES_PER_CLASS]
        if small:
            raise DatasetError(
                f"The image folder {path} is too small to train a domain classifier: class folder(s) "
                f"{', '.join(small)} hold fewer than the minimum of {MIN_IMAGES_PER_CLASS} images per class (some "
                "are held out to measure its accuracy). Add images to those classes, or move them out of the folder. "
                f"Received: {len(files)} images in {len(classes)} classes")
    elif len(files) < MIN_UNLABELLED_IMAGES:
        raise DatasetError(
            f"The image folder {path} is too small to train a domain classifier: it holds {len(files)} images and "
            f"the minimum for an unlabelled folder (rotation pretext) is {MIN_UNLABELLED_IMAGES}. Add images. "
            f"Received: {len(files)} images")


def load_image(file, image_size):
    """The image file `file` center-cropped and resized to `image_size`, in [-1, 1] (what a classifier learns from)."""
    image = preprocessing.center_crop_and_resize(preprocessing.decode_image(tf.io.read_file(file)), image_size)
    return preprocessing.to_signed_range(image)


def _rotate(images, turns):
    """Rotates each image of a square batch [n, s, s, c] by turns[i] * 90 degrees counter-clockwise."""
    options = tf.stack([tf.image.rot90(images, k) for k in range(len(ROTATIONS))])  # [4, n, s, s, c]
    return tf.gather(tf.transpose(options, [1, 0, 2, 3, 4]), turns, batch_dims=1)


def _augment(images, labels, seed, image_size, rotation):
    """Random flips and translations (reflect padding, up to image_size // 8), then the pretext's rotation."""
    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    flip = tf.random.stateless_uniform([n, 1, 1, 1], seeds[0]) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    shift = max(1, image_size // 8)
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([n, 2], seeds[1], maxval=2 * shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(image_size)[None, :]
    cols = offsets[:, 1:] + tf.range(image_size)[None, :]
    images = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if rotation:
        labels = tf.random.stateless_uniform([n], seeds[2], maxval=len(ROTATIONS), dtype=tf.int32)
        images = _rotate(images, labels)
    return images, labels


def augmented_batches(batches, image_size, rotation, seed):
    """`batches` of (images, labels) with the classifier's seeded training augmentation (and, with `rotation`, the
    rotation pretext of an unlabelled dataset)."""
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return tf.data.Dataset.zip(batches, seeds).map(
        lambda batch, s: _augment(batch[0], batch[1], s, image_size, rotation), num_parallel_calls=2)


def _all_rotations(images, labels):
    """Each held-out image at the four rotations, labelled with the rotation."""
    n = tf.shape(images)[0]
    rotated = tf.concat([tf.image.rot90(images, k) for k in range(len(ROTATIONS))], axis=0)
    return rotated, tf.repeat(tf.range(len(ROTATIONS), dtype=tf.int32), n)


def _majority(train_labels, heldout_labels):
    if len(heldout_labels) == 0:
        return 0.0
    most = np.bincount(train_labels).argmax() if len(train_labels) else 0
    return float(np.mean(np.asarray(heldout_labels) == most))


def _folder_data(dataset, image_size, batch_size, seed):
    scanned = dataset.folder_scan
    path, files, labels, classes = scanned.path, list(scanned.files), list(scanned.labels), scanned.class_names
    _check_folder_size(path, files, labels, classes)
    rotation = not classes
    train, heldout = split_folder(files, labels, path, minimum=2 if classes else 4)
    decoded_bytes = len(files) * image_size * image_size * 3 * 4

    def images_of(pairs):
        dataset = tf.data.Dataset.from_tensor_slices(([f for f, _ in pairs], [l for _, l in pairs]))
        dataset = dataset.map(lambda f, l: (load_image(f, image_size), tf.cast(l, tf.int32)), num_parallel_calls=2)
        dataset = dataset.ignore_errors(log_warning=True)
        return dataset.cache() if decoded_bytes < CACHE_LIMIT_BYTES else dataset

    train_set = images_of(train).shuffle(len(train), seed=seed, reshuffle_each_iteration=True).repeat()
    train_set = augmented_batches(train_set.batch(min(batch_size, len(train)), drop_remainder=True), image_size,
                                  rotation, seed)
    heldout_set = images_of(heldout).batch(256)
    if rotation:
        heldout_set = heldout_set.map(_all_rotations)
        return ClassifierData(_without_autotune(train_set.prefetch(2)), _without_autotune(heldout_set), "rotation",
                              ROTATIONS, len(train), 4 * len(heldout), 1.0 / len(ROTATIONS),
                              _AUGMENTATION + _ROTATION_NOTE)
    train_labels = [l for _, l in train]
    heldout_labels = [l for _, l in heldout]
    return ClassifierData(_without_autotune(train_set.prefetch(2)), _without_autotune(heldout_set), "labels",
                          tuple(classes), len(train), len(heldout), _majority(train_labels, heldout_labels),
                          _AUGMENTATION)


_AUGMENTATION = ("random horizontal flips and random translations of up to 1/8 of the side (reflect padding); "
                 "batches drawn from the shuffled training images, repeated")
_ROTATION_NOTE = "; then a random rotation by 0, 90, 180 or 270 degrees, whose index is the label"


def _stream_data(dataset, image_size, batch_size, seed):
    info = dataset.info
    rotation = not info.conditional
    train = data.load(dataset, "train", image_size=image_size, batch_size=batch_size, shuffle=True, random_flip=False,
                      repeat=True, seed=seed)
    train = augmented_batches(train, image_size, rotation, seed)
    test_split = "test" if "test" in info.splits else "validation"
    heldout = data.load(dataset, test_split, image_size=image_size, batch_size=250, shuffle=False, random_flip=False,
                        repeat=False).take(MAX_HELDOUT // 250)
    classes = ROTATIONS if rotation else tuple(info.class_names or (str(c) for c in range(info.num_classes)))
    if rotation:
        heldout = heldout.map(_all_rotations)
    labels = np.concatenate([b[1].numpy() for b in heldout]) if not rotation else np.zeros(0, np.int64)
    num_heldout = int(sum(int(b[1].shape[0]) for b in heldout)) if rotation else len(labels)
    majority = 1.0 / len(ROTATIONS) if rotation else float(np.bincount(labels).max() / max(len(labels), 1))
    return ClassifierData(_without_autotune(train.prefetch(2)), heldout, "rotation" if rotation else "labels", classes,
                          None, num_heldout, majority, _AUGMENTATION.replace(", repeated", "") +
                          (_ROTATION_NOTE if rotation else ""))


def classifier_data(dataset, image_size, batch_size=64, seed=0):
    """The training and held-out images of a domain classifier of `dataset` at `image_size` (module docstring).

    Args:
        dataset: a `sagan_tf.data.Dataset` (`data.resolve`; a folder's scan is reused).
        image_size: side length of the images.
        batch_size: images per training batch (a folder with fewer training images uses that many).
        seed: seed of the shuffling and augmentation.

    Returns:
        A `ClassifierData`.

    Raises:
        DatasetError: a missing dataset, or a folder too small to train a classifier (the message names the
            minimum).
    """
    preprocessing.check_image_size(image_size, dataset=dataset.name)
    if dataset.source == "folder":
        return _folder_data(dataset, image_size, batch_size, seed)
    return _stream_data(dataset, image_size, batch_size, seed)


__all__ = ["ClassifierData", "classifier_data", "split_folder", "HELDOUT_FRACTION", "MAX_HELDOUT", "PREPROCESSING",
           "MIN_IMAGES_PER_CLASS", "MIN_UNLABELLED_IMAGES", "ROTATIONS"]
