"""SAGAN networks (Generator, projection Discriminator) and the SAGAN training model (on TensorFlow or JAX)."""

from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.gan import SAGAN, build_sagan
from sagan_tf.models.generator import Generator

__all__ = ["Discriminator", "Generator", "SAGAN", "build_sagan"]
