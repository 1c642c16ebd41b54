"""The named presets, as one table of plain data, and the choice of a preset for a dataset.

    config = presets.get_preset("cifar32")                       # an ExperimentConfig
    config = presets.config_for_dataset("folder:/data/faces", image_size=64, batch_size=32)

Each entry of `PRESETS` holds a description, the `ModelConfig` fields and the `TrainingConfig` fields that differ
from the dataclass defaults, which datasets it is the default preset for (its own training dataset, the patterns in
`default_for`, and, with `folders: True`, image folders of its image size) and `notes`: why a value is what it is
where that is not obvious, and for `imagenet128` every place where it departs from the official SAGAN code
(brain-research/self-attention-gan). `default_preset` derives every dataset-to-preset default from these entries;
nothing else restates them.

EMA start (`TrainingConfig.ema_start`): before it the EMA generator is a copy of the generator, so the first sample
grids and evaluations show what the generator has learned. Each preset starts averaging where a reference
implementation does or after about one EMA horizon 1 / (1 - ema_decay); its notes say which.
"""

import fnmatch

from sagan_tf.config import AttentionConfig, ExperimentConfig, ModelConfig, TrainingConfig
from sagan_tf.errors import ConfigError

PRESETS = {
    "imagenet128": {
        "description": "The official SAGAN 128x128 ImageNet architecture (brain-research/self-attention-gan).",
        "default_for": (),
        "folders": True,
        "model": dict(image_size=128, num_classes=1000, g_channels=(1024, 1024, 512, 256, 128, 64),
                      g_attention_resolutions=(32,), d_channels=(64, 128, 256, 512, 1024, 1024),
                      d_downsample=(True, True, True, True, True, False), d_attention_resolutions=(32,),
                      batch_norm_momentum=0.999, output_batch_norm_momentum=0.9999),
        "training": dict(dataset="imagenet2012", batch_size=256, ema_decay=0.9999, ema_start=2_000,
                         train_steps=1_000_000),
        "notes": (
            "Batch-norm momentum: the official code's, 0.999 in the blocks' conditional batch norms "
            "(ops.ConditionalBatchNorm decay_rate) and 0.9999 in the final batch norm (ops.batch_norm).",
            "Adam beta2 0.9: the paper's (section 4); the official code leaves Adam's default 0.999.",
            "Learning rates G 1e-4, D 4e-4: the paper's TTUR; the official code's flags default both to 4e-4 and "
            "divide the generator's by up to 4 after step 100,000.",
            "Batch 256: the paper's; the official code trains 4 towers of --batch_size (32 by default).",
            "EMA of the generator (decay 0.9999 from step 2,000): not in the official code, whose samples come from "
            "the raw generator; BigGAN-PyTorch's SAGAN reproduction uses these values, and --ema_decay=none turns "
            "it off.",
        ),
    },
    "cifar32": {
        "description": "SNGAN's CIFAR-10 widths (G 256, D 128) with SAGAN's attention at 16x16.",
        "default_for": (),
        "folders": True,
        "model": dict(image_size=32, num_classes=10, g_channels=(256, 256, 256, 256), g_attention_resolutions=(16,),
                      d_channels=(128, 128, 128, 128), d_downsample=(True, True, False, False),
                      d_attention_resolutions=(16,)),
        "training": dict(dataset="cifar10", batch_size=64, ema_start=1_000, train_steps=100_000),
        "notes": (
            "EMA from step 1,000: one horizon 1 / (1 - 0.999) of its decay, so the first sample grids show the "
            "generator rather than an average still dominated by its initialisation.",
        ),
    },
    "dcgan64": {
        # Layer for layer `sagan_models.py` of heykeetae/Self-Attention-GAN: attention after the 128- and 64-channel
        # layers of G and the 256- and 512-channel layers of D, full keys/values with C channels, no output
        # projection, biased un-normalized 1x1 convolutions in attention, no spectral norm on the last layers.
        "description": "The unconditional 64x64 DCGAN-style variant of heykeetae/Self-Attention-GAN "
                       "(LSUN, CelebA).",
        "default_for": ("lsun/*", "celeb_a"),
        "folders": True,
        "model": dict(image_size=64, num_classes=0, block_type="dcgan", g_base_resolution=4,
                      g_channels=(512, 256, 128, 64), g_attention_resolutions=(16, 32), d_channels=(64, 128, 256, 512),
                      d_downsample=(True, True, True, True), d_attention_resolutions=(8, 4),
                      attention=AttentionConfig(key_ratio=8, value_ratio=1, pool_keys=False, use_spectral_norm=False,
                                                use_bias=True, output_projection=False),
                      output_spectral_norm=False, batch_norm_momentum=0.9),
        "training": dict(dataset="lsun/church_outdoor", batch_size=64, ema_start=1_000, train_steps=100_000),
        "notes": (
            "EMA from step 1,000: one horizon 1 / (1 - 0.999) of its decay. Averaged from step 0, the step-500 sample "
            "grid of a 64x64 image folder was uniformly grey while the generator itself already drew shapes.",
        ),
    },
    "synthetic32": {
        # Small enough to learn the 4-class synthetic dataset in minutes on 2 CPU cores. A faster generator lr and a
        # short EMA horizon (~100 steps) because the whole run is a couple of thousand steps: with G lr 1e-4 and
        # EMA 0.999 the 500-step samples were still flat colour.
        "description": "A small residual SAGAN for the embedded synthetic dataset (the README's main job).",
        "default_for": (),
        "folders": False,
        "model": dict(image_size=32, num_classes=4, latent_dim=64, g_channels=(128, 128, 64, 32),
                      g_attention_resolutions=(16,), d_channels=(32, 64, 128, 128),
                      d_downsample=(True, True, True, False), d_attention_resolutions=(16,)),
        "training": dict(dataset="synthetic", batch_size=32, g_lr=2e-4, d_lr=4e-4, ema_decay=0.99,
                         train_steps=2_000),
        "notes": (
            "EMA from step 0: with decay 0.99 the initial weights weigh less than 1% of the EMA by the first sample "
            "grid (0.99**500), so no start step is needed.",
        ),
    },
}


