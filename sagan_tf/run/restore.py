"""A training run's generator, restored for inference: what evaluation, export and pictures start from.

    restored = restore.restore_generator("runs/synthetic32")            # EMA generator of the latest checkpoint
    images = restored.generator(z, labels, training=False)
    generator, config = restore.restore_generator_file("g.keras")      # a generator saved in Keras's own format

`restore_generator_file` reads a generator that any Keras backend saved with `save` (`.keras`) or `save_weights`
(`.weights.h5`), e.g. `model.ema_generator` of a `SAGAN` trained on JAX: the formats do not depend on the backend.

Only the generator's variables are read; the discriminator and the optimizers in the checkpoint are ignored. The
run directory's layout is `sagan_tf.run.run_dir`'s, finding its checkpoints `sagan_tf.run.checkpoint_store`'s, the
checkpoint's contents `sagan_tf.run.checkpoint`'s.
"""

import dataclasses
import json
import os
import zipfile
from typing import Any, Tuple

import keras

from sagan_tf.run import checkpoint as checkpoint_io
from sagan_tf.config import ExperimentConfig, ModelConfig, as_model_config
from sagan_tf.errors import CheckpointError, ConfigError, DamagedCheckpointError, UsageError
from sagan_tf.models import Generator
from sagan_tf.run.checkpoint_store import CheckpointStore, checkpoint_step
from sagan_tf.run.run_dir import RunDirectory


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
    if num_classes:
        recorded = run.read_class_names()
        if recorded is not None and len(recorded) == num_classes:
            return recorded, "run"
    return dataset_class_names(config, data_dir)


def dataset_class_names(config, data_dir=None):
    """The class names of a config's dataset and where they come from: ((), "unconditional") without classes; the
    dataset's names when they are available here and as many as the classes ("dataset"); else the class ids as text
    ("numbers"). `config`: an `ExperimentConfig`, or a `ModelConfig` (no dataset: numbers)."""
    model_config = as_model_config(config)
    num_classes = model_config.num_classes
    if not num_classes:
        return (), "unconditional"
    names = None
    if isinstance(config, ExperimentConfig):
        from sagan_tf import data

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
        `CheckpointStore.find`.
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
    store = CheckpointStore(run)
    path = store.find(checkpoint)
    try:
        generator = build_generator(config.model)
    except ConfigError as error:
        raise CheckpointError(f"{run.config_path}: {error}") from None
    try:
        ema = use_ema and checkpoint_io.EMA_GENERATOR in checkpoint_io.saved_names(path)
        checkpoint_io.restore_network(generator, path,
                                      checkpoint_io.EMA_GENERATOR if ema else checkpoint_io.GENERATOR)
    except DamagedCheckpointError as error:
        others = [str(step) for step, prefix in store.checkpoints() if prefix != path]
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


#: The Keras file formats `restore_generator_file` reads.
KERAS_FILE_SUFFIXES = (".keras", ".weights.h5")


def keras_file_config(path):
    """The `ModelConfig` of the generator saved in a `.keras` file (its `config.json`).

    Raises:
      UsageError: not a readable `.keras` archive, or one that holds something other than a sagan_tf `Generator`.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path} is not a readable .keras file ({error}).") from None
    if saved.get("registered_name") != "sagan_tf>Generator":
        raise UsageError(f"{path} holds a {saved.get('registered_name') or saved.get('class_name')}, not a sagan_tf "
                         "Generator: save the generator itself, e.g. model.ema_generator.save(path).")
    try:
        return ModelConfig.from_dict(saved["config"]["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{path}: the generator's config cannot be read ({error}).") from None


def restore_generator_file(path, config=None):
    """A generator saved in Keras's own format, by any backend, rebuilt float32 for inference.

    Args:
      path: a `.keras` file of a `Generator` (`generator.save(path)`: its config comes with it) or a `.weights.h5`
        file (`generator.save_weights(path)`: needs `config`).
      config: the generator's `ModelConfig` (or an `ExperimentConfig`, e.g. `presets.get_preset(name)`); needed for
        `.weights.h5`; with a `.keras` file it must equal the file's own.

    Returns:
      (generator, model config): the built float32 `Generator` with the file's weights, and its `ModelConfig`.

    Raises:
      UsageError: another suffix, a missing or unreadable file, a `.weights.h5` file without a config, a config that
        differs from a `.keras` file's, or weights that do not fit the config's generator (another preset).
    """
    path = str(path)
    if not path.endswith(KERAS_FILE_SUFFIXES):
        raise UsageError(f"A Keras generator file ends in {' or '.join(KERAS_FILE_SUFFIXES)}. Received: {path}")
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist.")
    wanted = None if config is None else as_model_config(config)
    if path.endswith(".keras"):
        saved = keras_file_config(path)
        if wanted is not None and wanted != saved:
            differing = sorted(key for key, value in saved.to_dict().items() if wanted.to_dict().get(key) != value)
            raise UsageError(f"{path} holds a generator of config '{saved.name}', which differs from the one given "
                             f"('{wanted.name}') in: {', '.join(differing)}. Leave the preset out to use the file's.")
        wanted = saved
    elif wanted is None:
        raise UsageError(f"{path} holds weights only: name the generator's config (e.g. --preset) to build it.")
    try:
        generator = build_generator(wanted)
    except ConfigError as error:
        raise UsageError(f"{path}: {error}") from None
    try:
        generator.load_weights(path)
    except ValueError as error:
        first = str(error).strip().splitlines()[0]
        raise UsageError(f"{path} does not hold the weights of a '{wanted.name}' generator ({wanted.image_size}x"
                         f"{wanted.image_size}, {wanted.num_classes} classes): {first} Pass the preset it was trained "
                         "with.") from None
    except OSError as error:
        raise UsageError(f"{path} cannot be read as Keras weights ({error}).") from None
    return generator, wanted


def describe(restored):
    """A JSON-able dict naming what was restored (for logs and result files)."""
    return {"checkpoint": restored.checkpoint, "step": restored.step, "ema": restored.ema,
            "preset": restored.config.name}


__all__ = ["RestoredGenerator", "build_generator", "restore_generator", "class_names_of", "describe",
           "dataset_class_names", "restore_generator_file", "keras_file_config", "KERAS_FILE_SUFFIXES"]
