"""Where a trained generator's self-attention layers look (SAGAN paper, figure 5).

    restored = restore.restore_generator("runs/synthetic32")
    z = np.random.default_rng(0).standard_normal((4, restored.config.model.latent_dim)).astype("float32")
    result = visualize.attention_maps(restored.generator, z, labels=[0, 1, 2, 3], query_points=[(8, 8), (20, 24)])
    images.save_png(visualize.render_attention_maps(result), "attention_maps.png")

Attention maps (SAGAN paper, figure 5): for a query pixel, the softmax row of a layer's attention (eq. 1) over the
key positions, shown on the image. Conventions:

- Query points are pixel coordinates (row, col) of the generated image, integers with 0 <= row < image height.
- A query pixel maps to the feature-map position floor(row * H / image_height), floor(col * W / image_width) of a
  layer with an H x W feature map (the cell of the feature map that covers the pixel).
- Maps are resized from the key grid to the image with nearest-neighbour sampling by the same rule: image pixel
  (i, j) shows the weight of key cell (floor(i * key_H / image_height), floor(j * key_W / image_width)). Each key
  cell then covers a block of pixels with its own weight, so a map sums to image_height * image_width / keys (its
  mean is 1 / keys), and no weight is invented between key positions. A layer with 2x2-pooled keys has a key grid
  of half its feature-map size (`AttentionConfig.pool_keys`).

Rendering uses NumPy and Pillow only.
"""

import dataclasses
import math
from typing import Optional, Tuple

import keras
import numpy as np

from sagan_tf.errors import UsageError
from sagan_tf.sampling.images import GRID_PADDING, to_uint8

# Marker colours of query points 0, 1, ... (cycled).
QUERY_COLORS = ((255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 220, 0), (255, 64, 255), (0, 255, 255),
                (255, 150, 0), (160, 90, 255))
# Anchors of an inferno-like colour map (black - purple - red - orange - pale yellow), linearly interpolated.
_COLORMAP_ANCHORS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], "float32")


@dataclasses.dataclass(frozen=True)
class AttentionMaps:
    """Where each attention layer of a generator looks from each query point of each generated image.

    Attributes:
      images: float32 (batch, height, width, 3) generated images in [-1, 1].
      labels: int32 (batch,) class labels the images were generated with, or None.
      maps: float32 (batch, layers, queries, height, width): the attention weights of each query resized to the
        image (nearest neighbour, see the module docstring).
      layer_names: the attention layers' names, in forward order (axis 1 of `maps`).
      query_points: int32 (queries, 2) query pixels (row, col) of the images (axis 2 of `maps`).
      feature_sizes: per layer, (H, W) of its feature map (the query grid).
      key_sizes: per layer, (key_H, key_W) of its key grid.
      query_cells: int32 (layers, queries, 2): each query's position on each layer's feature map.
      key_weights: per layer, float32 (batch, queries, key_H, key_W): the softmax rows before resizing; each sums
        to 1.
    """

    images: np.ndarray
    labels: Optional[np.ndarray]
    maps: np.ndarray
    layer_names: Tuple[str, ...]
    query_points: np.ndarray
    feature_sizes: Tuple[Tuple[int, int], ...]
    key_sizes: Tuple[Tuple[int, int], ...]
    query_cells: np.ndarray
    key_weights: Tuple[np.ndarray, ...]


def default_query_points(image_size):
    """Three query pixels (row, col) spread over an `image_size` x `image_size` image."""
    fractions = np.array([(0.25, 0.25), (0.5, 0.75), (0.75, 0.375)])
    return np.floor(fractions * image_size).astype("int32")


def parse_query_points(text):
    """Parses "row,col;row,col;..." into an int32 array (queries, 2).

    Raises:
      UsageError: the text is not a ';'-separated list of 'row,col' integer pairs.
    """
    points = []
    for item in str(text).replace(" ", "").split(";"):
        if not item:
            continue
        parts = item.split(",")
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            raise UsageError(f"Query points must be 'row,col' integer pixel pairs separated by ';', e.g. "
                             f"'8,8;16,24'. Received: query_points={text!r}")
        points.append((int(parts[0]), int(parts[1])))
    if not points:
        raise UsageError(f"Give at least one query point 'row,col'. Received: query_points={text!r}")
    return np.array(points, "int32")


