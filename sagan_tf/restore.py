"""Reading a training run back: its config and the generator of one of its checkpoints.

Evaluation, export and visualisation all start from a training `model_dir` (see `training/train_lib.py`):

    restored = restore.restore_generator("runs/synthetic32")            # EMA generator of the latest checkpoint
    images = restored.generator(z, labels, training=False)

Only the generator's variables are read; the discriminator and the optimizers in the checkpoint are ignored.
"""

import dataclasses
import os
import re
from typing import Any

import keras
import tensorflow as tf

from sagan_tf.callbacks import network_variables
from sagan_tf.config import SAGANConfig
from sagan_tf.errors import CheckpointError, ConfigError
from sagan_tf.models import Generator

_CHECKPOINT_NAME = re.compile(r"^ckpt-(\d+)$")


@dataclasses.dataclass(frozen=True)
class RestoredGenerator:
    """A generator restored from a training run.

    Attributes:
      generator: the `Generator`, built, float32, in inference use (`training=False`).
      config: the run's `SAGANConfig`.
      step: the training step of the checkpoint.
      checkpoint: the checkpoint's path prefix.
      ema: whether these are the EMA weights (False when asked for the raw generator or when the run has no EMA).
    """

    generator: Any
    config: SAGANConfig
    step: int
    checkpoint: str
    ema: bool


def read_config(model_dir):
    """The `SAGANConfig` in `model_dir/config.json`.

    Raises:
      CheckpointError: there is no config.json, or it does not describe a valid config.
    """
    path = os.path.join(model_dir, "config.json")
    if not tf.io.gfile.exists(path):
        raise CheckpointError(
            f"{model_dir} is not a training run directory: it has no config.json. Pass the --model_dir that "
            "`python -m training.run` trained into.")
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    try:
        return SAGANConfig.from_json(text)
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{path} does not describe a SAGAN config ({error}); was it written by this "
                              "version of sagan_tf?") from None


def checkpoint_step(path):
    """The training step in a checkpoint path prefix `.../ckpt-<step>`, or None when the name has none."""
    match = _CHECKPOINT_NAME.match(os.path.basename(path))
    return int(match.group(1)) if match else None


def find_checkpoint(model_dir, checkpoint=None):
    """The path prefix of a checkpoint of the run in `model_dir`.

    Args:
      model_dir: the training run directory.
      checkpoint: None (the latest), a step number (int or digit string: `checkpoints/ckpt-<step>`) or a
        checkpoint path prefix.

    Returns:
      The checkpoint path prefix (no `.index` suffix).

    Raises:
      CheckpointError: no such checkpoint, naming the ones there are.
    """
    directory = os.path.join(model_dir, "checkpoints")
    if checkpoint is None:
        latest = tf.train.latest_checkpoint(directory)
        if latest is None:
            raise CheckpointError(f"{directory} has no checkpoint yet. Train first (python -m training.run "
                                  f"--model_dir={model_dir}), or pass the --model_dir of a trained run.")
        return latest
    text = str(checkpoint)
    path = os.path.join(directory, f"ckpt-{int(text)}") if text.isdigit() else text
    if not tf.io.gfile.exists(path + ".index"):
        state = tf.train.get_checkpoint_state(directory)
        available = [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []
        raise CheckpointError(
            f"No checkpoint {path} (no {path}.index). Checkpoints in {directory}: "
            f"{', '.join(available) or 'none'}. Pass one of them, its step number, or nothing for the latest.")
    return path


def build_generator(config):
    """A float32 `Generator` for `config` with every variable created (whatever the global dtype policy)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        generator = Generator(config)
        generator(keras.ops.zeros((2, config.latent_dim)), keras.ops.zeros((2,), "int32"), training=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return generator


def restore_generator(model_dir, checkpoint=None, use_ema=True):
    """Restores the generator of a training run.

    Args:
      model_dir: the training run directory (config.json, checkpoints/).
      checkpoint: None (latest), a step number, or a checkpoint path prefix; see `find_checkpoint`.
      use_ema: restore the EMA weights (what sampling, evaluation and export use by default). A run trained with
        `ema_decay=None` has none; its generator is restored instead and `ema` is False in the result.

    Returns:
      A `RestoredGenerator`.

    Raises:
      CheckpointError: no config or checkpoint, or a checkpoint that does not fit the config's generator.
    """
    config = read_config(model_dir)
    path = find_checkpoint(model_dir, checkpoint)
    saved = {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}
    key = "ema_generator" if use_ema and "ema_generator" in saved else "generator"
    if key not in saved:
        raise CheckpointError(f"Checkpoint {path} holds no generator (it has: {', '.join(sorted(saved))}); it was not "
                              "written by `python -m training.run`.")
    try:
        generator = build_generator(config)
    except ConfigError as error:
        raise CheckpointError(f"{model_dir}/config.json: {error}") from None
    checkpoint_object = tf.train.Checkpoint(**{key: network_variables(generator)})
    try:
        checkpoint_object.read(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise CheckpointError(
            f"Checkpoint {path} does not fit the generator of {model_dir}/config.json "
            f"({str(error).splitlines()[0]}); the config and checkpoints come from different runs.") from None
    step = checkpoint_step(path)
    if step is None:
        step = _saved_step(path)
    return RestoredGenerator(generator=generator, config=config, step=step, checkpoint=path,
                             ema=key == "ema_generator")


def _saved_step(path):
    # The generator optimizer's iteration count is the training step (callbacks.global_step).
    for name, _ in tf.train.list_variables(path):
        if name.startswith("g_optimizer/") and "iteration" in name:
            return int(tf.train.load_variable(path, name))
    return 0


def describe(restored):
    """A one-line JSON-able dict naming what was restored (for logs and result files)."""
    return {"checkpoint": restored.checkpoint, "step": restored.step, "ema": restored.ema,
            "preset": restored.config.name}


__all__ = ["RestoredGenerator", "read_config", "find_checkpoint", "checkpoint_step", "build_generator",
           "restore_generator", "describe"]
