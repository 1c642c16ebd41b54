"""The classifier interface of the metrics: images in [-1, 1] -> (pool features, logits)."""

import hashlib
import re

import numpy as np

#: How `Classifier.preprocess` resizes images whose size differs from the network's input (recorded in provenance).
RESIZE_METHOD = "bilinear (tf.image.resize, no antialiasing)"


def _tf():
    import tensorflow as tf

    return tf


class Classifier:
    """Wraps a network that maps images to (pool features, logits), e.g. TF-GAN's Inception.

    Images of any size, in [-1, 1], NHWC, are resized bilinearly (`tf.image.resize`, no antialiasing,
    as TF-GAN's examples do) to the network's input size, fed in chunks of at most `batch_size`, and the
    outputs come back as float32 NumPy arrays, flattened to [n, d] and [n, num_classes]. Build one with
    `load_classifier`, or directly around any function.

    Args:
        fn: a function of one float32 [n, height, width, channels] tensor (already at `image_size`,
            values in [-1, 1]) returning `(features, logits)` as array-likes.
        image_size: the network's input size, an int or (height, width). 299 for Inception.
        classifier_id: a string naming this classifier's weights; part of the real-statistics cache key,
            so two different networks must never share an id.
        batch_size: largest number of images per call of `fn` (None: all at once).
        name: a short name of the kind of classifier ("inception", "synthetic", "domain", "keras", ...), the readable
            part of `tag`. None: "custom".
        content_hash: hex digest of the weights (e.g. of the file's bytes). None: a SHA-256 of `classifier_id`.
        card: a JSON-able dict describing how the classifier was made (a domain classifier's card), or None.
    """

    def __init__(self, fn, image_size, classifier_id, batch_size=None, name=None, content_hash=None, card=None):
        if not callable(fn):
            raise ValueError(f"`fn` must be callable. Received: fn={fn!r}")
        size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
        size = tuple(size)
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in size):
            raise ValueError(
                "`image_size` must be a positive int or a (height, width) pair of them. "
                f"Received: image_size={image_size}"
            )
        if not isinstance(classifier_id, str) or not classifier_id:
            raise ValueError(
                f"`classifier_id` must be a non-empty string. Received: classifier_id={classifier_id!r}"
            )
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
            raise ValueError(
                f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size}"
            )
        name = "custom" if name is None else name
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"`name` must be a lower-case identifier such as 'domain'. Received: name={name!r}")
        if content_hash is None:
            content_hash = hashlib.sha256(classifier_id.encode("utf-8")).hexdigest()
        if not isinstance(content_hash, str) or not re.fullmatch(r"[0-9a-f]{8,}", content_hash):
            raise ValueError("`content_hash` must be a hex digest of at least 8 digits. "
                             f"Received: content_hash={content_hash!r}")
        self.fn = fn
        self.image_size = (int(size[0]), int(size[1]))
        self.classifier_id = classifier_id
        self.batch_size = batch_size
        self.name = name
        self.content_hash = content_hash
        self.card = card

    @property
    def tag(self):
        """"<name>-<first 8 hex digits of content_hash>", e.g. "domain-1a2b3c4d": the part of every TensorBoard tag
        and JSON field of this classifier's figures, so that figures of different classifiers never share one."""
        return f"{self.name}-{self.content_hash[:8]}"

    def describe(self):
        """The classifier's identity as a JSON-able dict (the provenance of figures computed with it)."""
        return {"name": self.name, "content_hash": self.content_hash, "tag": self.tag, "id": self.classifier_id,
                "input_size": list(self.image_size), "card": self.card}

    def preprocess(self, images):
        """Checks `images` ([n, h, w, c] in [-1, 1]) and resizes them bilinearly to `image_size`."""
        tf = _tf()
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4:
            raise ValueError(
                f"`images` must be 4-D [n, height, width, channels]. Received: images.shape={images.shape}"
            )
        images = tf.cast(images, tf.float32)
        if images.shape[0] != 0:
            low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
            if low < -1.001 or high > 1.001:
                raise ValueError(
                    "`images` must be in [-1, 1] (the generator's tanh range). "
                    f"Received: images with values in [{low}, {high}]"
                )
        if tuple(images.shape[1:3]) != self.image_size:
            images = tf.image.resize(images, self.image_size, method="bilinear")
        return images

    def __call__(self, images):
        """Returns `(features, logits)`: float32 NumPy arrays [n, d] and [n, num_classes]."""
        images = self.preprocess(images)
        n = int(images.shape[0])
        step = self.batch_size or max(n, 1)
        features, logits = [], []
        for start in range(0, max(n, 1), step):
            f, l = self.fn(images[start : start + step])
            f, l = np.asarray(f, np.float32), np.asarray(l, np.float32)
            features.append(f.reshape(f.shape[0], -1))
            logits.append(l.reshape(l.shape[0], -1))
        return np.concatenate(features), np.concatenate(logits)

    def __repr__(self):
        return f"Classifier(tag={self.tag!r}, classifier_id={self.classifier_id!r}, image_size={self.image_size})"
