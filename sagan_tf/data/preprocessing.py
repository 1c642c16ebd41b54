"""Preprocessing shared by every source: argument checks, decoding, crop/resize, flip, batching.

Every image goes through the same steps (SAGAN's ImageNet pipeline, Zhang et al. 2019, Section 5):
largest central square crop, antialiased bilinear resize to `image_size` (the same filter as PIL's
BILINEAR), optional random horizontal flip, scaling from [0, 1] to [-1, 1] to match the generator's tanh.
"""

import numbers

import tensorflow as tf

from sagan_tf.errors import DatasetError

AUTOTUNE = tf.data.AUTOTUNE
MAX_IMAGE_SIZE = 1024


def check_image_size(image_size, min_size=4, max_size=MAX_IMAGE_SIZE, dataset="this dataset"):
    """Returns `image_size` as an int after checking it is a multiple of 4 in [min_size, max_size].

    Raises:
        DatasetError: when it is not.
    """
    if (
        not isinstance(image_size, numbers.Integral)
        or isinstance(image_size, bool)
        or image_size < min_size
        or image_size > max_size
        or image_size % 4
    ):
        raise DatasetError(
            f"image_size must be a multiple of 4 between {min_size} and {max_size} for {dataset} (the "
            "generator starts from a 4x4 grid and SAGAN is meant for resolutions up to a few hundred "
            f"pixels); pass e.g. image_size=32, 64 or 128. Received: image_size={image_size!r}"
        )
    return int(image_size)


def check_position(position):
    """Returns `position` (an int >= 0) or raises `DatasetError`."""
    if not isinstance(position, numbers.Integral) or isinstance(position, bool) or position < 0:
        raise DatasetError(
            "position must be the number of examples an input pipeline already delivered (an integer >= 0; "
            f"0 starts at the beginning of the stream). Received: position={position!r}"
        )
    return int(position)


def check_seed(seed):
    """Returns `seed` (None or an int in [0, 2**31)) or raises `DatasetError`."""
    if seed is None:
        return None
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise DatasetError(
            "seed must be None (a different shuffle and flip order on every run) or an integer in "
            f"[0, 2**31) (a reproducible order); pass e.g. seed=0. Received: seed={seed!r}"
        )
    return int(seed)


def per_replica_batch_size(batch_size, input_context=None):
    """The batch size one input pipeline produces.

    Args:
        batch_size: the global batch size (summed over all replicas).
        input_context: a `tf.distribute.InputContext` or None.

    Returns:
        `input_context.get_per_replica_batch_size(batch_size)` with a context, else `batch_size`.

    Raises:
        DatasetError: if `batch_size` is not a positive integer or does not split evenly over replicas.
    """
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise DatasetError(
            "batch_size must be a positive integer: the global number of images per training step, "
            f"summed over all replicas; pass e.g. batch_size=64. Received: batch_size={batch_size!r}"
        )
    if input_context is None:
        return int(batch_size)
    if not isinstance(input_context, tf.distribute.InputContext):
        raise DatasetError(
            "input_context must be the tf.distribute.InputContext that "
            "strategy.distribute_datasets_from_function passes to its dataset function, or None "
            f"for a single pipeline. Received: input_context={input_context!r}"
        )
    replicas = input_context.num_replicas_in_sync
    if batch_size % replicas:
        raise DatasetError(
            f"batch_size {batch_size} cannot be split evenly over {replicas} replicas; use a global batch "
            f"size that is a multiple of {replicas} (e.g. {replicas * max(1, batch_size // replicas)}). "
            f"Received: batch_size={batch_size}"
        )
    return int(input_context.get_per_replica_batch_size(batch_size))


def decode_image(encoded):
    """Decodes PNG (8- or 16-bit), JPEG, GIF or BMP bytes to an RGB float32 image in [0, 1].

    Grayscale is repeated to three channels; an alpha channel is composited over white, so a fully
    transparent pixel becomes white (1.0). 16-bit PNGs are scaled by 1/65535, not clipped.
    """
    image = tf.io.decode_image(encoded, channels=0, dtype=tf.float32, expand_animations=False)
    return composite_rgb(image)


