"""`folder:<path>`: images from a local folder.

Layouts:
    path/<class_a>/*.png, path/<class_b>/*.jpg, ...  class-conditional: sorted subfolder names give
                                                      labels 0..K-1 (images found recursively inside each);
    path/*.png                                        unconditional (no subfolders): every label is 0.

PNG (8- or 16-bit, grayscale, palette, with or without alpha), JPEG, GIF (first frame) and BMP are read
by content, whatever the extension says. Grayscale becomes RGB, transparency is composited over white,
16-bit values are scaled by 1/65535. Symlinked files and folders are followed (link cycles are visited
once); names starting with "." are ignored. Before building the pipeline the folder is scanned once:
files that are unreadable, empty, not images, broken links, or truncated (no PNG IEND chunk / JPEG end
marker and not decodable) are skipped and reported together in one warning. Anything that still fails
to decode inside the pipeline is dropped by `ignore_errors` rather than stopping training. The scan
(`scan`, a `FolderScan`: files, labels, class names and sizes) stats and reads both ends of every file,
which on a million files on a network disk takes minutes: `sagan_tf.data.resolve` scans a folder once
and everything else (the pipelines, the fingerprint, the real statistics' subset) reuses that scan.

The folder is a single split: "train" and "test" both read every image; "test" only changes the defaults
(no shuffle, no repeat, no flip).

The training stream is position-addressable (`position_stream`): epoch e reads the files in a permutation seeded
by (seed, e), so a pipeline can start at any example position and read exactly what an uninterrupted one reads
from there on (how a resumed training run continues its data).
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import random
import stat
import time
from typing import Tuple

import numpy as np
import tensorflow as tf

from sagan_tf.data import preprocessing
from sagan_tf.errors import DatasetError

PREFIX = "folder:"
SPLITS = ("train", "test")
DEFAULT_IMAGE_SIZE = 64
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp")

_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "bmp": (b"BM",),
}
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"

logger = logging.getLogger(__name__)


def resolve_path(name, data_dir=None):
    """The absolute folder path of a "folder:<path>" name; relative paths resolve against `data_dir`."""
    path = os.path.expanduser(name[len(PREFIX) :])
    if not path:
        raise DatasetError(
            'A folder dataset needs a path after "folder:"; pass e.g. name="folder:/data/my_images". '
            f"Received: name={name!r}"
        )
    if data_dir is not None and not os.path.isabs(path):
        path = os.path.join(os.path.expanduser(data_dir), path)
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise DatasetError(
            f"The image folder {path} does not exist; create it with one subfolder of images per class "
            "(or the images directly inside for an unconditional dataset), or fix the path. "
            f"Received: name={name!r}, data_dir={data_dir!r}"
        )
    if not os.path.isdir(path):
        raise DatasetError(
            f"{path} is a file, not a folder; pass the folder that holds the images (one subfolder per "
            f"class, or the images directly inside). Received: name={name!r}"
        )
    return path


def _visible(entry_name):
    return not entry_name.startswith(".")


def class_names(path):
    """Sorted names of the visible subfolders of `path` (following links); empty when unconditional."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if _visible(e.name) and e.is_dir(follow_symlinks=True))


def _walk_files(root):
    """All visible files under `root`, recursively, following links; each real folder visited once."""
    seen = set()
    stack = [root]
    files = []
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(folder) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as error:
            logger.warning("Cannot list folder %s (%s); skipping it.", folder, error.strerror or error)
            continue
        for entry in entries:
            if not _visible(entry.name):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(entry.path)
            else:
                files.append(entry.path)
    return sorted(files)


def check_image_file(path):
    """Why `path` cannot be used as an image (a short reason), or None when it looks fine.

    Reads only the first and last few bytes, except for a file without its end marker, which is fully
    decoded once to tell a truncated image from one with trailing bytes.
    """
    return _check(path)[0]


def _check(path):
    """(reason or None, size in bytes) of `path`: see `check_image_file`."""
    try:
        info = os.stat(path)  # follows links
    except OSError as error:
        return ("broken link" if os.path.islink(path) else f"unreadable ({error.strerror})"), 0
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file", 0  # e.g. a FIFO, whose read would block forever
    if info.st_size == 0:
        return "empty file", 0
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
            handle.seek(max(0, info.st_size - len(_PNG_END)))
            tail = handle.read()
    except OSError as error:
        return f"unreadable ({error.strerror})", info.st_size
    kind = next((k for k, magics in _MAGIC.items() if head.startswith(magics)), None)
    if kind is None:
        return "not a PNG, JPEG, GIF or BMP image", info.st_size
    complete = (kind == "png" and tail.endswith(_PNG_END)) or (kind == "jpeg" and tail.endswith(_JPEG_END))
    if kind in ("png", "jpeg") and not complete:
        try:
            preprocessing.decode_image(tf.io.read_file(path))
        except (tf.errors.OpError, ValueError):
            return f"truncated or corrupt {kind.upper()}", info.st_size
    return None, info.st_size


