"""Augmenting every image the discriminator sees: DiffAugment's differentiable ops and ADA's adaptive strength.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training", sec. 3, eqs. 3-4)
applies the same family of random transformations T to real and generated images, in the discriminator update and
in the generator update:

    L_D = f(-D(T(x))) + f(D(T(G(z))))        L_G = f(-D(T(G(z))))

A discriminator that only ever sees T(x) cannot memorise the few real images, and since every op of T is
differentiable the generator learns through it. The ops (each one draws its parameters per image):

    color        brightness: x + (b - 0.5); saturation: m_c + (x - m_c) * 2s with m_c the per-pixel channel mean;
                 contrast: m + (x - m) * (c + 0.5) with m the image's mean; b, s, c ~ U(0, 1)
    translation  a shift of the image by (dy, dx), each uniform in [-s, s] with s = int(size / 8 + 0.5), zeros
                 shifted in
    cutout       a square of side int(size / 2 + 0.5) set to zero, its centre uniform over the image (it may reach
                 past the border, where it is clipped)

Both sizes are rounded as DiffAugment's code rounds them (`rand_translation` and `rand_cutout` in
mit-han-lab/data-efficient-gans, DiffAugment_tf.py): 3 and 11 on 21x21 images, where size // 8 and size // 2 would
be 2 and 10.

Images are in [-1, 1], so zero is mid-grey.

ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", sec. 3) applies each
augmentation to each image with probability p and adjusts p during training from the overfitting heuristic
r_t = E[sign(D(T(x)))] (their eq. 1, on the augmented real images the discriminator trains on): every `interval`
steps p moves up when r_t exceeds the target (D is confidently right about the real images: it overfits) and down
otherwise, by the number of real images the discriminator saw in those steps over `kimg * 1000`, so that p can go
from 0 to 1 in `kimg` thousand images (their sec. 3.1: 500k images, every 4 minibatches, target 0.6). Here the
augmentations ADA gates are the DiffAugment ops above, each one (brightness, saturation, contrast, translation,
cutout) gated per image by its own draw: with p < 1 every op leaves some images as they are, which is what keeps
ADA's augmentations from leaking into the generated images (their sec. 2.2); p is clipped to [0, 1].

The parameters are drawn (`draw_parameters`) apart from their use (`apply`): the training step draws them from its
own seed generator (outside the per-replica XLA computation, and for the global batch, so that each replica keeps
its own slice; see `SAGAN`), and `apply` is a pure function of images and parameters (`keras.ops` only).
"""

import keras
from keras import ops

# The names, as plain data that `sagan_tf.config` checks without importing Keras.
from sagan_tf.config.choices import AUGMENT_MODES as MODES
from sagan_tf.config.choices import DEFAULT_POLICY, POLICY_OPS, parse_policy

#: The ops ADA gates one by one (a "color" policy entry is three of them).
GATED_OPS = {"color": ("brightness", "saturation", "contrast"), "translation": ("translation",),
             "cutout": ("cutout",)}
TRANSLATION_RATIO = 0.125  # the largest shift is int(size * 0.125 + 0.5) (DiffAugment's)
CUTOUT_RATIO = 0.5  # the cutout square's side is int(size * 0.5 + 0.5) (DiffAugment's)


def gated_ops(policy):
    """The names of the gates ADA draws for `policy` (a tuple of `POLICY_OPS`), in order."""
    return tuple(gate for name in policy for gate in GATED_OPS[name])


def translation_limit(image_size):
    """The largest shift (in pixels) of the translation op on `image_size` images."""
    return int(image_size * TRANSLATION_RATIO + 0.5)


def cutout_size(image_size):
    """The side of the cutout square on `image_size` images."""
    return int(image_size * CUTOUT_RATIO + 0.5)


def draw_parameters(batch_size, image_size, policy, seed, probability=None):
    """Random parameters of `apply` for `batch_size` images.

    Args:
      batch_size: images to augment.
      image_size: their height and width.
      policy: a tuple of `POLICY_OPS` (`parse_policy`).
      seed: a `keras.random.SeedGenerator` (it advances) or a seed.
      probability: None to apply every op to every image (DiffAugment); ADA's p (a float scalar) to apply each op
        to each image with that probability.

    Returns:
      A dict of tensors whose first axis is the batch: "color" (batch, 3) float32 uniform in [0, 1) (brightness,
      saturation, contrast), "translation" (batch, 2) int32 in [-limit, limit] (dy, dx), "cutout" (batch, 2) int32
      in [0, size + 1 - side % 2) (the square's centre row and column), for the ops of `policy`; with a probability
      also "gates" (batch, number of gated ops) float32, 1.0 where the op applies and 0.0 where it does not.
    """
    params = {}
    if "color" in policy:
        params["color"] = keras.random.uniform((batch_size, 3), seed=seed)
    if "translation" in policy:
        limit = translation_limit(image_size)
        params["translation"] = keras.random.randint((batch_size, 2), -limit, limit + 1, seed=seed, dtype="int32")
    if "cutout" in policy:
        side = cutout_size(image_size)
        params["cutout"] = keras.random.randint((batch_size, 2), 0, image_size + 1 - side % 2, seed=seed,
                                                dtype="int32")
    if probability is not None:
        draws = keras.random.uniform((batch_size, len(gated_ops(policy))), seed=seed)
        params["gates"] = ops.cast(ops.less(draws, ops.cast(probability, "float32")), "float32")
    return params


