"""The embedded default dataset: four classes of procedurally drawn scenes with long-range structure.

SAGAN's claim (Zhang et al. 2019, Section 1) is that self-attention helps where distant parts of an image
must agree. Every class here is defined by such an agreement, so a small model shows the difference in
minutes on a CPU:

    0 "mirror_pair"  two identical discs or squares (same size, shape and colour) at mirror positions
                     about the vertical centre line: the whole image is exactly left-right symmetric.
    1 "bar_markers"  a thick bar at any angle whose two ends carry identical round markers in a second
                     colour (the complement of the bar's hue).
    2 "ring_centre"  a ring with a dot of the ring's colour exactly at its centre.
    3 "stripes"      parallel stripes with a single orientation, period and phase across the whole image.

Colours, positions, sizes and angles are random within each class; the background is one flat colour
whose brightness is opposite to the object's. Every class's distribution is invariant under a horizontal
flip, so flipping is neither needed nor harmful. Shapes are drawn with hard edges in coordinates relative
to the image side, so the same example index gives the same scene at every resolution (any multiple of 4
from 16 to 256).

Images are generated on the fly, in batches, with pure TensorFlow ops inside `tf.data`: every random
parameter of example `i` is a counter-based hash (SplitMix64) of (split, i, parameter number), so an
example depends only on its split and index — not on the batch size, the number of input pipelines or the
order of generation. Splits:

    "train"  an endless stream; with `seed=s` it starts at example s * 2**32, so different seeds read
             disjoint streams of 2**32 examples each (then repeat), and seed None means seed 0.
    "test"   a fixed set of TEST_SIZE = 10,240 examples (exactly 2,560 per class) drawn from a different
             hash stream than "train"; it ignores `seed`, so every run evaluates on the same images.

Labels are balanced exactly in every aligned block of 4 consecutive indices (a random permutation of the
4 classes per block).
"""

import math

import tensorflow as tf

from sagan_tf.data import preprocessing
from sagan_tf.errors import DatasetError

NUM_CLASSES = 4
CLASS_NAMES = ("mirror_pair", "bar_markers", "ring_centre", "stripes")
SPLITS = ("train", "test")
TEST_SIZE = 10_240
TRAIN_STREAM_SIZE = 2**32
DEFAULT_IMAGE_SIZE = 32
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256

_SPLIT_SALTS = {"train": 0x2545F4914F6CDD1D, "test": 0x7A3C9E1B5D0F8642}
_LABEL_SALT = 0x5851F42D4C957F2D
_GOLDEN = 0x9E3779B97F4A7C15

# Parameter numbers of the per-example hash draws.
_SWAP, _BG_HUE, _BG_SAT, _BG_VAL, _FG_HUE, _FG_SAT, _FG_VAL, _MK_SAT, _MK_VAL = range(9)
_SHAPE = 10  # _SHAPE + k, k < 8: the class-specific geometry
_FLIP = 20


def _u64(value):
    return tf.constant(value, tf.uint64)


