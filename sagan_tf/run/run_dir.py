"""The run directory: the layout a training run writes, and the one place that reads and writes its config and class
names and checks a resume (its checkpoints are `sagan_tf.run.checkpoint_store`'s).

    <model_dir>/
      config.json                 the run's `ExperimentConfig` (format 2; flat format-1 files of older runs are read)
      class_names.json            the names of the classes it was trained on, in label order (runs since class names)
      checkpoints/ckpt-<step>.*   `checkpoint.gan_checkpoint`: networks, EMA generator, optimizers, noise state
                                  (the latest few, rotating; named, saved, found and restored by
                                  `sagan_tf.run.checkpoint_store.CheckpointStore`)
      checkpoints/best/           the checkpoint with the best evaluation so far (`callbacks.BestCheckpoint`):
        ckpt-<step>.*             kept apart from the rotating ones
        best.json                 its step, path, metric and figures
      samples/step_<step>.png     sample grids of the sampling (EMA) generator
      eval/step_<step>.json       figures of `python -m training.evaluate` (and eval/latest.json)
      visualize/                  pictures of `python -m training.visualize`
      events.out.tfevents.*       TensorBoard
      training.lock               while a training run writes into it: its host, process and command
                                  (`sagan_tf.run.run_lock`; evaluate, visualize and export read without it)

    run = RunDirectory("runs/synthetic32")
    config = run.read_config()
    path = CheckpointStore(run).find()      # the latest; or .find("best"), .find(1500) (`checkpoint_store`)

Checkpoints are numbered by training step (generator updates). Files are written atomically (a temporary file
renamed into place), so a process killed at any moment leaves either the old or the new file, and a write the
filesystem refuses (full, read-only, no permission) is a `WriteFailedError` that leaves the old file
(`sagan_tf.run.write_failures`). Paths may be any `tf.io.gfile` path.
"""

import json
import os
import re

import tensorflow as tf

from sagan_tf.run import atomic_write
from sagan_tf.config import ExperimentConfig
from sagan_tf.errors import CheckpointError, ConfigError

CONFIG_FILE = "config.json"
CLASS_NAMES_FILE = "class_names.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
EVAL_DIR = "eval"
VISUALIZE_DIR = "visualize"
BEST_DIR = "best"
LOCK_FILE = "training.lock"
#: Training fields a resumed run may change: it is trained further, as the same experiment.
RESUMABLE_TRAINING_FIELDS = ("train_steps",)


def write_text_atomically(path, text, what="file"):
    """Writes `text` to `path` through a temporary sibling file renamed into place, creating its directory.

    Args:
      path: the file.
      text: its contents.
      what: what the file is, for the error message ("evaluation record", ...).

    Raises:
      WriteFailedError: the filesystem refused the write (no space, no permission, read-only); the temporary file
        is removed and `path` keeps its previous contents.
    """
    atomic_write.write_atomically(path, text, what)


def write_json_atomically(path, payload, what="file"):
    """Writes `payload` as indented, key-sorted JSON to `path` atomically (see `write_text_atomically`)."""
    write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n", what)


def default_model_dir(config, dataset):
    """runs/<preset> when training a preset on its own dataset, else runs/<preset>-<dataset as a file name>.

    Args:
      config: the `ExperimentConfig` (its model's name is the preset name).
      dataset: the dataset trained on.
    """
    from sagan_tf.config import presets

    if config.name in presets.PRESETS and dataset == presets.PRESETS[config.name]["training"]["dataset"]:
        return f"runs/{config.name}"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", dataset).strip("_")[:60]
    return f"runs/{config.name}-{slug}"


