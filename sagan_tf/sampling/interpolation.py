"""Interpolations that show what a generator learned: between latents at a fixed class, between classes at a fixed
latent.

    rows = interpolation.interpolation_rows(generator, num_classes=4, latent_dim=64, steps=8, seed=0)
    images.save_png(interpolation.render(rows, class_names), "interpolation.png")

- Latent interpolation: z(t) between two latents z0 and z1 of one class, spherical (`slerp`, Shoemake 1985; the
  path White 2016 recommends for Gaussian latents, which keeps |z| near that of the end points) or linear.
- Class interpolation: one latent, the class-conditional batch-norm parameters blended from class a to class b,
  gamma(t) = (1 - t) gamma_a + t gamma_b (and beta), by feeding the generator class weights
  (1 - t) e_a + t e_b instead of an integer label (`ConditionalBatchNorm`); BigGAN (Brock et al. 2019, fig. 8)
  interpolates its class embeddings the same way.

The end points of every row are exactly the images of the end latents (or classes): t = 0 and t = 1 give z0 and z1
(e_a and e_b) bit for bit.
"""

import dataclasses
from typing import Tuple

import keras
import numpy as np

from sagan_tf.sampling import images
from sagan_tf.errors import UsageError

METHODS = ("slerp", "linear")


def slerp(z0, z1, t):
    """Spherical interpolation between latents, per row: sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1.

    w is the angle between z0 and z1; nearly parallel rows fall back to linear interpolation. Computed in float64;
    t = 0 and t = 1 return z0 and z1 exactly.

    Args:
      z0: float array (..., latent_dim).
      z1: float array of the same shape.
      t: float in [0, 1], or an array broadcasting against z0's leading axes with a trailing axis of 1.

    Returns:
      A float32 array of z0's shape.
    """
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)
    norms = np.linalg.norm(z0, axis=-1, keepdims=True) * np.linalg.norm(z1, axis=-1, keepdims=True)
    cosine = np.clip(np.sum(z0 * z1, axis=-1, keepdims=True) / np.maximum(norms, 1e-12), -1.0, 1.0)
    omega = np.arccos(cosine)
    sin_omega = np.sin(omega)
    parallel = sin_omega < 1e-6
    safe = np.where(parallel, 1.0, sin_omega)
    spherical = (np.sin((1.0 - t) * omega) / safe) * z0 + (np.sin(t * omega) / safe) * z1
    result = np.where(parallel, (1.0 - t) * z0 + t * z1, spherical)
    result = np.where(t == 0.0, z0, np.where(t == 1.0, z1, result))
    return result.astype("float32")


