"""`Dataset` and `resolve`: a dataset name looked up once, shared by training, evaluation and the classifier cache.

    dataset = data.resolve("folder:/data/imagenet_train", data_dir=None)
    dataset.info                      # DatasetInfo: classes, splits, default size (no image read)
    data.load(dataset, "train", image_size=128, batch_size=256)
    dataset.fingerprint()             # what identifies its images (a folder: from its one scan)
    dataset.subset(10_000, seed=0)    # a seeded uniform subset of a folder (real statistics)
    dataset.class_subset(0.1, seed=0) # the same seeded 10% of each class of a folder (small-data training)
    dataset.class_frequencies()       # each class's share of the training split (None for TFDS)

A name alone is re-derived by every consumer: an image folder would be scanned (every file stat-ed and read at both
ends) by the training pipeline, the fingerprint of the domain classifier's cache, its card check and the real
statistics, each pass minutes on a network disk with 1.28M files. A `Dataset` scans a folder at most once, when
something first needs its files, and keeps the scan; every function of `sagan_tf.data`, `sagan_tf.evaluation` and
`sagan_tf.evaluation.classifiers.fingerprint` that takes a dataset name also takes a `Dataset`.
"""

import numpy as np

from sagan_tf.data import catalog, folder, tfds_source
from sagan_tf.data.info import DatasetInfo


class Dataset:
    """A dataset of `sagan_tf.data`, resolved once (see the module docstring).

    Build it with `resolve`.

    Args:
      info: its `DatasetInfo`.
      data_dir: the TFDS data directory (or the base of a relative folder path) it was resolved with.
      folder_scan: for an image folder, its `folder.FolderScan` when already made (e.g. a subset); None scans the
        folder when its files are first needed.
    """

    def __init__(self, info, data_dir=None, folder_scan=None):
        if not isinstance(info, DatasetInfo):
            raise TypeError(f"info must be a DatasetInfo. Received: {info!r}")
        self.info = info
        self.data_dir = data_dir
        self._scan = folder_scan
        self._fingerprint = None

    @property
    def name(self):
        """The dataset name, e.g. "cifar10" or "folder:/data/faces"."""
        return self.info.name

    @property
    def source(self):
        """"synthetic", "tfds" or "folder"."""
        return self.info.source

    @property
    def path(self):
        """The absolute folder of an image folder; None for other sources."""
        return folder.resolve_path(self.name, self.data_dir) if self.source == "folder" else None

    @property
    def folder_scan(self):
        """The `folder.FolderScan` of an image folder (scanned on first use, then kept); None for other sources.

        Raises:
          DatasetError: the folder holds no usable image, or a class subfolder has none.
        """
        if self.source != "folder":
            return None
        if self._scan is None:
            self._scan = folder.scan(self.path)
        return self._scan

    @property
    def num_images(self):
        """The images of an image folder (from its scan); None for the other sources, whose size is not counted."""
        return len(self.folder_scan) if self.source == "folder" else None

    def class_names(self):
        """One name per label, or None: the info's, asking TFDS again when it had none (cifar10 learns its label
        names when it is prepared, which may happen after this object was made)."""
        if self.info.class_names is None and self.source == "tfds" and self.info.conditional:
            return tfds_source.label_names(self.name, self.data_dir)
        return self.info.class_names

    def fingerprint(self):
        """What identifies the images, as a JSON-able dict (computed once): {"kind": "folder", "path",
        "num_images", "classes", "sha256"} from the folder's scan, {"kind": "tfds", "name", "version"} or
        {"kind": "synthetic", "name"}. See `sagan_tf.evaluation.classifiers.fingerprint`."""
        if self._fingerprint is None:
            if self.source == "folder":
                self._fingerprint = self.folder_scan.fingerprint()
            elif self.source == "tfds":
                import tensorflow_datasets as tfds

                builder = tfds.builder(self.name, data_dir=tfds_source.data_root(self.data_dir))
                self._fingerprint = {"kind": "tfds", "name": self.name, "version": str(builder.version)}
            else:
                self._fingerprint = {"kind": "synthetic", "name": self.name}
        return dict(self._fingerprint)

    def subset(self, count, seed=0):
        """This image folder restricted to a uniformly random subset of `count` images, the same for the same seed
        (`folder.FolderScan.subset`); the folder itself when it has no more than `count`.

        Raises:
          ValueError: the dataset is not an image folder (TFDS and synthetic streams are not subset this way).
        """
        if self.source != "folder":
            raise ValueError(f"Only image folders have a file list to draw a subset from. Received: {self.name}")
        chosen = self.folder_scan.subset(count, seed)
        return self if chosen is self.folder_scan else Dataset(self.info, self.data_dir, chosen)

    def class_subset(self, fraction, seed=0):
        """This image folder restricted to the same seeded `fraction` of each class (`folder.FolderScan.class_subset`):
        a small-data version of it with its class proportions.

        Raises:
          ValueError: the dataset is not an image folder, or the fraction is outside (0, 1].
        """
        if self.source != "folder":
            raise ValueError(f"Only image folders have a file list to draw a subset from. Received: {self.name}")
        chosen = self.folder_scan.class_subset(fraction, seed)
        return self if chosen is self.folder_scan else Dataset(self.info, self.data_dir, chosen)

    def class_frequencies(self):
        """The share of each class in the training split (a tuple of floats summing to 1, in label order), or None
        where it is not known without reading the whole dataset (TFDS). A folder counts its scan's labels; the
        synthetic dataset's classes are balanced by construction."""
        if self.source == "folder":
            counts = np.bincount(self.folder_scan.labels, minlength=max(self.info.num_classes, 1))
            return tuple(float(count) / len(self.folder_scan) for count in counts)
        if self.source == "synthetic":
            return (1.0 / self.info.num_classes,) * self.info.num_classes
        return None

    def __repr__(self):
        return f"Dataset({self.name!r}, data_dir={self.data_dir!r})"


def resolve(dataset, data_dir=None):
    """The `Dataset` of `dataset`: a `sagan_tf.data` name looked up now, or a `Dataset` returned as it is.

    Args:
      dataset: "synthetic", a TFDS name, "folder:<path>", or a `Dataset`.
      data_dir: TFDS data directory, or the base of a relative "folder:" path (ignored for a `Dataset`).

    Raises:
      DatasetError: an unknown name or a missing folder.
    """
    if isinstance(dataset, Dataset):
        return dataset
    return Dataset(catalog.lookup(dataset, data_dir), data_dir)


def name_of(dataset):
    """The name of a dataset given as a name or a `Dataset`."""
    return dataset.name if isinstance(dataset, Dataset) else dataset
