"""SAGAN networks (Generator, projection Discriminator) and the SAGAN training model (on TensorFlow or JAX)."""

from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.gan import SAGAN, build_sagan
from sagan_tf.models.generator import Generator
from sagan_tf.models.step_common import check_replica_settings

__all__ = ["Discriminator", "Generator", "SAGAN", "build_sagan", "check_replica_settings"]
