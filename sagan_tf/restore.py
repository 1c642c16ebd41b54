"""A training run's generator, restored for inference: what evaluation, export and pictures start from.

    restored = restore.restore_generator("runs/synthetic32")            # EMA generator of the latest checkpoint
    images = restored.generator(z, labels, training=False)

Only the generator's variables are read; the discriminator and the optimizers in the checkpoint are ignored. The
run directory's layout is `sagan_tf.run_dir`'s, the checkpoint's contents `sagan_tf.checkpoint`'s.
"""

import dataclasses
from typing import Any, Tuple

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
      class_names: one name per class in label order (`class_names_of`); () for an unconditional generator.
      class_names_source: where the names come from: "run" (recorded by training), "dataset" (the dataset's names,
        for runs written before class names were recorded), "numbers" (neither: "0", "1", ...) or
        "unconditional".
    """

    generator: Any
    config: ExperimentConfig
    step: int
    checkpoint: str
    ema: bool
    class_names: Tuple[str, ...] = ()
    class_names_source: str = "unconditional"


def class_names_of(run, config, data_dir=None):
    """The class names of a run and where they come from, for naming classes in pictures and exports.

    The names the run recorded (class_names.json); for runs written before those were recorded, the names of its
    dataset when they are available here and as many as its classes; otherwise the class ids as text.

    Args:
      run: the `RunDirectory`.
      config: its `ExperimentConfig`.
      data_dir: TFDS data directory (or the base of relative "folder:" paths) to look the dataset up in.

    Returns:
      (names, source): a tuple of str, one per class, and "run", "dataset", "numbers" or "unconditional".
    """
    num_classes = config.model.num_classes
    if not num_classes:
        return (), "unconditional"
    recorded = run.read_class_names()
    if recorded is not None and len(recorded) == num_classes:
        return recorded, "run"
    from sagan_tf import data
    from sagan_tf.errors import UsageError

    try:
        names = data.get_info(config.training.dataset, data_dir).class_names
    except UsageError:  # e.g. a folder dataset that was moved since training
        names = None
    if names is not None and len(names) == num_classes:
        return tuple(names), "dataset"
    return tuple(str(label) for label in range(num_classes)), "numbers"


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


def restore_generator(model_dir, checkpoint=None, use_ema=True, data_dir=None):
    """Restores the generator of a training run.

    Args:
      model_dir: the training run directory (config.json, checkpoints/).
      checkpoint: None or "latest", "best", a step number, or a checkpoint path prefix; see
        `RunDirectory.find_checkpoint`.
      use_ema: restore the EMA weights (what sampling, evaluation and export use by default). A run trained with
        `ema_decay=None` has none; its generator is restored instead and `ema` is False in the result.
      data_dir: where to look up the dataset's class names for runs that recorded none (see `class_names_of`).

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
    class_names, source = class_names_of(run, config, data_dir)
    return RestoredGenerator(generator=generator, config=config, step=step, checkpoint=path, ema=ema,
                             class_names=class_names, class_names_source=source)


def describe(restored):
    """A JSON-able dict naming what was restored (for logs and result files)."""
    return {"checkpoint": restored.checkpoint, "step": restored.step, "ema": restored.ema,
            "preset": restored.config.name}


__all__ = ["RestoredGenerator", "build_generator", "restore_generator", "class_names_of", "describe"]