def lerp(z0, z1, t):
    """Linear interpolation (1 - t) z0 + t z1 in float64; t = 0 and t = 1 return z0 and z1 exactly."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)
    result = (1.0 - t) * z0 + t * z1
    return np.where(t == 0.0, z0, np.where(t == 1.0, z1, result)).astype("float32")


def interpolate_latents(z0, z1, steps, method="slerp"):
    """`steps` latents from z0 to z1 (both included), float32 (steps, latent_dim).

    Raises:
      UsageError: fewer than 2 steps, or an unknown method.
    """
    _check_steps(steps)
    if method not in METHODS:
        raise UsageError(f"The interpolation method must be one of {', '.join(METHODS)}. Received: method={method!r}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return (slerp if method == "slerp" else lerp)(np.asarray(z0)[None], np.asarray(z1)[None], t)


def class_weights(label_a, label_b, steps, num_classes):
    """Class weights (1 - t) e_a + t e_b for `steps` values of t from 0 to 1, float32 (steps, num_classes)."""
    _check_steps(steps)
    for label in (label_a, label_b):
        if not 0 <= int(label) < num_classes:
            raise UsageError(f"Class ids must be in [0, {num_classes}). Received: {label}")
    t = np.linspace(0.0, 1.0, steps)
    weights = np.zeros((steps, num_classes), np.float64)
    weights[:, int(label_a)] += 1.0 - t
    weights[:, int(label_b)] += t
    return weights.astype("float32")


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise UsageError(f"An interpolation needs steps >= 2 (both end points). Received: steps={steps!r}")


@dataclasses.dataclass(frozen=True)
class InterpolationRow:
    """One row of an interpolation figure.

    Attributes:
      kind: "latent" (z0 -> z1 at a fixed class) or "class" (class a -> class b at a fixed latent).
      images: float32 (steps, H, W, 3) in [-1, 1].
      classes: the class of a latent row, (a,), or the end classes of a class row, (a, b); () unconditional.
      method: "slerp" or "linear" for latent rows; "blend" for class rows.
    """

    kind: str
    images: np.ndarray
    classes: Tuple[int, ...]
    method: str


def latent_row(generator, z0, z1, steps, label=None, method="slerp"):
    """The images of `interpolate_latents(z0, z1, steps, method)` at class `label` (None: unconditional)."""
    z = interpolate_latents(z0, z1, steps, method)
    labels = None if label is None else np.full((steps,), int(label), "int32")
    generated = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    return InterpolationRow("latent", generated, () if label is None else (int(label),), method)


def class_row(generator, z, label_a, label_b, steps, num_classes):
    """The images of latent `z` with the class parameters blended from `label_a` to `label_b`."""
    weights = class_weights(label_a, label_b, steps, num_classes)
    latents = np.repeat(np.asarray(z, "float32")[None], steps, axis=0)
    generated = keras.ops.convert_to_numpy(generator(latents, weights, training=False))
    return InterpolationRow("class", generated, (int(label_a), int(label_b)), "blend")


def interpolation_rows(generator, num_classes, latent_dim, steps=8, seed=0, latent_rows=None, class_rows=None,
                       method="slerp"):
    """The rows of an interpolation figure: latent interpolations, then class interpolations.

    Latents are drawn from `numpy.random.default_rng(seed)` (standard normal). Conditional models get
    `latent_rows` rows (default min(num_classes, 4)), row i at class i * num_classes // latent_rows, and
    `class_rows` rows (default the same number) from class i to class i + num_classes // 2 (mod num_classes) at
    a fresh latent; unconditional ones get `latent_rows` (default 4) latent rows and no class rows.

    Args:
      generator: a `Generator` (called with `training=False`).
      num_classes: the generator's classes (0: unconditional).
      latent_dim: its latent size.
      steps: images per row, end points included.
      seed: seed of the latents.
      latent_rows: number of latent-interpolation rows.
      class_rows: number of class-interpolation rows (conditional models only).
      method: "slerp" or "linear" for the latent rows.

    Returns:
      A list of `InterpolationRow`.
    """
    rng = np.random.default_rng(seed)
    conditional = num_classes > 0
    latent_rows = (min(num_classes, 4) if conditional else 4) if latent_rows is None else latent_rows
    class_rows = (latent_rows if conditional and num_classes > 1 else 0) if class_rows is None else class_rows
    if class_rows and num_classes < 2:
        raise UsageError(f"Class interpolation needs a generator with >= 2 classes. Received: {num_classes} classes")
    rows = []
    for index in range(latent_rows):
        z0, z1 = rng.standard_normal((2, latent_dim))
        label = index * num_classes // latent_rows if conditional else None
        rows.append(latent_row(generator, z0, z1, steps, label, method))
    for index in range(class_rows):
        z = rng.standard_normal(latent_dim)
        label_a = index * num_classes // class_rows
        label_b = (label_a + max(num_classes // 2, 1)) % num_classes
        rows.append(class_row(generator, z, label_a, label_b, steps, num_classes))
    return rows


def row_label(row, class_names=None):
    """"cat (slerp)" for a latent row, "cat -> dog" for a class row, "slerp" for an unconditional one."""
    names = [images.class_name(label, class_names) for label in row.classes]
    if row.kind == "class":
        return f"{names[0]} -> {names[1]}"
    return f"{names[0]} ({row.method})" if names else row.method


def render(rows, class_names=None):
    """A grid (uint8) with one labelled row per `InterpolationRow`, t = 0 on the left and t = 1 on the right."""
    if not rows:
        raise UsageError("Nothing to render: no interpolation rows.")
    steps = {len(row.images) for row in rows}
    if len(steps) != 1:
        raise UsageError(f"Every row needs the same number of steps. Received: {sorted(steps)}")
    pixels = np.concatenate([images.to_uint8(row.images) for row in rows])
    return images.make_grid(pixels, len(rows), steps.pop(), [row_label(row, class_names) for row in rows])


__all__ = ["METHODS", "slerp", "lerp", "interpolate_latents", "class_weights", "InterpolationRow", "latent_row",
           "class_row", "interpolation_rows", "row_label", "render"]
