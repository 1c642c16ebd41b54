"""Prints one JSON line per preset with the parameter counts of its Generator and Discriminator.

Usage: python benchmarks/param_counts.py [--presets=imagenet128,cifar32]

Counts are of trainable parameters (spectral-norm power-iteration vectors and batch-norm moving statistics are
non-trainable and reported separately).
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from sagan_tf.config import presets  # noqa: E402
from sagan_tf.models import Discriminator, Generator  # noqa: E402


def count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(presets.preset_names()))
    args = parser.parse_args()
    for name in args.presets.split(","):
        cfg = presets.get_preset(name).model
        generator, discriminator = Generator(cfg), Discriminator(cfg)
        generator.build((None, cfg.latent_dim), (None,))
        discriminator.build((None, cfg.image_size, cfg.image_size, 3), (None,))
        print(json.dumps({
            "preset": name,
            "image_size": cfg.image_size,
            "num_classes": cfg.num_classes,
            "g_params": count(generator.trainable_weights),
            "d_params": count(discriminator.trainable_weights),
            "g_non_trainable": count(generator.non_trainable_weights),
            "d_non_trainable": count(discriminator.non_trainable_weights),
        }), flush=True)


if __name__ == "__main__":
    main()