def check_query_points(query_points, height, width):
    """`query_points` as an int32 (queries, 2) array of pixels inside a height x width image.

    Raises:
      UsageError: the points are not integer (row, col) pairs inside the image.
    """
    points = np.asarray(query_points)
    if points.ndim == 1 and points.shape == (2,):
        points = points[None]
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise UsageError(f"Query points must be a list of (row, col) pairs. Received: query_points={query_points}")
    if not np.all(np.equal(np.mod(points, 1), 0)):
        raise UsageError("Query points are integer pixel coordinates (row, col) of the generated image, not "
                         f"fractions. Received: query_points={query_points}")
    points = points.astype("int32")
    inside = (points >= 0).all(axis=1) & (points[:, 0] < height) & (points[:, 1] < width)
    if not inside.all():
        raise UsageError(f"Query points must lie inside the {height}x{width} image (0 <= row < {height}, "
                         f"0 <= col < {width}). Received: query_points={points[~inside].tolist()}")
    return points


def scale_index(index, source_size, target_size):
    """The cell of a `target_size` grid covering position `index` of a `source_size` grid: floor(i * t / s)."""
    return (np.asarray(index) * target_size) // source_size


def attention_maps(generator, z, labels=None, query_points=None):
    """Generates images and the attention map of every query point in every self-attention layer.

    Args:
      generator: a `sagan_tf.models.Generator` (e.g. `restore_generator(...).generator`), called with
        `training=False`.
      z: float (batch, latent_dim) latent vectors.
      labels: int (batch,) class labels; required by class-conditional generators.
      query_points: (queries, 2) integer pixels (row, col) of the generated image; default
        `default_query_points(image_size)`.

    Returns:
      An `AttentionMaps`.

    Raises:
      UsageError: the generator has no self-attention layer, or a query point lies outside the image.
    """
    if not getattr(generator, "attention_layers", None):
        name = getattr(getattr(generator, "config", None), "name", generator.name)
        raise UsageError(f"Generator '{name}' has no self-attention layer (its config's g_attention_resolutions is "
                         "empty), so it has no attention maps to show.")
    labels = None if labels is None else np.asarray(labels, "int32")
    images, scores = generator(np.asarray(z, "float32"), labels, training=False, return_attention_scores=True)
    images = keras.ops.convert_to_numpy(images)
    _, height, width, _ = images.shape
    points = check_query_points(default_query_points(height) if query_points is None else query_points,
                                height, width)
    layer_names, feature_sizes, key_sizes, cells, key_weights, maps = [], [], [], [], [], []
    for name, layer_scores in scores.items():
        layer_scores = keras.ops.convert_to_numpy(layer_scores)  # (batch, H, W, key_H, key_W)
        _, feature_h, feature_w, key_h, key_w = layer_scores.shape
        rows = scale_index(points[:, 0], height, feature_h)
        cols = scale_index(points[:, 1], width, feature_w)
        weights = layer_scores[:, rows, cols]  # (batch, queries, key_H, key_W)
        resized = weights[:, :, scale_index(np.arange(height), height, key_h)][
            :, :, :, scale_index(np.arange(width), width, key_w)]
        layer_names.append(name)
        feature_sizes.append((int(feature_h), int(feature_w)))
        key_sizes.append((int(key_h), int(key_w)))
        cells.append(np.stack([rows, cols], axis=-1))
        key_weights.append(weights.astype("float32"))
        maps.append(resized.astype("float32"))
    return AttentionMaps(images=images, labels=labels, maps=np.stack(maps, axis=1), layer_names=tuple(layer_names),
                         query_points=points, feature_sizes=tuple(feature_sizes), key_sizes=tuple(key_sizes),
                         query_cells=np.stack(cells).astype("int32"), key_weights=tuple(key_weights))


def colormap(values):
    """Maps values in [0, 1] to uint8 RGB colours of an inferno-like colour map; shape (...,) -> (..., 3)."""
    position = np.clip(np.asarray(values, "float32"), 0.0, 1.0) * (len(_COLORMAP_ANCHORS) - 1)
    low = np.minimum(np.floor(position).astype(int), len(_COLORMAP_ANCHORS) - 2)
    fraction = (position - low)[..., None]
    colors = (1 - fraction) * _COLORMAP_ANCHORS[low] + fraction * _COLORMAP_ANCHORS[low + 1]
    return np.round(colors).astype("uint8")


