"""`DatasetInfo`: what training needs to know about a dataset before it reads any image."""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset name accepted by `sagan_tf.data.load`.

    Args:
        name: the dataset name as given to `load` (e.g. "cifar10", "lsun/bedroom", "folder:/data/faces").
        num_classes: number of distinct labels; 1 for unconditional datasets, whose labels are all 0.
        conditional: whether the labels carry class information (choose a class-conditional GAN).
        default_image_size: the resolution `load` uses when `image_size` is None.
        splits: the split names `load` accepts.
        class_names: one name per label when known (synthetic and folder datasets, TFDS label names), else None.
        source: "tfds", "folder" or "synthetic".
        flip_by_default: whether training splits use a random horizontal flip when `random_flip` is None.
    """

    name: str
    num_classes: int
    conditional: bool
    default_image_size: int
    splits: Tuple[str, ...]
    class_names: Optional[Tuple[str, ...]] = None
    source: str = "tfds"
    flip_by_default: bool = True

    @property
    def positionable(self):
        """Whether `load(..., position=p)` can start the training stream at example p: the synthetic and folder
        sources (examples drawn from indices; per-epoch permutations of the file list), not TFDS."""
        return self.source in ("synthetic", "folder")