#: Files checked at once by `scan` when the checks wait on the disk (a stat and two small reads each).
SCAN_THREADS = 8
#: Files checked per thread-pool task, and checked in the calling thread first to time them.
SCAN_CHUNK = 2048
#: Mean seconds per file of that first chunk above which the rest is checked on `SCAN_THREADS` threads. Checks that
#: hold the GIL contend for it on threads: 100,000 files on a warm page cache took 1.9 s in one thread against 4.4 s
#: on 8 (2 cores), about 20 us a file; from a cold local disk 14.7 s against 11.7 s (150 us a file). A network
#: filesystem is slower still, where threads help most.
SCAN_THREADED_ABOVE_SECONDS = 100e-6


def _check_all(paths):
    """[`_check(path)`] for each of `paths`."""
    return [_check(path) for path in paths]


def _check_files(paths):
    """[`_check(path)`] for each of `paths`, in order: in the calling thread while checks are quick (a warm cache),
    on a thread pool when the first `SCAN_CHUNK` of them show that they wait on the disk."""
    start = time.perf_counter()
    checks = _check_all(paths[:SCAN_CHUNK])
    rest = paths[SCAN_CHUNK:]
    if not rest or (time.perf_counter() - start) / SCAN_CHUNK <= SCAN_THREADED_ABOVE_SECONDS:
        return checks + _check_all(rest)
    # One task per chunk: ThreadPoolExecutor.map ignores `chunksize`, and a future per file made a warm-cache scan of
    # 100,000 files 4.8x slower than checking them in one thread (benchmarks/folder_startup.py).
    chunks = [rest[begin:begin + SCAN_CHUNK] for begin in range(0, len(rest), SCAN_CHUNK)]
    with concurrent.futures.ThreadPoolExecutor(SCAN_THREADS) as pool:
        return checks + [check for chunk in pool.map(_check_all, chunks) for check in chunk]


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """The usable images of a folder, as `scan` found them.

    Attributes:
        path: the folder.
        files: sorted file paths (class by class for a labelled folder).
        labels: the int label of each file.
        class_names: the class names (empty for an unconditional folder).
        sizes: each file's size in bytes, as the scan saw it.
    """

    path: str
    files: Tuple[str, ...]
    labels: Tuple[int, ...]
    class_names: Tuple[str, ...]
    sizes: Tuple[int, ...]

    def __len__(self):
        return len(self.files)

    def fingerprint(self):
        """What identifies these images: {"kind": "folder", "path", "num_images", "classes", "sha256"}, the SHA-256
        of the class names and of each file's path relative to the folder, size and label (see
        `sagan_tf.evaluation.classifiers.fingerprint`); computed from the scan, without touching the files again."""
        digest = hashlib.sha256()
        digest.update(json.dumps(list(self.class_names)).encode("utf-8"))
        for file, size, label in zip(self.files, self.sizes, self.labels):
            relative = os.path.relpath(file, self.path).replace(os.sep, "/")
            digest.update(f"{relative}\t{size}\t{label}\n".encode("utf-8"))
        return {"kind": "folder", "path": self.path, "num_images": len(self.files), "classes": list(self.class_names),
                "sha256": digest.hexdigest()}

    def subset(self, count, seed):
        """A uniformly random subset of `count` of the images (without replacement, in scan order), the same for the
        same seed; the whole scan when `count` is not smaller than it."""
        if count >= len(self.files):
            return self
        return self._take(np.random.default_rng(seed).choice(len(self.files), size=count, replace=False))

    def class_subset(self, fraction, seed):
        """The same `fraction` of each class's images (at least one per class), drawn without replacement with the
        same draws for the same seed, in scan order: a small-data version of a labelled folder with its class
        proportions. `fraction` 1 keeps the whole scan.

        Raises:
          ValueError: a fraction outside (0, 1].
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction}")
        if fraction == 1:
            return self
        rng = np.random.default_rng(seed)
        labels = np.asarray(self.labels)
        keep = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            count = max(1, int(round(fraction * len(members))))
            keep.extend(rng.choice(members, size=count, replace=False))
        return self._take(keep)

    def _take(self, indices):
        """The scan of the images at `indices`, in scan order."""
        keep = np.sort(np.asarray(indices, dtype=np.int64))
        return dataclasses.replace(self, files=tuple(self.files[i] for i in keep),
                                   labels=tuple(self.labels[i] for i in keep), sizes=tuple(self.sizes[i] for i in keep))


def scan(path):
    """Lists the usable images under `path` (see the module docstring).

    Returns:
        A `FolderScan`: sorted file paths, their int labels, the class names (empty for an unconditional folder)
        and their sizes.

    Raises:
        DatasetError: if no usable image is found, or a class subfolder has none.
    """
    classes = class_names(path)
    roots = [os.path.join(path, c) for c in classes] if classes else [path]
    candidates, skipped = [], []
    for label, root in enumerate(roots):
        for file in _walk_files(root):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                candidates.append((file, label))
            else:
                skipped.append((file, "not an image file extension"))
    checks = _check_files([file for file, _ in candidates])
    files, labels, sizes = [], [], []
    class_counts = [0] * len(roots)
    for (file, label), (reason, size) in zip(candidates, checks):
        if reason:
            skipped.append((file, reason))
            continue
        files.append(file)
        labels.append(label)
        sizes.append(size)
        class_counts[label] += 1
    if classes:
        loose = [f for f in os.listdir(path) if _visible(f) and os.path.isfile(os.path.join(path, f))]
        if loose:
            logger.warning(
                "Ignoring %d file(s) directly inside %s (e.g. %s): it has class subfolders, and only images "
                "inside them are used.", len(loose), path, sorted(loose)[0]
            )
    if skipped:
        examples = "; ".join(f"{os.path.relpath(f, path)}: {why}" for f, why in skipped[:5])
        logger.warning(
            "Skipped %d of %d files under %s that cannot be used as images (%s%s).",
            len(skipped), len(skipped) + len(files), path, examples, "; ..." if len(skipped) > 5 else "",
        )
    if not files:
        raise DatasetError(
            f"The image folder {path} holds no readable PNG, JPEG, GIF or BMP image ({len(skipped)} other "
            "file(s) skipped); put the images in it, either directly (unconditional) or in one subfolder "
            "per class."
        )
    empty = [c for c, n in zip(classes, class_counts) if n == 0]
    if empty:
        raise DatasetError(
            f"The class subfolder(s) {', '.join(empty)} of {path} hold no readable image; every subfolder "
            "is a class, so add images to them or move them out of the folder (names starting with '.' "
            "are ignored)."
        )
    return FolderScan(path, tuple(files), tuple(labels), tuple(classes), tuple(sizes))


def epoch_order(count, epoch, seed, shuffle=True):
    """The order in which epoch `epoch` reads `count` files: a permutation seeded by (seed, epoch), or 0..count-1.

    Every epoch has its own permutation, and each is a pure function of its seed and number, so a pipeline can
    start in the middle of any epoch (see `position_stream`).
    """
    if not shuffle:
        return tf.range(count, dtype=tf.int64)
    return tf.random.experimental.stateless_shuffle(
        tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]), alg="philox"
    )


def position_stream(count, position, *, shuffle, repeat, seed):
    """The stream of (position, file index) pairs of a folder pipeline, starting at stream position `position`.

    Position p is file `epoch_order(count, p // count, seed)[p % count]`: the stream read from position 0 and the
    stream read from p agree from p on, which is what makes a resumed training run read exactly the data an
    uninterrupted one reads.
    """
    first_epoch, offset = divmod(position, count)
    last_epoch = 2**62 if repeat else first_epoch + 1

    def epoch_elements(epoch):
        start = tf.where(epoch == first_epoch, tf.constant(offset, tf.int64), tf.constant(0, tf.int64))
        order = epoch_order(count, epoch, seed, shuffle)[start:]
        return tf.data.Dataset.from_tensor_slices((epoch * count + tf.range(start, count, dtype=tf.int64), order))

    return tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_elements)


def load(folder_scan, split, image_size, batch_size, *, shuffle, random_flip, repeat, seed=None, input_context=None,
         position=0):
    """The images of a `FolderScan` as batched, prefetched (images, labels); see the module docstring.

    The pipeline is position-addressable: each epoch reads the files in its own permutation seeded by (seed,
    epoch), each image's flip is seeded by (seed, its position in the stream), and `position` starts the stream
    there (the examples this input pipeline delivered before, e.g. in a run that is being resumed). A file that
    passes the scan but fails to decode later is dropped, which shifts the rest of the stream by one example.
    """
    path, files, labels = folder_scan.path, list(folder_scan.files), list(folder_scan.labels)
    if input_context is not None and input_context.num_input_pipelines > 1:
        step, start = input_context.num_input_pipelines, input_context.input_pipeline_id
        files, labels = files[start::step], labels[start::step]
        if seed is not None:
            seed += start
    # Without repetition a short shard would give no full batch; with it an empty shard would spin forever.
    if len(files) < (batch_size if not repeat else 1):
        raise DatasetError(
            f"The image folder {path} gives {len(files)} image(s) to this input pipeline, fewer than one "
            f"full batch of {batch_size} (dropped as a remainder), so the pipeline would yield nothing; add "
            f"images, use a smaller batch_size, or pass repeat=True. Received: batch_size={batch_size}"
        )
    if seed is None:
        seed = random.randrange(2**31)  # a different order on every run, still one permutation per epoch
    file_table = tf.constant(files)
    label_table = tf.constant(labels, tf.int32)

    def read(stream_position, index):
        flip_seed = tf.stack([tf.constant(seed + 2**31, tf.int64), stream_position])
        return tf.io.read_file(tf.gather(file_table, index)), tf.gather(label_table, index), flip_seed

    dataset = position_stream(len(files), position, shuffle=shuffle, repeat=repeat, seed=seed)
    dataset = dataset.map(read, num_parallel_calls=preprocessing.AUTOTUNE)
    return preprocessing.finish(
        dataset,
        decode_fn=preprocessing.decode_image,
        image_size=image_size,
        batch_size=batch_size,
        random_flip=random_flip,
        skip_errors=True,
    )
