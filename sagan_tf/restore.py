"""A training run's generator, restored for inference: what evaluation, export and pictures start from.

    restored = restore.restore_generator("runs/synthetic32")            # EMA generator of the latest checkpoint
    images = restored.generator(z, labels, training=False)

Only the generator's variables are read; the discriminator and the optimizers in the checkpoint are ignored. The
run directory's layout is `sagan_tf.run_dir`'s, the checkpoint's contents `sagan_tf.checkpoint`'s.
"""

import dataclasses
from typing import Any

import keras

from sagan_tf import checkpoint as checkpoint_io
from sagan_tf.config import ExperimentConfig, as_model_config
from sagan_tf.errors import CheckpointError, ConfigError, DamagedCheckpointError
from sagan_tf.models import Generator
from sagan_tf.run_dir import RunDirectory, checkpoint_step


@dataclasses.dataclass(frozen=True)
class RestoredGenerator:
    """A generator restored from a training run.

    Attributes:
      generator: the `Generator`, built, float32, in inference use (`training=False`).
      config: the run's `ExperimentConfig` (`config.model` is the generator's).
      step: the training step of the checkpoint.
      checkpoint: the checkpoint's path prefix.
      ema: whether these are the EMA weights (False when asked for the raw generator or when the run has no EMA).
    """

    generator: Any
    config: ExperimentConfig
    step: int
    checkpoint: str
    ema: bool


def build_generator(config):
    """A float32 `Generator` for a `ModelConfig` (or `ExperimentConfig`) with every variable created, whatever the
    global dtype policy."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model_config = as_model_config(config)
        generator = Generator(model_config)
        generator(keras.ops.zeros((2, model_config.latent_dim)), keras.ops.zeros((2,), "int32"), training=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return generator


def restore_generator(model_dir, checkpoint=None, use_ema=True):
    """Restores the generator of a training run.

    Args:
      model_dir: the training run directory (config.json, checkpoints/).
      checkpoint: None or "latest", "best", a step number, or a checkpoint path prefix; see
        `RunDirectory.find_checkpoint`.
      use_ema: restore the EMA weights (what sampling, evaluation and export use by default). A run trained with
        `ema_decay=None` has none; its generator is restored instead and `ema` is False in the result.

    Returns:
      A `RestoredGenerator`.

    Raises:
      DamagedCheckpointError: the checkpoint's files cannot be read back; the message names the others.
      CheckpointError: no config or checkpoint, or a checkpoint that does not fit the config's generator.
    """
    run = RunDirectory(model_dir)
    config = run.read_config()
    path = run.find_checkpoint(checkpoint)
    try:
        generator = build_generator(config.model)
    except ConfigError as error:
        raise CheckpointError(f"{run.config_path}: {error}") from None
    try:
        ema = use_ema and checkpoint_io.EMA_GENERATOR in checkpoint_io.saved_names(path)
        checkpoint_io.restore_network(generator, path,
                                      checkpoint_io.EMA_GENERATOR if ema else checkpoint_io.GENERATOR)
    except DamagedCheckpointError as error:
        others = [str(step) for step, prefix in run.checkpoints() if prefix != path]
        raise DamagedCheckpointError(
            f"{error} Pass another checkpoint with --checkpoint=<step> (other steps in {run.checkpoint_dir}: "
            f"{', '.join(others) or 'none'}), or --checkpoint=best if the run kept one.") from None
    except CheckpointError as error:
        raise CheckpointError(f"{error} (config: {run.config_path})") from None
    step = checkpoint_step(path)
    if step is None:
        step = checkpoint_io.saved_step(path)
    return RestoredGenerator(generator=generator, config=config, step=step, checkpoint=path, ema=ema)


def describe(restored):
    """A JSON-able dict naming what was restored (for logs and result files)."""
    return {"checkpoint": restored.checkpoint, "step": restored.step, "ema": restored.ema,
            "preset": restored.config.name}


__all__ = ["RestoredGenerator", "build_generator", "restore_generator", "describe"]