class RunDirectory:
    """A training run's directory (see the module docstring for its layout).

    Args:
      path: the directory (it need not exist yet).
    """

    def __init__(self, path):
        if not path:
            raise CheckpointError(f"A run directory path is required. Received: model_dir={path!r}")
        self.path = str(path)

    def __repr__(self):
        return f"RunDirectory({self.path!r})"

    def _join(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def config_path(self):
        return self._join(CONFIG_FILE)

    @property
    def class_names_path(self):
        return self._join(CLASS_NAMES_FILE)

    @property
    def checkpoint_dir(self):
        return self._join(CHECKPOINT_DIR)

    @property
    def best_dir(self):
        return self._join(CHECKPOINT_DIR, BEST_DIR)

    @property
    def samples_dir(self):
        return self._join(SAMPLES_DIR)

    @property
    def eval_dir(self):
        return self._join(EVAL_DIR)

    @property
    def visualize_dir(self):
        return self._join(VISUALIZE_DIR)

    @property
    def lock_path(self):
        return self._join(LOCK_FILE)

    def file_in_the_way(self):
        """The path of a file that stands where this directory, or a directory above it, must be; None if none.

        A run cannot be made below a file, and TensorFlow's error for it ("... is not a directory") names no flag.
        Object stores (gs://, s3://) have no directories to be in the way of: None there."""
        path = self.path.rstrip("/") or "/"
        if "://" in path and not path.startswith("file://"):
            return None
        if tf.io.gfile.exists(path):
            return None if tf.io.gfile.isdir(path) else path
        parent = os.path.dirname(path)
        return None if parent in ("", path) else RunDirectory(parent).file_in_the_way()

    def has_config(self):
        """Whether the directory holds a config.json."""
        return tf.io.gfile.exists(self.config_path)

    def _read_config_text(self):
        with tf.io.gfile.GFile(self.config_path) as f:
            return f.read()

    def read_config(self):
        """The run's `ExperimentConfig`, from either config.json format.

        Raises:
          CheckpointError: no config.json (not a run directory), or one that describes no valid config.
        """
        if not tf.io.gfile.isdir(self.path):
            why = "it is a file" if tf.io.gfile.exists(self.path) else "it does not exist"
            raise CheckpointError(f"{self.path} is not a training run directory: {why}. Pass the "
                                  "--model_dir that `python -m training.run` trained into.")
        if not self.has_config():
            raise CheckpointError(
                f"{self.path} is not a training run directory: it has no {CONFIG_FILE}. Pass the --model_dir that "
                "`python -m training.run` trained into.")
        try:
            return ExperimentConfig.from_json(self._read_config_text())
        except ValueError as error:  # ConfigError included
            raise CheckpointError(f"{self.config_path} does not describe a SAGAN config ({error}); was it written "
                                  "by this version of sagan_tf?") from None

    def write_config(self, config):
        """Writes `config` (an `ExperimentConfig`) as config.json, atomically, creating the directory."""
        write_text_atomically(self.config_path, config.to_json() + "\n", "run config")

    def write_class_names(self, class_names, dataset):
        """Records the names of the classes (in label order) of `dataset`, atomically, as class_names.json."""
        write_json_atomically(self.class_names_path, {"dataset": dataset, "class_names": list(class_names)},
                              "class names")

    def read_class_names(self):
        """The recorded class names (a tuple of str), or None when the run recorded none (runs before they were).

        Raises:
          CheckpointError: a class_names.json that is not a list of names.
        """
        if not tf.io.gfile.exists(self.class_names_path):
            return None
        with tf.io.gfile.GFile(self.class_names_path) as f:
            text = f.read()
        try:
            names = json.loads(text)["class_names"]
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise TypeError("class_names is not a list of strings")
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{self.class_names_path} does not hold a list of class names ({error}); delete it "
                                  "to fall back to the dataset's names.") from None
        return tuple(names)

    def check_resumable(self, config):
        """Refuses to train `config` into a directory whose config.json describes another run.

        The model must be the same (the checkpoints depend on every model field) and so must the training config,
        except `RESUMABLE_TRAINING_FIELDS` (train_steps: a resume trains further). A directory without config.json
        is a new run.

        Raises:
          ConfigError: naming every differing field with both values.
        """
        if not self.has_config():
            return
        try:
            saved = ExperimentConfig.from_json(self._read_config_text())
        except ValueError as error:  # ConfigError included
            raise ConfigError(f"{self.config_path} is not a valid run config ({error}); move it away or use another "
                              "--model_dir.") from None
        saved_fields = {**saved.model.to_dict(), **saved.training.to_dict()}
        current_fields = {**config.model.to_dict(), **config.training.to_dict()}
        differences = [f"{name}: {saved_fields[name]!r} in {CONFIG_FILE}, {current_fields[name]!r} now"
                       for name in sorted(current_fields)
                       if name not in RESUMABLE_TRAINING_FIELDS and saved_fields[name] != current_fields[name]]
        if differences:
            raise ConfigError(
                f"Refusing to resume in {self.path}: its {CONFIG_FILE} describes a different run "
                f"({'; '.join(differences)}). Rerun with the settings of {self.config_path} (only "
                f"{', '.join(RESUMABLE_TRAINING_FIELDS)} may change), or choose a new --model_dir.")


__all__ = ["RunDirectory", "write_text_atomically", "write_json_atomically", "default_model_dir",
           "CONFIG_FILE", "CLASS_NAMES_FILE", "CHECKPOINT_DIR", "SAMPLES_DIR", "EVAL_DIR", "VISUALIZE_DIR",
           "BEST_DIR", "LOCK_FILE", "RESUMABLE_TRAINING_FIELDS"]