def preset_names():
    """Names accepted by `get_preset`, sorted."""
    return sorted(PRESETS)


def get_preset(name):
    """The `ExperimentConfig` of preset `name`.

    Raises:
      ConfigError: for an unknown name; the message lists the known ones.
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}. Known presets: {', '.join(preset_names())}.")
    entry = PRESETS[name]
    return ExperimentConfig(ModelConfig(name=name, **entry["model"]), TrainingConfig(**entry["training"]))


def preset_sizes():
    """{preset name: the image size its architecture makes}."""
    return {name: PRESETS[name]["model"]["image_size"] for name in preset_names()}


def _sizes_text():
    return ", ".join(f"{name} ({size}x{size})" for name, size in preset_sizes().items())


def default_preset(dataset, image_size=None, data_dir=None):
    """The preset for `dataset`, derived from `PRESETS`.

    A preset is the default for its own training dataset and for the datasets matching its `default_for` patterns
    (synthetic -> synthetic32, cifar10 -> cifar32, imagenet2012 -> imagenet128, lsun/* and celeb_a -> dcgan64);
    an image folder gets the `folders` preset that makes its image size (`image_size`, default the folder
    loader's 64: cifar32, dcgan64 or imagenet128).

    Raises:
      DatasetError: for an unknown dataset (or a missing folder).
      ConfigError: for a folder image size no preset makes, or a dataset no preset is the default for.
    """
    from sagan_tf import data

    info = data.get_info(dataset, data_dir)  # validates the name (and that a folder exists)
    if info.source == "folder":
        size = info.default_image_size if image_size is None else image_size
        fitting = [name for name in preset_names()
                   if PRESETS[name]["folders"] and PRESETS[name]["model"]["image_size"] == size]
        if not fitting:
            raise ConfigError(
                f"No preset makes {size}x{size} images for {dataset}. Presets and their sizes: {_sizes_text()}; "
                f"pass one of these sizes with --image_size. Received: image_size={size}")
        return fitting[0]
    for name in preset_names():
        if PRESETS[name]["training"]["dataset"] == dataset:
            return name
    for name in preset_names():
        if any(fnmatch.fnmatchcase(dataset, pattern) for pattern in PRESETS[name]["default_for"]):
            return name
    raise ConfigError(f"No preset is the default for {dataset}; pass one with --preset ({', '.join(preset_names())}).")


def config_for_dataset(dataset, preset=None, image_size=None, data_dir=None, **overrides):
    """The `ExperimentConfig` to train on `dataset`.

    The dataset's class count replaces the preset's `num_classes` (0 for unconditional datasets), and its name
    replaces the training dataset. `image_size` must be the size the preset's architecture makes.

    Args:
      dataset: a `sagan_tf.data` name.
      preset: a preset name; None: `default_preset(dataset, image_size)`.
      image_size: the image size asked for, or None.
      data_dir: TFDS data directory (or the base of relative "folder:" paths).
      **overrides: fields of either config (see `ExperimentConfig.replace`).

    Raises:
      ConfigError: for an unknown preset, an image size the preset cannot make or invalid overrides.
      DatasetError: for an unknown dataset or missing data.
    """
    from sagan_tf import data

    name = preset or default_preset(dataset, image_size, data_dir)
    base = get_preset(name)
    if image_size is not None and image_size != base.model.image_size:
        fitting = [n for n, size in preset_sizes().items() if size == image_size]
        hint = (f"use --preset={fitting[0]} for {image_size}x{image_size}" if fitting
                else f"no preset makes {image_size}x{image_size}")
        raise ConfigError(
            f"Preset {name} makes {base.model.image_size}x{base.model.image_size} images, not "
            f"{image_size}x{image_size}; {hint}, or leave --image_size out. Presets and their sizes: {_sizes_text()}. "
            f"Received: image_size={image_size}")
    info = data.get_info(dataset, data_dir)
    return base.replace(dataset=dataset, num_classes=info.num_classes if info.conditional else 0, **overrides)


__all__ = ["PRESETS", "preset_names", "get_preset", "preset_sizes", "default_preset", "config_for_dataset"]
