"""TensorFlow Datasets sources: imagenet2012, cifar10, celeb_a and lsun/<category>.

Images are read still encoded (`tfds.decode.SkipDecoding`), so the shuffle buffer holds compressed bytes,
and are decoded, centre-cropped and resized in `preprocessing`. Datasets that TFDS can download are
downloaded and prepared on first use under `data_dir` (default `$TFDS_DATA_DIR` or ~/tensorflow_datasets).
ImageNet cannot be downloaded automatically: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in
`<data_dir>/downloads/manual/` and the first `load` prepares it (hours). ImageNet and LSUN have no labelled
test split, so split="test" reads their "validation" split. celeb_a and lsun are unconditional: label 0.
With a `tf.distribute.InputContext`, pipeline k of n reads `tfds.even_splits(split, n)[k]`: disjoint
example ranges, each pipeline reading only its own part of the files.
"""

import dataclasses
import os
from typing import Dict, Optional, Tuple

import tensorflow as tf

from sagan_tf.data import preprocessing
from sagan_tf.errors import DatasetError

MANUAL_FILES = {"imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")}
IMAGENET_URL = "https://image-net.org/download-images.php"


@dataclasses.dataclass(frozen=True)
class _Spec:
    num_classes: int
    default_image_size: int
    splits: Dict[str, str]  # our split name -> TFDS split name
    label_key: Optional[str]
    shuffle_buffer_size: int  # of encoded images


_LSUN_SPEC = _Spec(1, 64, {"train": "train", "validation": "validation", "test": "validation"}, None, 5_000)
SPECS = {
    "imagenet2012": _Spec(
        1000, 128, {"train": "train", "validation": "validation", "test": "validation"}, "label", 5_000
    ),
    "cifar10": _Spec(10, 32, {"train": "train", "test": "test"}, "label", 10_000),
    "celeb_a": _Spec(1, 64, {"train": "train", "validation": "validation", "test": "test"}, None, 10_000),
}


def lsun_categories() -> Tuple[str, ...]:
    """The LSUN categories TFDS knows (no download needed)."""
    import tensorflow_datasets as tfds

    return tuple(c.name for c in tfds.builder_cls("lsun").BUILDER_CONFIGS)


def spec(name):
    """The `_Spec` of a TFDS name, or None when the name is not one of ours."""
    if name in SPECS:
        return SPECS[name]
    if name.startswith("lsun/"):
        category = name[len("lsun/") :]
        if category not in lsun_categories():
            raise DatasetError(
                f"Unknown LSUN category {category!r}; use one of the TFDS LSUN categories: "
                f"{', '.join(lsun_categories())} (e.g. name='lsun/church_outdoor'). Received: name={name!r}"
            )
        return _LSUN_SPEC
    return None


def label_names(name, data_dir=None):
    """The label names TFDS records for a labelled dataset, or None when it has no labels or only numbers.

    They come from the builder's dataset info: for imagenet2012 its WordNet ids (shipped with TFDS), for cifar10
    the names written when the dataset was prepared (before that TFDS knows only "0" ... "9"). Reads no images
    and downloads nothing.
    """
    dataset_spec = spec(name)
    if dataset_spec is None or dataset_spec.label_key is None:
        return None
    import tensorflow_datasets as tfds

    try:
        names = tfds.builder(name, data_dir=data_root(data_dir)).info.features[dataset_spec.label_key].names
    except Exception:  # an unreadable dataset_info.json: fall back to numbers rather than failing get_info
        return None
    names = tuple(str(n) for n in names)
    if len(names) != dataset_spec.num_classes or all(n == str(i) for i, n in enumerate(names)):
        return None
    return names


def data_root(data_dir=None):
    """The TFDS data directory: `data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return os.path.abspath(os.path.expanduser(root))


def manual_dir(data_dir=None):
    """Where TFDS looks for manually downloaded archives: `<data root>/downloads/manual`."""
    return os.path.join(data_root(data_dir), "downloads", "manual")


def tfds_split(name, split):
    """Maps our split name (optionally with a TFDS slice, e.g. "train[:10%]") to the TFDS split."""
    splits = spec(name).splits
    base, bracket, rest = split.partition("[")
    if base not in splits:
        raise DatasetError(
            f"{name} has no split {split!r}; use one of {', '.join(repr(s) for s in splits)} (a TFDS slice "
            f"such as 'train[:10%]' also works). Received: split={split!r}"
        )
    return splits[base] + bracket + rest


def prepared_builder(name, data_dir=None):
    """A TFDS builder whose data is ready to read, downloading and preparing it first if needed.

    Raises:
        DatasetError: when manual archives are missing, or the download or preparation fails.
    """
    import tensorflow_datasets as tfds

    root = data_root(data_dir)
    builder = tfds.builder(name, data_dir=root)
    if builder.is_prepared():
        return builder
    manual = manual_dir(data_dir)
    required = MANUAL_FILES.get(name, ())
    missing = [f for f in required if not os.path.isfile(os.path.join(manual, f))]
    if missing:
        raise DatasetError(
            f"{name} is not prepared under {root} and must be downloaded by hand: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing. Download {' and '.join(required)} from "
            f"{IMAGENET_URL} (after accepting the ImageNet terms of access), put them in {manual}/ "
            f"(pass data_dir=... to use another root than {root}), and run again: TFDS then extracts and "
            "prepares the dataset once, which takes a few hours."
        )
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    except Exception as error:  # network, disk or archive errors: all need the same advice
        raise DatasetError(
            f"TFDS could not download and prepare {name} under {root} ({type(error).__name__}: {error}). "
            f"Check the network connection and free disk space, or prepare it on a machine with network "
            f"access (`tfds build {name} --data_dir=...`) and copy the data directory here, then pass "
            "data_dir=... ."
        ) from error
    return builder


def _decode_rgb8(encoded):
    # TFDS stores every image of these datasets as 3-channel 8-bit JPEG or PNG.
    return tf.ensure_shape(
        tf.io.decode_image(encoded, channels=3, expand_animations=False), [None, None, 3]
    )


def load(
    name,
    split,
    image_size,
    batch_size,
    *,
    data_dir=None,
    shuffle,
    random_flip,
    repeat,
    seed=None,
    input_context=None,
    shuffle_buffer_size=None,
):
    """A TFDS dataset as batched, prefetched (images, labels); see the module docstring."""
    import tensorflow_datasets as tfds

    dataset_spec = spec(name)
    read_split = tfds_split(name, split)
    builder = prepared_builder(name, data_dir)
    if input_context is not None and input_context.num_input_pipelines > 1:
        read_split = tfds.even_splits(read_split, n=input_context.num_input_pipelines)[
            input_context.input_pipeline_id
        ]
        if seed is not None:
            seed += input_context.input_pipeline_id
    dataset = builder.as_dataset(
        split=read_split,
        shuffle_files=shuffle,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False),
    )
    label_key = dataset_spec.label_key

    def image_and_label(example):
        label = example[label_key] if label_key else tf.constant(0, tf.int64)
        return example["image"], tf.cast(label, tf.int32)

    dataset = dataset.map(image_and_label, num_parallel_calls=preprocessing.AUTOTUNE)
    if shuffle:
        buffer = shuffle_buffer_size or dataset_spec.shuffle_buffer_size
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return preprocessing.finish(
        dataset,
        decode_fn=_decode_rgb8,
        image_size=image_size,
        batch_size=batch_size,
        random_flip=random_flip,
        seed=seed,
    )
