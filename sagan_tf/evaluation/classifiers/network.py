"""The domain classifier's network: a small CNN that maps images to (features, logits).

`build_domain_classifier` is the architecture of the shipped synthetic classifier, with as many stages as bring the
image down to 8x8: stages of (3x3 conv, batch norm, ReLU) x 2 with a 2x2 max-pool between them, global average
pooling -> "features" (the penultimate layer: what FID, KID and precision/recall compare, as Inception's pool_3) ->
dense -> "logits" (what the Inception Score uses, as Inception's logits). It is a plain Keras functional model made of
`keras.layers` only, saved as a `.keras` file that loads with any Keras 3 backend and without importing sagan_tf.
"""

from sagan_tf.errors import UsageError

_WIDTHS = (32, 64, 128, 128, 128, 128)
_FEATURE_STAGE_SIZE = 8


def default_widths(image_size):
    """Stage widths for `image_size`: one stage per halving down to 8x8 (3 stages at 32x32, 4 at 64x64), at most 6.

    Returns:
        A tuple of widths, starting (32, 64, 128, ...); the last one (128 from 32x32 up) is the feature dimension.
    """
    stages = 1
    size = image_size
    while size % 2 == 0 and size // 2 >= _FEATURE_STAGE_SIZE and stages < len(_WIDTHS):
        size //= 2
        stages += 1
    return _WIDTHS[:stages]


def check_positive_int(name, value):
    """`value` when it is an int >= 1 (not a bool); else a UsageError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def build_domain_classifier(image_size, num_classes, widths=None, convs_per_stage=2, name="domain_classifier"):
    """Builds an (untrained) domain classifier.

    Args:
        image_size: input side length, divisible by 2**(len(widths) - 1).
        num_classes: number of logits.
        widths: channels of each stage (None: `default_widths(image_size)`); the last one is the feature dimension.
            A 2x2 max-pool halves the resolution between consecutive stages.
        convs_per_stage: 3x3 convolutions (each followed by batch norm and ReLU) per stage.
        name: the model's name.

    Returns:
        A functional `keras.Model` mapping images [n, image_size, image_size, 3] in [-1, 1] to `[features, logits]`,
        float32 [n, widths[-1]] and [n, num_classes].
    """
    import keras

    check_positive_int("image_size", image_size)
    check_positive_int("num_classes", num_classes)
    check_positive_int("convs_per_stage", convs_per_stage)
    widths = default_widths(image_size) if widths is None else tuple(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"`widths` must be a non-empty sequence of positive integers. Received: widths={widths}")
    if image_size % 2 ** (len(widths) - 1):
        raise ValueError(
            f"`image_size` must be divisible by 2**(len(widths) - 1) = {2 ** (len(widths) - 1)}. "
            f"Received: image_size={image_size}"
        )

    images = keras.Input((image_size, image_size, 3), name="images")
    x = images
    for stage, width in enumerate(widths):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for k in range(convs_per_stage):
            layer = f"stage{stage + 1}_conv{k + 1}"
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=layer)(x)
            # Momentum 0.9, not Keras's 0.99: the moving statistics must follow weights that change fast in a short
            # training run (with 0.99 a 200-step run was 100% accurate in training mode and ~50% in inference mode).
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{layer}_bn")(x)
            x = keras.layers.ReLU(name=f"{layer}_relu")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(images, [features, logits], name=name)


__all__ = ["build_domain_classifier", "default_widths", "check_positive_int"]
