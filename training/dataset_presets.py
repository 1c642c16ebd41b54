"""From a dataset name (and optional preset, image size and overrides) to a `SAGANConfig`; no flags here."""

import dataclasses
import re

from sagan_tf import config as config_lib
from sagan_tf import data
from sagan_tf.errors import ConfigError

_PRESET_OF_DATASET = {"synthetic": "synthetic32", "cifar10": "cifar32", "imagenet2012": "imagenet128",
                      "celeb_a": "dcgan64"}
# Image folders: the preset whose architecture makes the requested size.
_PRESET_OF_SIZE = {32: "cifar32", 64: "dcgan64", 128: "imagenet128"}


def preset_sizes():
    """{preset name: the image size its architecture makes}."""
    return {name: config_lib.get_preset(name).image_size for name in config_lib.preset_names()}


def _sizes_text():
    return ", ".join(f"{name} ({size}x{size})" for name, size in preset_sizes().items())


def default_preset(dataset, image_size=None, data_dir=None):
    """The preset for `dataset`: synthetic -> synthetic32, cifar10 -> cifar32, imagenet2012 -> imagenet128,
    lsun/* and celeb_a -> dcgan64, folder:* -> by `image_size` (32 cifar32, 64 dcgan64 (default), 128 imagenet128).

    Raises:
      DatasetError: for an unknown dataset (or a missing folder).
      ConfigError: for a folder image size no preset makes.
    """
    info = data.get_info(dataset, data_dir)  # validates the name (and that a folder exists)
    if dataset.startswith("lsun/"):
        return "dcgan64"
    if info.source == "folder":
        size = info.default_image_size if image_size is None else image_size
        if size not in _PRESET_OF_SIZE:
            raise ConfigError(
                f"No preset makes {size}x{size} images for {dataset}. Presets and their sizes: {_sizes_text()}; "
                f"pass one of these sizes with --image_size. Received: image_size={size}")
        return _PRESET_OF_SIZE[size]
    return _PRESET_OF_DATASET[dataset]


def parse_ema_decay(text):
    """A decay in (0, 1) from text, or None for "none"."""
    if str(text).strip().lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"ema_decay must be a number in (0, 1) or 'none'. Received: ema_decay={text!r}") from None


def config_for(dataset, preset=None, image_size=None, data_dir=None, **overrides):
    """The `SAGANConfig` to train on `dataset`.

    The dataset's class count replaces the preset's `num_classes` (0 for unconditional datasets), and its name
    replaces `dataset`. `image_size` must be the size the preset's architecture makes.

    Raises:
      ConfigError: for an unknown preset, an image size the preset cannot make or invalid overrides.
      DatasetError: for an unknown dataset or missing data.
    """
    name = preset or default_preset(dataset, image_size, data_dir)
    base = config_lib.get_preset(name)
    if image_size is not None and image_size != base.image_size:
        fitting = [n for n, size in preset_sizes().items() if size == image_size]
        hint = (f"use --preset={fitting[0]} for {image_size}x{image_size}" if fitting
                else f"no preset makes {image_size}x{image_size}")
        raise ConfigError(
            f"Preset {name} makes {base.image_size}x{base.image_size} images, not {image_size}x{image_size}; "
            f"{hint}, or leave --image_size out. Presets and their sizes: {_sizes_text()}. "
            f"Received: image_size={image_size}")
    info = data.get_info(dataset, data_dir)
    num_classes = info.num_classes if info.conditional else 0
    return dataclasses.replace(base, dataset=dataset, num_classes=num_classes, **overrides)


def default_model_dir(config, dataset):
    """runs/<preset> when training the preset on its own dataset, else runs/<preset>-<dataset as a file name>."""
    if dataset == config_lib.get_preset(config.name).dataset:
        return f"runs/{config.name}"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", dataset).strip("_")[:60]
    return f"runs/{config.name}-{slug}"
