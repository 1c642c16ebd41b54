"""`lookup`: the `DatasetInfo` of a dataset name, and the names `sagan_tf.data` knows (`KNOWN_NAMES`)."""

from sagan_tf.data import folder, synthetic, tfds_source
from sagan_tf.data.info import DatasetInfo
from sagan_tf.errors import DatasetError

KNOWN_NAMES = ("synthetic", "cifar10", "celeb_a", "imagenet2012", "lsun/<category>", "folder:<path>")


def _unknown(name):
    return DatasetError(
        f"Unknown dataset {name!r}; use one of: {', '.join(KNOWN_NAMES)} (e.g. 'lsun/church_outdoor' or "
        f"'folder:/data/my_images'; 'synthetic' needs no download). Received: name={name!r}"
    )


def lookup(name, data_dir=None):
    """Static facts about the dataset called `name` (see `DatasetInfo`); reads no images.

    For "folder:<path>" it checks that the folder exists and lists its subfolders.

    Raises:
        DatasetError: for an unknown name or a missing folder.
    """
    if not isinstance(name, str):
        raise _unknown(name)
    if name == "synthetic":
        return DatasetInfo(
            name=name,
            num_classes=synthetic.NUM_CLASSES,
            conditional=True,
            default_image_size=synthetic.DEFAULT_IMAGE_SIZE,
            splits=synthetic.SPLITS,
            class_names=synthetic.CLASS_NAMES,
            source="synthetic",
            flip_by_default=False,
        )
    if name.startswith(folder.PREFIX):
        classes = folder.class_names(folder.resolve_path(name, data_dir))
        return DatasetInfo(
            name=name,
            num_classes=max(1, len(classes)),
            conditional=bool(classes),
            default_image_size=folder.DEFAULT_IMAGE_SIZE,
            splits=folder.SPLITS,
            class_names=tuple(classes) or None,
            source="folder",
        )
    spec = tfds_source.spec(name)
    if spec is None:
        raise _unknown(name)
    return DatasetInfo(
        name=name,
        num_classes=spec.num_classes,
        conditional=spec.num_classes > 1,
        default_image_size=spec.default_image_size,
        splits=tuple(spec.splits),
        class_names=tfds_source.label_names(name, data_dir) if spec.num_classes > 1 else None,
        source="tfds",
    )