def composite_rgb(image):
    """Maps a float [0, 1] image with 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) channels to RGB over white."""
    channels = tf.shape(image)[-1]
    color = tf.cond(
        channels >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3])
    )
    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    alpha = tf.cond(has_alpha, lambda: image[..., -1:], lambda: tf.ones_like(image[..., :1]))
    # PNG alpha is not premultiplied: out = alpha * color + (1 - alpha) * white.
    rgb = color * alpha + (1.0 - alpha)
    return tf.ensure_shape(rgb, [None, None, 3])


def center_crop_and_resize(image, image_size):
    """Largest central square crop, then antialiased bilinear resize to `image_size`.

    Args:
        image: (height, width, 3) image; integer dtypes are converted to float32 in [0, 1] first
            (uint8 / 255, uint16 / 65535), float images are assumed to be in [0, 1] already.
        image_size: output side length.

    Returns:
        float32 (image_size, image_size, 3) in [0, 1].
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    top = (height - side) // 2
    left = (width - side) // 2
    image = image[top : top + side, left : left + side, :]
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def to_signed_range(image):
    """Maps [0, 1] to [-1, 1], the range of the generator's tanh output."""
    return image * 2.0 - 1.0


def without_autotune(dataset):
    """`dataset` with tf.data's autotuning turned off (every pipeline of `sagan_tf.data` ends with it).

    The autotuning thread sleeps for a period that doubles up to 60 s, and destroying the iterator (as `fit`
    does when it returns) can wait for it to wake: up to a minute of idle time at the end of training (seen in
    TF 2.21 with the synthetic pipeline: 39-41 s in 3 of 4 runs of >= 600 steps). Without autotuning, a
    `num_parallel_calls=AUTOTUNE` map runs on as many threads as tf.data's thread pool has (one per core) and an
    `AUTOTUNE` prefetch buffer still grows on demand, which is what autotuning settles on for these pipelines,
    whose every step is a decode or a vectorised draw.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def finish(dataset, *, decode_fn, image_size, batch_size, random_flip, seed=None, skip_errors=False):
    """Turns a dataset of (raw, label) pairs into batched, prefetched (images, labels).

    Args:
        dataset: yields (raw, label), or (raw, label, flip_seed) where flip_seed is the element's own
            stateless seed pair (int64 (2,)): a source that can start anywhere in its stream (the folder
            source) gives each element the flip of its position, so a pipeline started at a position flips
            exactly as an uninterrupted one. `decode_fn(raw)` must give an RGB image (uint8, uint16 or
            float in [0, 1]) of any size. Shuffling and repetition must already be applied.
        decode_fn: decoder for `raw` (e.g. `decode_image` for encoded bytes).
        image_size: output side length.
        batch_size: batch size of this pipeline (per replica under a distribution strategy).
        random_flip: whether to flip each image horizontally with probability 1/2.
        seed: seed of the flip sequence of (raw, label) elements (None: different on every run).
        skip_errors: drop elements whose decoding fails instead of stopping the pipeline.

    Returns:
        A dataset of (float32 (batch, size, size, 3) in [-1, 1], int32 (batch,)) with static shapes, without
        tf.data autotuning (see `without_autotune`).
    """

    def preprocess(raw, label, flip_seed=None):
        image = center_crop_and_resize(decode_fn(raw), image_size)
        if random_flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return to_signed_range(image), tf.cast(label, tf.int32)

    if random_flip and len(dataset.element_spec) == 2:
        # One stateless seed pair per element, so a fixed `seed` gives the same flips on every run.
        flip_seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
        dataset = tf.data.Dataset.zip((dataset, flip_seeds)).map(
            lambda pair, flip_seed: (pair[0], pair[1], flip_seed)
        )
    dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE)
    if skip_errors:
        dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return without_autotune(dataset.prefetch(AUTOTUNE))
