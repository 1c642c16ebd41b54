"""Input pipelines: `load(name, split, image_size, batch_size, ...)` -> batches of (images, labels).

Sources (one module each; shared crop/resize/flip/batching in `preprocessing`):

    synthetic         the embedded default: 4 procedurally drawn classes whose parts must agree across the
                      image (mirror pair, bar with matching end markers, ring with marked centre, stripes),
                      generated on the fly from a seed, any multiple of 4 from 16 to 256 (`synthetic`).
    cifar10           TFDS, 10 classes, 32x32.
    celeb_a           TFDS, unconditional (label 0), default 64x64.
    imagenet2012      TFDS, 1000 classes, default 128x128; manual download: ILSVRC2012_img_train.tar and
                      ILSVRC2012_img_val.tar in <data_dir or ~/tensorflow_datasets>/downloads/manual/.
    lsun/<category>   TFDS, unconditional (label 0), default 64x64.
    folder:<path>     a local image folder: one subfolder per class, or images directly inside
                      (unconditional) (`folder`).

Images are float32 in [-1, 1] with static shape (batch, image_size, image_size, 3), labels int32 (batch,).
`batch_size` is global; under `strategy.distribute_datasets_from_function` pass the `InputContext` to shard
the data and batch per replica. `get_info(name)` / `num_classes(name)` describe a dataset without reading
it. `resolve(name, data_dir)` looks a name up once into a `Dataset` that the pipelines, the fingerprint and the
real statistics share (an image folder is scanned once; see `dataset`); every function taking a name takes one.
Bad arguments and missing data raise `DatasetError` (a ValueError) saying what to fix.
"""

from sagan_tf.errors import DatasetError
from sagan_tf.data.catalog import KNOWN_NAMES
from sagan_tf.data.dataset import Dataset, name_of, resolve
from sagan_tf.data.info import DatasetInfo
from sagan_tf.data.loader import get_info, load, num_classes

__all__ = ["Dataset", "DatasetError", "DatasetInfo", "KNOWN_NAMES", "get_info", "load", "name_of", "num_classes",
           "resolve"]
