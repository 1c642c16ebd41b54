"""Generated images as pictures: pixels, grids (with class-name row labels) and PNG files.

    z, labels, row_classes, rows, cols = images.grid_inputs(latent_dim=64, num_classes=4, samples_per_class=8)
    pixels = images.to_uint8(generator(z, labels, training=False))
    images.save_png(images.make_grid(pixels, rows, cols, row_labels=["ring", "bar", ...]), "samples.png")

Rendering uses NumPy and Pillow only.
"""

import io
import math

import numpy as np

from sagan_tf.errors import UsageError

#: White pixels between and around the tiles of a grid.
GRID_PADDING = 2


def to_uint8(images):
    """Images in [-1, 1] to uint8 pixels: round((x + 1) * 127.5), clipped to [0, 255]."""
    return np.clip(np.round((np.asarray(images, "float32") + 1.0) * 127.5), 0, 255).astype("uint8")


def grid_inputs(latent_dim, num_classes, samples_per_class=8, seed=0, max_rows=16):
    """The fixed latents and labels of a sample grid, drawn from `seed`.

    Conditional models get one row per class (`max_rows` evenly spaced classes when there are more), each of
    `samples_per_class` images; unconditional ones a square of `samples_per_class` x `samples_per_class`.

    Returns:
      (z float32 (rows * cols, latent_dim) ~ N(0, I), labels int32 (rows * cols,) or None, class id of each row or
      None, rows, cols).
    """
    rng = np.random.default_rng(seed)
    cols = samples_per_class
    if num_classes:
        row_classes = np.unique(np.linspace(0, num_classes - 1, min(num_classes, max_rows)).round().astype(int))
        labels = np.repeat(row_classes, cols).astype("int32")
        rows = len(row_classes)
    else:
        row_classes, labels, rows = None, None, samples_per_class
    z = rng.standard_normal((rows * cols, latent_dim)).astype("float32")
    return z, labels, row_classes, rows, cols


def make_grid(images, rows, cols, row_labels=None):
    """Tiles uint8 images (rows * cols, h, w, 3) into one image with `GRID_PADDING` pixels between tiles.

    With `row_labels` the grid gets a left margin with one text label per row. Tile (r, c) starts at
    y = GRID_PADDING + r * (h + GRID_PADDING), x = margin + GRID_PADDING + c * (w + GRID_PADDING), where
    margin = grid width - (cols * (w + GRID_PADDING) + GRID_PADDING).

    Returns:
      A uint8 array (height, width, 3).
    """
    from PIL import Image, ImageDraw, ImageFont

    images = np.asarray(images)
    _, h, w, _ = images.shape
    pad = GRID_PADDING
    font = ImageFont.load_default()
    margin = 0
    if row_labels is not None:
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        margin = 2 * pad + max(measure.textbbox((0, 0), str(label), font=font)[2] for label in row_labels)
    grid = np.full((pad + rows * (h + pad), margin + pad + cols * (w + pad), 3), 255, "uint8")
    for index, image in enumerate(images[:rows * cols]):
        r, c = divmod(index, cols)
        y, x = pad + r * (h + pad), margin + pad + c * (w + pad)
        grid[y:y + h, x:x + w] = image
    if row_labels is not None:
        canvas = Image.fromarray(grid)
        draw = ImageDraw.Draw(canvas)
        for r, label in enumerate(row_labels):
            draw.text((pad, pad + r * (h + pad) + h // 2), str(label), fill=(0, 0, 0), font=font, anchor="lm")
        grid = np.array(canvas)
    return grid


def class_name(label, class_names=None):
    """The name of class `label`: `class_names[label]` when given and long enough, else "class <label>"."""
    label = int(label)
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return f"class {label}"


def labelled_grid(images, labels=None, class_names=None):
    """A grid of samples with one row per class, each row labelled with the class name.

    Args:
      images: (n, h, w, 3) float images in [-1, 1] or uint8 pixels.
      labels: (n,) class label of each image; the rows follow the classes' order of first appearance and hold
        that class's images in order (rows shorter than the longest are filled with white). None (unconditional
        samples): a square-ish grid without labels.
      class_names: names indexed by class id; missing names read "class <k>".

    Returns:
      A uint8 array (height, width, 3) (see `make_grid` for the layout).

    Raises:
      UsageError: not one label per image.
    """
    images = np.asarray(images)
    pixels = images if images.dtype == np.uint8 else to_uint8(images)
    if labels is None:
        cols = math.ceil(math.sqrt(len(pixels)))
        rows = math.ceil(len(pixels) / cols)
        return make_grid(pixels, rows, cols)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(pixels):
        raise UsageError(f"Give one label per image ({len(pixels)} images). Received: {len(labels)} labels")
    _, first = np.unique(labels, return_index=True)
    classes = labels[np.sort(first)]
    groups = [pixels[labels == k] for k in classes]
    cols = max(len(group) for group in groups)
    blank = np.full(pixels.shape[1:], 255, "uint8")
    tiles = [group[i] if i < len(group) else blank for group in groups for i in range(cols)]
    return make_grid(np.stack(tiles), len(groups), cols, row_labels=[class_name(k, class_names) for k in classes])


def encode_png(array):
    """PNG bytes of a uint8 (height, width, 3) array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, "uint8")).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(array, path, what="image"):
    """Writes a uint8 (height, width, 3) array as a PNG file (any `tf.io.gfile` path), creating its directory.

    The file is written to a `.tmp` sibling renamed into place, so no reader sees a half-written PNG.

    Args:
      array: the pixels.
      path: the PNG file.
      what: what the picture is, for the error message ("sample grid", ...).

    Returns:
      The PNG bytes written.

    Raises:
      WriteFailedError: the filesystem refused the write (`sagan_tf.run.write_failures`); the temporary file is removed.
    """
    from sagan_tf.run import atomic_write

    png = encode_png(array)
    atomic_write.write_atomically(str(path), png, what)
    return png


__all__ = ["GRID_PADDING", "to_uint8", "grid_inputs", "make_grid", "class_name", "labelled_grid", "encode_png",
           "save_png"]
