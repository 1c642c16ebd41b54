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
to decode inside the pipeline is dropped by `ignore_errors` rather than stopping training.

The folder is a single split: "train" and "test" both read every image; "test" only changes the defaults
(no shuffle, no repeat, no flip).
"""

import logging
import os
import stat

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
    try:
        info = os.stat(path)  # follows links
    except OSError as error:
        return "broken link" if os.path.islink(path) else f"unreadable ({error.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"  # e.g. a FIFO, whose read would block forever
    if info.st_size == 0:
        return "empty file"
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
            handle.seek(max(0, info.st_size - len(_PNG_END)))
            tail = handle.read()
    except OSError as error:
        return f"unreadable ({error.strerror})"
    kind = next((k for k, magics in _MAGIC.items() if head.startswith(magics)), None)
    if kind is None:
        return "not a PNG, JPEG, GIF or BMP image"
    complete = (kind == "png" and tail.endswith(_PNG_END)) or (kind == "jpeg" and tail.endswith(_JPEG_END))
    if kind in ("png", "jpeg") and not complete:
        try:
            preprocessing.decode_image(tf.io.read_file(path))
        except (tf.errors.OpError, ValueError):
            return f"truncated or corrupt {kind.upper()}"
    return None


def scan(path):
    """Lists the usable images under `path`.

    Returns:
        (files, labels, class_names): sorted file paths, their int labels, and the class names (empty
        for an unconditional folder).

    Raises:
        DatasetError: if no usable image is found, or a class subfolder has none.
    """
    classes = class_names(path)
    roots = [os.path.join(path, c) for c in classes] if classes else [path]
    files, labels, skipped, class_counts = [], [], [], []
    for label, root in enumerate(roots):
        count = 0
        for file in _walk_files(root):
            if not file.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append((file, "not an image file extension"))
                continue
            reason = check_image_file(file)
            if reason:
                skipped.append((file, reason))
                continue
            files.append(file)
            labels.append(label)
            count += 1
        class_counts.append(count)
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
    return files, labels, classes


def load(path, split, image_size, batch_size, *, shuffle, random_flip, repeat, seed=None, input_context=None):
    """The images under `path` as batched, prefetched (images, labels); see the module docstring."""
    files, labels, _ = scan(path)
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
    dataset = tf.data.Dataset.from_tensor_slices((files, tf.constant(labels, tf.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(
        lambda file, label: (tf.io.read_file(file), label), num_parallel_calls=preprocessing.AUTOTUNE
    )
    return preprocessing.finish(
        dataset,
        decode_fn=preprocessing.decode_image,
        image_size=image_size,
        batch_size=batch_size,
        random_flip=random_flip,
        seed=seed,
        skip_errors=True,
    )