def overlay(image, attention, alpha=0.6):
    """An image (uint8 (h, w, 3)) blended with the colour-mapped attention (h, w), scaled to its own maximum."""
    peak = float(attention.max())
    heat = colormap(attention / peak if peak > 0 else attention).astype("float32")
    return np.round((1 - alpha) * image.astype("float32") + alpha * heat).astype("uint8")


def _upscale(image, scale):
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _mark(draw, point, scale, color):
    # A ring of the query's colour with a black outline, centred on the query pixel.
    y, x = (point[0] + 0.5) * scale, (point[1] + 0.5) * scale
    radius = max(3.0, 1.5 * scale)
    draw.ellipse((x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1), outline=(0, 0, 0), width=1)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=color, width=max(1, scale // 2))


def render_attention_maps(result, scale=None, alpha=0.6, max_images=None):
    """A figure of attention maps (SAGAN paper, figure 5) as a uint8 image.

    One row per generated image: the image with every query point marked (ring colours from `QUERY_COLORS`),
    then, for each attention layer and each query point, the image overlaid with that query's attention map
    (inferno-like colours, each map scaled to its own maximum) with the query marked. A header row names the
    layer, its key grid and the query of each column. Tiles are separated by `images.GRID_PADDING` white
    pixels.

    Args:
      result: an `AttentionMaps` from `attention_maps`.
      scale: integer upscaling of every tile (nearest neighbour); default: the smallest making tiles >= 128 px.
      alpha: opacity of the heatmap over the image.
      max_images: render only the first `max_images` images.

    Returns:
      A uint8 array (height, width, 3): with n images, L layers, Q queries and image size h x w, its height is
      header + n * (h * scale + GRID_PADDING) + GRID_PADDING and its width (1 + L * Q) * (w * scale + GRID_PADDING)
      + GRID_PADDING.
    """
    from PIL import Image, ImageDraw, ImageFont

    images = to_uint8(result.images[:max_images])
    maps = result.maps[:max_images]
    count, height, width, _ = images.shape
    num_layers, num_queries = maps.shape[1], maps.shape[2]
    if scale is None:
        scale = max(1, math.ceil(128 / max(height, width)))
    scale = int(scale)
    tile_h, tile_w, pad = height * scale, width * scale, GRID_PADDING
    font = ImageFont.load_default()
    headers = [("generated", "all queries")]
    for layer, name in enumerate(result.layer_names):
        key_h, key_w = result.key_sizes[layer]
        for query, (row, col) in enumerate(result.query_points):
            headers.append((f"{name} ({key_h}x{key_w} keys)", f"query {query + 1} ({row},{col})"))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = max(measure.textbbox((0, 0), "Ag", font=font)[3], 1) + 2
    header = 2 * line_height + pad
    columns = 1 + num_layers * num_queries
    canvas = Image.new("RGB", (pad + columns * (tile_w + pad), header + count * (tile_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for column, lines in enumerate(headers):
        for line_index, text in enumerate(lines):
            draw.text((pad + column * (tile_w + pad), pad + line_index * line_height), text, fill=(0, 0, 0),
                      font=font)
    for index in range(count):
        y = header + index * (tile_h + pad)
        tiles = [(images[index], range(num_queries))]
        for layer in range(num_layers):
            for query in range(num_queries):
                tiles.append((overlay(images[index], maps[index, layer, query], alpha), [query]))
        for column, (tile, marked) in enumerate(tiles):
            x = pad + column * (tile_w + pad)
            tile_image = Image.fromarray(_upscale(tile, scale))
            tile_draw = ImageDraw.Draw(tile_image)
            for query in marked:
                _mark(tile_draw, result.query_points[query], scale, QUERY_COLORS[query % len(QUERY_COLORS)])
            canvas.paste(tile_image, (x, y))
    return np.array(canvas)


__all__ = ["AttentionMaps", "QUERY_COLORS", "attention_maps", "render_attention_maps", "default_query_points",
           "parse_query_points", "check_query_points", "colormap", "overlay"]