def _mix64(x):
    """SplitMix64's finaliser: a bijection of uint64 whose outputs look independent and uniform."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u64(30))) * _u64(0xBF58476D1CE4E5B9)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u64(27))) * _u64(0x94D049BB133111EB)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u64(31)))


def _draw_bits(keys, draw):
    return _mix64(keys + _u64((draw * _GOLDEN) % 2**64))


def _uniform(keys, draw, low=0.0, high=1.0):
    """Uniform float32 in [low, high) for every key, from hash draw number `draw`."""
    unit = tf.cast(tf.bitwise.right_shift(_draw_bits(keys, draw), _u64(40)), tf.float32) * (2.0**-24)
    return low + (high - low) * unit


def _check_split(split):
    if split not in _SPLIT_SALTS:
        raise DatasetError(
            "The synthetic dataset has the splits 'train' and 'test'; pass one of them. "
            f"Received: split={split!r}"
        )
    return _u64(_SPLIT_SALTS[split])


def example_keys(indices, split="train"):
    """The uint64 hash key of each example index in `split`."""
    salt = _check_split(split)
    indices = tf.cast(tf.convert_to_tensor(indices, tf.int64), tf.uint64)
    return _mix64(tf.bitwise.bitwise_xor(_mix64(indices), salt))


def labels_for(indices, split="train"):
    """Class label (int32) of each example index: a random permutation of 0..3 per block of 4 indices."""
    salt = tf.bitwise.bitwise_xor(_check_split(split), _u64(_LABEL_SALT))
    indices = tf.convert_to_tensor(indices, tf.int64)
    block = tf.cast(indices // NUM_CLASSES, tf.uint64)
    slot = indices % NUM_CLASSES
    block_keys = _mix64(tf.bitwise.bitwise_xor(_mix64(block), salt))
    # Distinct hash values for the 4 slots of a block (SplitMix64 is a bijection); a slot's label is its rank.
    slot_bits = tf.stack([_draw_bits(block_keys, k) for k in range(NUM_CLASSES)], axis=-1)
    own = tf.gather(slot_bits, slot, batch_dims=1)
    rank = tf.reduce_sum(tf.cast(tf.less(slot_bits, own[:, None]), tf.int32), axis=-1)
    return rank


def _lerp(low, high, t):
    return low + (high - low) * t


def _colors(keys):
    """Background, object and marker RGB colours, each (batch, 3) in [0, 1]."""
    dark_bg = _uniform(keys, _SWAP) < 0.5
    bright_v = lambda d: _uniform(keys, d, 0.8, 1.0)  # noqa: E731
    dark_v = lambda d: _uniform(keys, d, 0.1, 0.35)  # noqa: E731
    bg_val = tf.where(dark_bg, dark_v(_BG_VAL), bright_v(_BG_VAL))
    fg_val = tf.where(dark_bg, bright_v(_FG_VAL), dark_v(_FG_VAL))
    fg_hue = _uniform(keys, _FG_HUE)
    background = tf.stack([_uniform(keys, _BG_HUE), _uniform(keys, _BG_SAT, 0.2, 0.9), bg_val], -1)
    foreground = tf.stack([fg_hue, _uniform(keys, _FG_SAT, 0.55, 1.0), fg_val], -1)
    # A mid-brightness, saturated complement: distinct from both a dark and a bright object or background.
    marker_hue = tf.math.floormod(fg_hue + 0.5, 1.0)
    marker_sat, marker_val = _uniform(keys, _MK_SAT, 0.8, 1.0), _uniform(keys, _MK_VAL, 0.55, 0.68)
    marker = tf.stack([marker_hue, marker_sat, marker_val], -1)
    return tuple(tf.image.hsv_to_rgb(c) for c in (background, foreground, marker))


def _masks(keys, image_size):
    """Object masks (batch, size, size) for every class, and the marker mask of class 1."""
    size = image_size
    # Pixel-centre coordinates in units of the image side, centred on 0: pixel j and its mirror
    # size-1-j get exactly opposite values, so the mirror-pair class is bit-exactly symmetric.
    centred = (2.0 * tf.range(size, dtype=tf.float32) + 1.0 - size) / (2.0 * size)
    u = centred[None, None, :]  # x, left to right
    v = centred[None, :, None]  # y, top to bottom
    p = [_uniform(keys, _SHAPE + k)[:, None, None] for k in range(8)]
    min_half_width = 0.75 / size  # keeps thin strokes at least ~1.5 pixels wide at 16x16

    # Class 0: mirror pair.
    s = _lerp(0.08, 0.15, p[0])
    cx = _lerp(s + 0.03, 0.5 - s - 0.04, p[1])
    cy = _lerp(-(0.5 - s - 0.04), 0.5 - s - 0.04, p[2])
    square = p[3] < 0.5

    def pair_shape(dx):
        dy = v - cy
        disc = dx * dx + dy * dy <= s * s
        box = tf.maximum(tf.abs(dx), tf.abs(dy)) <= 0.9 * s
        return tf.where(square, box, disc)

    mirror_pair = tf.logical_or(pair_shape(u - cx), pair_shape(u + cx))

    # Class 1: bar with matching end markers.
    phi = math.pi * p[0]
    half_len = _lerp(0.2, 0.32, p[1])
    half_width = tf.maximum(_lerp(0.025, 0.035, p[2]), min_half_width)
    marker_r = _lerp(0.08, 0.1, p[3])
    margin = marker_r + 0.03
    cos_phi, sin_phi = tf.cos(phi), tf.sin(phi)
    ex = 0.5 - margin - half_len * tf.abs(cos_phi)
    ey = 0.5 - margin - half_len * tf.abs(sin_phi)
    mx, my = _lerp(-ex, ex, p[4]), _lerp(-ey, ey, p[5])
    along = tf.clip_by_value((u - mx) * cos_phi + (v - my) * sin_phi, -half_len, half_len)
    bar = tf.square(u - mx - along * cos_phi) + tf.square(v - my - along * sin_phi) <= tf.square(half_width)

    def marker(sign):
        end_x, end_y = mx + sign * half_len * cos_phi, my + sign * half_len * sin_phi
        return tf.square(u - end_x) + tf.square(v - end_y) <= tf.square(marker_r)

    markers = tf.logical_or(marker(1.0), marker(-1.0))

    # Class 2: ring with its centre marked.
    radius = _lerp(0.2, 0.3, p[0])
    ring_half = tf.maximum(_lerp(0.03, 0.045, p[1]), min_half_width)
    dot_r = _lerp(0.06, 0.08, p[2])
    e = 0.5 - radius - ring_half - 0.03
    rx, ry = _lerp(-e, e, p[3]), _lerp(-e, e, p[4])
    dist = tf.sqrt(tf.square(u - rx) + tf.square(v - ry))
    ring = tf.logical_or(tf.abs(dist - radius) <= ring_half, dist <= dot_r)

    # Class 3: stripes of one orientation.
    theta = math.pi * p[0]
    period = _lerp(0.14, 0.3, p[1])
    phase = (u * tf.cos(theta) + v * tf.sin(theta)) / period + p[2]
    stripes = tf.math.floormod(phase, 1.0) < 0.5

    objects = tf.stack([mirror_pair, tf.logical_or(bar, markers), ring, stripes], axis=1)
    return tf.cast(objects, tf.float32), tf.cast(markers, tf.float32)


def generate(indices, image_size=DEFAULT_IMAGE_SIZE, split="train", random_flip=False):
    """Draws the examples with the given indices.

    Args:
        indices: int64 vector of example indices (any values >= 0).
        image_size: side length, a multiple of 4 in [16, 256].
        split: "train" or "test".
        random_flip: flip each image horizontally with probability 1/2 (a deterministic function of the
            index too).

    Returns:
        (images, labels): float32 (n, image_size, image_size, 3) in [-1, 1] and int32 (n,).
    """
    preprocessing.check_image_size(image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "the synthetic dataset")
    indices = tf.reshape(tf.convert_to_tensor(indices, tf.int64), [-1])
    keys = example_keys(indices, split)
    labels = labels_for(indices, split)
    objects, markers = _masks(keys, image_size)
    one_hot = tf.one_hot(labels, NUM_CLASSES, dtype=tf.float32)
    object_mask = tf.einsum("bk,bkhw->bhw", one_hot, objects)[..., None]
    marker_mask = (one_hot[:, 1, None, None] * markers)[..., None]
    background, foreground, marker_color = (c[:, None, None, :] for c in _colors(keys))
    images = (background * (1.0 - object_mask) + foreground * object_mask) * (1.0 - marker_mask)
    images += marker_color * marker_mask
    if random_flip:
        flip = (_uniform(keys, _FLIP) < 0.5)[:, None, None, None]
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    images = preprocessing.to_signed_range(images)
    images = tf.ensure_shape(images, [None, image_size, image_size, 3])
    return images, labels


def load(split, image_size, batch_size, *, random_flip=False, repeat=None, seed=None, input_context=None,
         position=0):
    """The synthetic dataset as batched, prefetched (images, labels); see the module docstring.

    Args:
        split: "train" or "test".
        image_size: side length, a multiple of 4 in [16, 256].
        batch_size: batch size of this input pipeline (already divided per replica).
        random_flip: random horizontal flips (not needed: every class is flip-invariant in distribution).
        repeat: repeat forever; None means True for "train" and False for "test".
        seed: selects the train stream (ignored by "test"); None means 0.
        input_context: a `tf.distribute.InputContext`; pipeline k of n reads indices k, k+n, k+2n, ...
        position: examples of this pipeline's stream to skip: it starts at its `position`-th index (where a run
            that read that many examples would continue), at no cost, since examples are drawn from indices.
    """
    _check_split(split)
    if split == "train":
        start = (seed or 0) * TRAIN_STREAM_SIZE
        stop = start + TRAIN_STREAM_SIZE
    else:
        start, stop = 0, TEST_SIZE
    if repeat is None:
        repeat = split == "train"
    pipeline_id, num_pipelines = 0, 1
    if input_context is not None:
        pipeline_id, num_pipelines = input_context.input_pipeline_id, input_context.num_input_pipelines
    stream_length = len(range(start + pipeline_id, stop, num_pipelines))
    if repeat:
        position %= stream_length
    first = start + pipeline_id + num_pipelines * position
    dataset = tf.data.Dataset.range(first, stop, num_pipelines)
    if repeat:
        # After the first (partial) pass, every repetition reads the pipeline's whole stream again.
        dataset = dataset.concatenate(tf.data.Dataset.range(start + pipeline_id, stop, num_pipelines).repeat())
    # Batch the indices first and draw whole batches at once: vectorised generation is ~100x faster
    # than a per-example map.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda idx: generate(idx, image_size, split, random_flip),
        num_parallel_calls=preprocessing.AUTOTUNE,
    )
    return preprocessing.without_autotune(dataset.prefetch(preprocessing.AUTOTUNE))
