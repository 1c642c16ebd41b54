"""`load`, `get_info` and `num_classes`: one entry point over every source."""

import numbers

from sagan_tf.data import folder, preprocessing, synthetic, tfds_source
from sagan_tf.data.dataset import resolve
from sagan_tf.errors import DatasetError

DEFAULT_BATCH_SIZE = 64


def get_info(name, data_dir=None):
    """Static facts about dataset `name` (see `DatasetInfo`); reads no images.

    For "folder:<path>" it checks that the folder exists and lists its subfolders. A resolved `Dataset` gives
    its own info.

    Raises:
        DatasetError: for an unknown name or a missing folder.
    """
    return resolve(name, data_dir).info


def num_classes(name, data_dir=None):
    """Number of labels of dataset `name`; 1 for unconditional datasets (all labels 0)."""
    return get_info(name, data_dir).num_classes


def _check_flag(value, argument):
    if value is not None and not isinstance(value, bool):
        raise DatasetError(
            f"{argument} must be True, False or None (None: True for the training split, False otherwise). "
            f"Received: {argument}={value!r}"
        )


def load(
    name,
    split="train",
    image_size=None,
    batch_size=DEFAULT_BATCH_SIZE,
    data_dir=None,
    shuffle=None,
    random_flip=None,
    repeat=None,
    seed=None,
    input_context=None,
    shuffle_buffer_size=None,
    position=0,
):
    """Builds the input pipeline of a dataset: batches of (images, labels) ready for the GAN.

    Every source crops the largest central square, resizes it to `image_size` (antialiased bilinear),
    optionally flips it horizontally, and scales it to [-1, 1] (see `preprocessing`).

    Args:
        name: "synthetic", "cifar10", "celeb_a", "imagenet2012", "lsun/<category>" or "folder:<path>", or a
            `Dataset` from `resolve` (an image folder is then not scanned again).
        split: "train" or "test" (also "validation" for imagenet2012, celeb_a and lsun; TFDS slices such as
            "train[:10%]" work for TFDS datasets).
        image_size: output side length, a multiple of 4 up to 1024 (16 to 256 for synthetic); None uses
            the dataset's default (`get_info(name).default_image_size`).
        batch_size: the GLOBAL batch size. With `input_context` each pipeline yields
            `input_context.get_per_replica_batch_size(batch_size)` images per batch.
        data_dir: TFDS data directory (default $TFDS_DATA_DIR or ~/tensorflow_datasets); for
            "folder:<relative path>" the folder is resolved against it.
        shuffle: shuffle the examples; None means True for "train" (no effect on synthetic data, whose
            examples are independent draws).
        random_flip: random horizontal flips; None means True for the "train" split of natural-image
            datasets, False otherwise (synthetic classes are already flip-invariant).
        repeat: repeat forever; None means True for "train" only.
        seed: None or an int in [0, 2**31) fixing the shuffle and flip order (for synthetic data it selects
            the training stream).
        input_context: the `tf.distribute.InputContext` given by
            `strategy.distribute_datasets_from_function`: the data is sharded into disjoint parts, one per
            input pipeline.
        shuffle_buffer_size: TFDS shuffle buffer, in encoded images (None: 5,000 for imagenet2012 and lsun,
            10,000 otherwise). Folders shuffle their whole file list.
        position: start the pipeline's example stream at this position: the number of examples the same
            pipeline (same name, split, seed and `input_context`) delivered before, e.g. in an interrupted
            training run, so that it continues exactly where that one stopped. Only sources whose streams are
            position-addressable accept a position > 0 (`DatasetInfo.positionable`: synthetic and folder); a
            TFDS pipeline (shuffle buffers, file interleaving) cannot be positioned.

    Returns:
        A prefetched `tf.data.Dataset` of (images, labels): float32 (batch, image_size, image_size, 3) in
        [-1, 1] and int32 (batch,), with static shapes (the last partial batch is dropped).

    Raises:
        DatasetError: (a ValueError) naming the problem and its fix, for an unknown name or split, missing
            data, or bad arguments.
    """
    dataset = resolve(name, data_dir)
    info, data_dir, name = dataset.info, dataset.data_dir, dataset.name
    allowed = split.partition("[")[0] if isinstance(split, str) and info.source == "tfds" else split
    if not isinstance(split, str) or allowed not in info.splits:
        raise DatasetError(
            f"{name} has no split {split!r}; use one of {', '.join(repr(s) for s in info.splits)}"
            f"{' (or a TFDS slice such as train[:10%])' if info.source == 'tfds' else ''}. "
            f"Received: split={split!r}"
        )
    is_synthetic = info.source == "synthetic"
    if is_synthetic:
        size_range = (synthetic.MIN_IMAGE_SIZE, synthetic.MAX_IMAGE_SIZE)
    else:
        size_range = (4, preprocessing.MAX_IMAGE_SIZE)
    image_size = preprocessing.check_image_size(
        info.default_image_size if image_size is None else image_size, *size_range, dataset=name
    )
    per_replica = preprocessing.per_replica_batch_size(batch_size, input_context)
    seed = preprocessing.check_seed(seed)
    position = preprocessing.check_position(position)
    if position and not info.positionable:
        raise DatasetError(
            f"{name} is read through TFDS, whose shuffled stream cannot start at an example position; pass "
            f"position=0 (and a new seed to read fresh data), or use a synthetic or folder: dataset. "
            f"Received: position={position}"
        )
    for value, argument in ((shuffle, "shuffle"), (random_flip, "random_flip"), (repeat, "repeat")):
        _check_flag(value, argument)
    if shuffle_buffer_size is not None and (
        not isinstance(shuffle_buffer_size, numbers.Integral) or shuffle_buffer_size < 1
    ):
        raise DatasetError(
            "shuffle_buffer_size must be None (the dataset's default) or a positive number of examples. "
            f"Received: shuffle_buffer_size={shuffle_buffer_size!r}"
        )
    is_train = split.partition("[")[0] == "train"
    shuffle = is_train if shuffle is None else shuffle
    repeat = is_train if repeat is None else repeat
    random_flip = (is_train and info.flip_by_default) if random_flip is None else random_flip

    if is_synthetic:
        return synthetic.load(
            split, image_size, per_replica, random_flip=random_flip, repeat=repeat, seed=seed,
            input_context=input_context, position=position,
        )
    if info.source == "folder":
        return folder.load(
            dataset.folder_scan, split, image_size, per_replica, shuffle=shuffle,
            random_flip=random_flip, repeat=repeat, seed=seed, input_context=input_context, position=position,
        )
    return tfds_source.load(
        name, split, image_size, per_replica, data_dir=data_dir, shuffle=shuffle, random_flip=random_flip,
        repeat=repeat, seed=seed, input_context=input_context, shuffle_buffer_size=shuffle_buffer_size,
    )