def slice_parameters(params, start, size):
    """The parameters of images `start` to `start + size` of a batch (a replica's share of the global batch)."""
    return {name: ops.slice(value, (start, 0), (size, value.shape[1])) for name, value in params.items()}


def apply(images, params, policy):
    """Augments `images` with the parameters `draw_parameters` drew, op after op in the order of `policy`.

    Args:
      images: (batch, height, width, channels) in [-1, 1], any float dtype (kept).
      params: the dict of `draw_parameters` (or its `slice_parameters`), for this batch.
      policy: the tuple of `POLICY_OPS` the parameters were drawn for.

    Returns:
      The augmented images, differentiable with respect to `images`.
    """
    gates = params.get("gates")
    names = gated_ops(policy)

    def gate(name):
        return None if gates is None else gates[:, names.index(name)]

    for name in policy:
        if name == "color":
            images = adjust_color(images, params["color"], [gate(op) for op in GATED_OPS["color"]])
        elif name == "translation":
            images = translate(images, params["translation"], gate("translation"))
        else:
            images = cut_out(images, params["cutout"], gate("cutout"))
    return images


def _per_image(values, dtype):
    return ops.reshape(ops.cast(values, dtype), (-1, 1, 1, 1))


def adjust_color(images, magnitudes, gates=(None, None, None)):
    """DiffAugment's color op: brightness, then saturation, then contrast (see the module docstring).

    Args:
      images: (batch, height, width, channels).
      magnitudes: (batch, 3) uniform draws in [0, 1): b, s and c of each image.
      gates: for each of the three, None (always applied) or (batch,) 1.0/0.0 whether it applies to each image.

    Returns:
      The images with their colours changed.
    """
    dtype = images.dtype
    brightness, saturation, contrast = (magnitudes[:, i] for i in range(3))

    def gated(gate, changed, unchanged):
        # A closed gate keeps the image bit for bit: (x - mean) * 1 + mean is not always x in floating point, and a
        # GAN's trajectory grows from differences that small (ADA at p = 0 would not be the paper's recipe).
        if gate is None:
            return changed
        return ops.where(ops.reshape(gate, (-1, 1, 1, 1)) > 0, changed, unchanged)

    images = gated(gates[0], images + _per_image(brightness - 0.5, dtype), images)
    mean = ops.mean(images, axis=3, keepdims=True)
    images = gated(gates[1], (images - mean) * _per_image(2.0 * saturation, dtype) + mean, images)
    mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
    return gated(gates[2], (images - mean) * _per_image(contrast + 0.5, dtype) + mean, images)


def _shift_axis(images, shifts, axis):
    """images[..., i - shift, ...] along `axis` (1: rows, 2: columns) for each image, zero where i - shift is
    outside the image."""
    size = images.shape[axis]
    source = ops.expand_dims(ops.arange(size, dtype="int32"), 0) - ops.expand_dims(shifts, 1)  # (batch, size)
    inside = ops.logical_and(ops.greater_equal(source, 0), ops.less(source, size))
    source = ops.clip(source, 0, size - 1)
    shape = (-1, size, 1, 1) if axis == 1 else (-1, 1, size, 1)
    gathered = ops.take_along_axis(images, ops.reshape(source, shape), axis=axis)
    return gathered * ops.reshape(ops.cast(inside, images.dtype), shape)


def translate(images, shifts, gates=None):
    """DiffAugment's translation: out[b, i, j] = images[b, i - dy_b, j - dx_b], zero outside the image.

    Args:
      images: (batch, height, width, channels).
      shifts: (batch, 2) int32 (dy, dx) of each image.
      gates: None, or (batch,) 1.0/0.0 whether each image is shifted.

    Returns:
      The shifted images.
    """
    shifts = ops.cast(shifts, "int32")
    if gates is not None:
        shifts = shifts * ops.expand_dims(ops.cast(gates, "int32"), 1)
    images = _shift_axis(images, shifts[:, 0], axis=1)
    return _shift_axis(images, shifts[:, 1], axis=2)


