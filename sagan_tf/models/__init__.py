"""SAGAN networks (Generator, projection Discriminator) and the SAGAN training model: its train steps (TensorFlow,
JAX; `MultiWorkerSAGAN` across workers), losses, regularizers (LeCam, orthogonal) and augmentation (DiffAugment,
ADA)."""

from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.gan import SAGAN, build_sagan
from sagan_tf.models.generator import Generator
from sagan_tf.models.multi_worker import MultiWorkerSAGAN
from sagan_tf.models.step_common import check_replica_settings

__all__ = ["Discriminator", "Generator", "MultiWorkerSAGAN", "SAGAN", "build_sagan", "check_replica_settings"]