def cutout_mask(image_size, centres):
    """(batch, size, size) float32: 0.0 inside each image's cutout square, 1.0 elsewhere.

    The square covers rows centre_row - side // 2 to centre_row - side // 2 + side - 1 (and the same for columns),
    clipped to the image, with side = `cutout_size(image_size)`.
    """
    side = cutout_size(image_size)
    first = ops.cast(centres, "int32") - side // 2  # (batch, 2)
    index = ops.expand_dims(ops.arange(image_size, dtype="int32"), 0)

    def covered(axis):
        start = first[:, axis:axis + 1]
        return ops.logical_and(ops.greater_equal(index, start), ops.less(index, start + side))  # (batch, size)

    inside = ops.logical_and(ops.expand_dims(covered(0), 2), ops.expand_dims(covered(1), 1))
    return 1.0 - ops.cast(inside, "float32")


def cut_out(images, centres, gates=None):
    """DiffAugment's cutout: each image times its `cutout_mask`.

    Args:
      images: (batch, height, width, channels), height == width.
      centres: (batch, 2) int32 centre row and column of each square.
      gates: None, or (batch,) 1.0/0.0 whether each image gets its square.

    Returns:
      The images with their squares set to zero.
    """
    mask = cutout_mask(images.shape[1], centres)
    if gates is not None:
        mask = ops.where(ops.reshape(gates, (-1, 1, 1)) > 0, mask, 1.0)
    return images * ops.expand_dims(ops.cast(mask, images.dtype), 3)


class AdaptiveAugment:
    """ADA's augmentation probability p and the statistics it is adjusted from (see the module docstring).

    State (float32 `keras.Variable`s, created in the current strategy scope, all checkpointed): `p`; `signs` and
    `seen`, the sum of sign(D(T(x))) over the real images seen since the last adjustment and their number; and
    `rt`, the r_t of the last adjustment (for the progress line). Under tf.distribute every replica passes the
    same all-reduced sums to `observe` and so computes the same values (aggregation "none": each assigns its own
    copy, with no cross-replica step).

    Args:
      target: the r_t that p steers toward, in (0, 1) (0.6 in the paper).
      interval: training steps between adjustments (4 in the paper).
      kimg: thousands of real images over which p can move by 1 (500 in the paper).
    """

    def __init__(self, target=0.6, interval=4, kimg=500):
        if not 0 < target < 1:
            raise ValueError(f"ada_target must be in (0, 1). Received: ada_target={target}")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"ada_interval must be an integer >= 1. Received: ada_interval={interval!r}")
        if not kimg > 0:
            raise ValueError(f"ada_kimg must be > 0. Received: ada_kimg={kimg}")
        self.target = float(target)
        self.interval = interval
        self.kimg = float(kimg)

        def variable(name):
            return keras.Variable(0.0, dtype="float32", trainable=False, aggregation="none", name=name)

        self.p, self.signs, self.seen, self.rt = (variable(f"ada_{name}") for name in ("p", "signs", "seen", "rt"))

    @property
    def variables(self):
        """{name: variable} of the state, as a checkpoint holds it."""
        return {"p": self.p, "signs": self.signs, "seen": self.seen, "rt": self.rt}

    def observe(self, sign_sum, count):
        """Adds the sum of sign(D(T(x))) over `count` real images (the global batch of one discriminator update)."""
        self.signs.assign(self.signs + ops.cast(sign_sum, "float32"))
        self.seen.assign(self.seen + ops.cast(count, "float32"))

    def adjust(self, images_per_step):
        """Adjusts p when `interval` steps of `images_per_step` real images have been seen since the last time.

        p <- clip(p + sign(r_t - target) * seen / (kimg * 1000), 0, 1) with r_t = signs / seen, then the
        statistics restart. Written without a branch (the values are chosen with `where`), so that the step stays
        one graph.
        """
        # Values, not the variables, go into the ops: JAX's `where` does not take a variable.
        p, signs, seen = self.p.value, self.signs.value, self.seen.value
        due = ops.greater_equal(seen, float(self.interval * images_per_step))
        rt = signs / ops.maximum(seen, 1.0)
        step = ops.sign(rt - self.target) * seen / (self.kimg * 1000.0)
        self.p.assign(ops.where(due, ops.clip(p + step, 0.0, 1.0), p))
        self.rt.assign(ops.where(due, rt, self.rt.value))
        self.signs.assign(ops.where(due, 0.0, signs))
        self.seen.assign(ops.where(due, 0.0, seen))


__all__ = ["POLICY_OPS", "DEFAULT_POLICY", "MODES", "parse_policy", "gated_ops", "translation_limit", "cutout_size",
           "draw_parameters", "slice_parameters", "apply", "adjust_color", "translate", "cutout_mask", "cut_out",
           "AdaptiveAugment"]
