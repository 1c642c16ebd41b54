"""The generator as a self-contained SavedModel for TensorFlow Serving.

    restored = restore.restore_generator("runs/synthetic32")
    path = serving.export_generator(restored.generator, restored.config, "exports/synthetic32", restored.step)
    # exports/synthetic32/<step>/ is what `tensorflow_model_server --model_base_path=exports/synthetic32` serves.
    serving.export_keras_file("g.keras", "exports/dcgan64", version=1)   # a generator saved by any Keras backend

The SavedModel holds the generator's variables, its class names and these signatures, traced from the Keras
generator in inference mode (batch norm with its moving statistics, spectral norm W / sigma from the stored u,
which is never updated):

- `serving_default`: `z` float32 [batch, latent_dim] and `labels` int32 [batch] (conditional models only) ->
  `images` float32 [batch, H, W, 3] in [-1, 1].
- `generate`: `labels` int32 [batch] (conditional models) or `batch_size` int32 scalar (unconditional models),
  `seed` int64 scalar and `truncation` float32 scalar -> `images` uint8 [batch, H, W, 3] and `png_bytes` string
  [batch] (one PNG per image). The latents come from `sagan_tf.sampling.latents.truncated_normal`.
- `generate_by_name` (conditional models): `classes` string [batch] (class names), `seed`, `truncation` -> the
  outputs of `generate` for those classes plus `labels` int32 [batch]. An unknown name fails the request with
  an InvalidArgumentError that names it and lists the closest valid names (`sagan_tf.serving.class_names`); a name
  longer than the longest class name (`max_class_name_length`) is refused first, with that bound, whatever its length.
- `class_names`: no inputs -> `class_names` string [num_classes], in label order (empty for unconditional models).
- `limits`: no inputs -> `max_batch_size` int32 scalar, the export's cap, and (conditional models)
  `max_class_name_length` int32 scalar, the longest class name in UTF-8 bytes; both also in
  `assets/sagan_export.json`.

Every signature refuses a request for more than `max_batch_size` images (rows of `z`, labels, class names or
`batch_size`) with an InvalidArgumentError naming the cap and the request's size, e.g. `assertion failed: [Too many
images in one request: it asks for 2048 and the max_batch_size of this export is 1024 ...]`, before any latent is
drawn or image generated: an unbounded request would grow the server by about a MiB per 32x32 image (many more at
128x128) until the process, and every model it serves, is killed for memory. `export_run` picks the cap from a
memory budget (`sagan_tf.serving.memory`). Exports written before the cap existed have no `limits` signature;
their `generate` caps only an unconditional `batch_size` (at their recorded `max_batch_size`), the other
signatures take any batch. Exports written before the name bound have no `max_class_name_length` (in `limits`
or the assets), and compute the closest names of an unknown name of any length.

A seed names an image: (seed, truncation, labels or batch_size) determine the images, through `generate` and
through `serving_default` fed with `sagan_tf.sampling.latents.truncated_latents(batch, latent_dim, seed, truncation)`
(what `export.client --signature=serving_default` sends), on any machine with the same export. On one machine
the two paths give bit-identical uint8 images; across machines, float rounding in CPU and GPU kernels may differ
in the last bits of the float images (and so, rarely, by one in a uint8 pixel). See sagan_tf/sampling/latents.py.

The PNG output is named `png_bytes` because TensorFlow Serving's REST API base64-encodes a string output (as
`{"b64": ...}`) only when its name ends in `_bytes` (tensorflow_serving/util/json_tensor.cc); any other string
output is written into the JSON as raw bytes. Invalid requests (a label outside [0, num_classes), truncation <= 0,
batch_size < 1, more than max_batch_size images) fail with `InvalidArgumentError` from asserts inside the graph.

Nothing of sagan_tf is needed to load the export: `tf.saved_model.load` and `saved_model_cli` see plain
TensorFlow functions. Assets: `assets/sagan_export.json` records the config, the checkpoint it came from and where
the class names come from; `assets/class_names.txt` lists the class names, one per line, in label order.
"""

import json
import os
import tempfile
import uuid

import tensorflow as tf

from sagan_tf.sampling import latents
from sagan_tf.run import restore, write_failures
from sagan_tf.serving import memory as serving_memory
from sagan_tf.serving.class_names import ClassNameLookup, check_class_names
from sagan_tf.config import as_model_config
from sagan_tf.errors import UsageError

SERVING_SIGNATURE = "serving_default"
GENERATE_SIGNATURE = "generate"
GENERATE_BY_NAME_SIGNATURE = "generate_by_name"
CLASS_NAMES_SIGNATURE = "class_names"
LIMITS_SIGNATURE = "limits"
Z_INPUT = "z"
LABELS_INPUT = "labels"
CLASSES_INPUT = "classes"
BATCH_SIZE_INPUT = "batch_size"
SEED_INPUT = "seed"
TRUNCATION_INPUT = "truncation"
IMAGES_OUTPUT = "images"
PNG_OUTPUT = "png_bytes"
LABELS_OUTPUT = "labels"
CLASS_NAMES_OUTPUT = "class_names"
MAX_BATCH_SIZE_OUTPUT = "max_batch_size"
# In UTF-8 bytes, but not named `..._bytes`: TensorFlow Serving's REST API base64-encodes outputs so named.
MAX_CLASS_NAME_LENGTH_OUTPUT = "max_class_name_length"
CLASS_NAMES_ASSET = "class_names.txt"
EXPORT_INFO_ASSET = "sagan_export.json"


def to_uint8_tensor(images):
    """Maps float images in [-1, 1] to uint8 pixels: round((x + 1) * 127.5), clipped to [0, 255]."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def encode_png_batch(images):
    """PNG-encodes each image of a uint8 [batch, H, W, 3] tensor; returns a string tensor [batch]."""
    return tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.TensorSpec([], tf.string))


class GeneratorServingModule(tf.Module):
    """The generator's variables and its serving signatures, ready for `tf.saved_model.save`.

    Args:
      generator: a built `sagan_tf.models.Generator` (e.g. from `restore.restore_generator`); it is called with
        `training=False` only, so its batch-norm statistics and spectral-norm vectors never change.
      config: the generator's `ModelConfig` (or an `ExperimentConfig`, whose model is used).
      class_names: one distinct name per class in label order (conditional models); None: the class ids as text.
      max_batch_size: the most images one request may ask for, in every signature (an integer >= 1); None: the
        default of `serving_memory.choose_max_batch_size` (the most that fit its default memory budget).

    Attributes:
      serve: the `serving_default` function (see the module docstring).
      generate: the `generate` function.
      generate_by_name: the `generate_by_name` function (conditional models; None otherwise).
      list_class_names: the `class_names` function.
      limits: the `limits` function.

    Raises:
      ConfigError: class names that are not one distinct name per class.
    """

    def __init__(self, generator, config, class_names=None, max_batch_size=None, name=None):
        super().__init__(name=name)
        self._config = config = as_model_config(config)
        if max_batch_size is None:
            max_batch_size = serving_memory.choose_max_batch_size(config)["max_batch_size"]
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be an integer >= 1. Received: max_batch_size={max_batch_size}")
        self._max_batch_size = max_batch_size
        # The Keras generator is captured by the traced functions only; tracking its variables in a list makes
        # them part of the SavedModel (TensorFlow's object graph does not see Keras 3 layers kept in lists).
        self._generate_images = lambda z, labels: generator(z, labels, training=False)
        self.generator_variables = list(generator.variables)
        if class_names is None:
            class_names = [str(label) for label in range(config.num_classes)]
        self.class_names = check_class_names(class_names, config.num_classes)
        names = tf.constant(self.class_names, tf.string, shape=[len(self.class_names)])
        self.list_class_names = tf.function(lambda: {CLASS_NAMES_OUTPUT: tf.identity(names)}, input_signature=[])
        self.limits = tf.function(
            lambda: {name: tf.constant(value, tf.int32) for name, value in self.limit_values().items()},
            input_signature=[])
        self.generate_by_name = None
        latent_dim = config.latent_dim
        z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name=Z_INPUT)
        labels_spec = tf.TensorSpec([None], tf.int32, name=LABELS_INPUT)
        seed_spec = tf.TensorSpec([], tf.int64, name=SEED_INPUT)
        truncation_spec = tf.TensorSpec([], tf.float32, name=TRUNCATION_INPUT)
        if config.conditional:
            self.serve = tf.function(self._serve_conditional, input_signature=[z_spec, labels_spec])
            self.generate = tf.function(self._generate_conditional,
                                        input_signature=[labels_spec, seed_spec, truncation_spec])
            self.name_lookup = ClassNameLookup(self.class_names)
            classes_spec = tf.TensorSpec([None], tf.string, name=CLASSES_INPUT)
            self.generate_by_name = tf.function(self._generate_by_name,
                                                input_signature=[classes_spec, seed_spec, truncation_spec])
        else:
            batch_size_spec = tf.TensorSpec([], tf.int32, name=BATCH_SIZE_INPUT)
            self.serve = tf.function(self._serve_unconditional, input_signature=[z_spec])
            self.generate = tf.function(self._generate_unconditional,
                                        input_signature=[batch_size_spec, seed_spec, truncation_spec])

    @property
    def max_class_name_length(self):
        """The longest class name in UTF-8 bytes, beyond which a name is refused (None for unconditional models)."""
        return self.name_lookup.max_name_bytes if self.generate_by_name is not None else None

    def limit_values(self):
        """What the `limits` signature answers: {output name: value} (the name bound for conditional models only)."""
        values = {MAX_BATCH_SIZE_OUTPUT: self._max_batch_size}
        if self.max_class_name_length is not None:
            values[MAX_CLASS_NAME_LENGTH_OUTPUT] = self.max_class_name_length
        return values

    def signatures(self):
        """The signature dict for `tf.saved_model.save`."""
        signatures = {SERVING_SIGNATURE: self.serve, GENERATE_SIGNATURE: self.generate,
                      CLASS_NAMES_SIGNATURE: self.list_class_names, LIMITS_SIGNATURE: self.limits}
        if self.generate_by_name is not None:
            signatures[GENERATE_BY_NAME_SIGNATURE] = self.generate_by_name
        return signatures

    def _within_cap(self, count, *tensors):
        """`tensors`, released only once a request for `count` images is known to be within the cap.

        Everything that draws latents or generates images depends on the returned tensors, so a request over the
        cap is refused before any of that work (or memory) is spent on it.
        """
        cap = tf.constant(self._max_batch_size, tf.int32)
        count = tf.cast(count, tf.int32)

        def refuse():
            message = tf.strings.format(
                "Too many images in one request: it asks for {} and the max_batch_size of this export is {}. Ask for "
                "at most {} images per request (the limits signature reports the cap).", (count, cap, cap))
            check = tf.debugging.Assert(tf.constant(False), [message])
            with tf.control_dependencies([check]):
                return tf.identity(count)

        checked = tf.cond(count <= cap, lambda: tf.identity(count), refuse)
        with tf.control_dependencies([checked]):
            return [tf.identity(tensor) for tensor in tensors]

    def _checked_labels(self, labels):
        num_classes = self._config.num_classes
        message = f"labels must be class ids in [0, {num_classes}) for this generator"
        checks = [tf.debugging.assert_non_negative(labels, message=message),
                  tf.debugging.assert_less(labels, tf.constant(num_classes, tf.int32), message=message)]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def _images(self, z, labels):
        return {IMAGES_OUTPUT: tf.cast(self._generate_images(z, labels), tf.float32)}

    def _serve_conditional(self, z, labels):
        z, labels = self._within_cap(tf.maximum(tf.shape(z)[0], tf.size(labels)), z, labels)
        return self._images(z, self._checked_labels(labels))

    def _serve_unconditional(self, z):
        (z,) = self._within_cap(tf.shape(z)[0], z)
        return self._images(z, None)

    def _generate_from(self, batch_size, labels, seed, truncation):
        check = tf.debugging.assert_positive(truncation, message="truncation must be > 0")
        with tf.control_dependencies([check]):
            z = latents.truncated_normal(tf.stack([batch_size, self._config.latent_dim]), seed, truncation)
        images = to_uint8_tensor(self._generate_images(z, labels))
        return {IMAGES_OUTPUT: images, PNG_OUTPUT: encode_png_batch(images)}

    def _generate_conditional(self, labels, seed, truncation):
        (labels,) = self._within_cap(tf.size(labels), labels)
        labels = self._checked_labels(labels)
        return self._generate_from(tf.shape(labels)[0], labels, seed, truncation)

    def _generate_by_name(self, classes, seed, truncation):
        (classes,) = self._within_cap(tf.size(classes), classes)
        labels = self.name_lookup(classes)
        return {**self._generate_from(tf.shape(labels)[0], labels, seed, truncation), LABELS_OUTPUT: labels}

    def _generate_unconditional(self, batch_size, seed, truncation):
        check = tf.debugging.assert_positive(batch_size, message="batch_size must be >= 1")
        with tf.control_dependencies([check]):
            (batch_size,) = self._within_cap(batch_size, batch_size)
        return self._generate_from(batch_size, None, seed, truncation)


def export_generator(generator, config, export_dir, version, info=None, max_batch_size=None, class_names=None,
                     memory_budget_mib=serving_memory.DEFAULT_MEMORY_BUDGET_MIB):
    """Writes the generator's SavedModel to `export_dir/<version>/`, the layout TensorFlow Serving watches.

    The SavedModel is written to a hidden sibling directory first and renamed into place when complete, so a
    server never sees a half-written version; on any failure the temporary directory is removed.

    Args:
      generator: a built `Generator`.
      config: its `ModelConfig` (or an `ExperimentConfig`, whose model is used).
      export_dir: the model's base path (created if missing).
      version: the version number, an int >= 0.
      info: optional JSON-able dict stored with the config in `assets/sagan_export.json` (e.g. the checkpoint).
      max_batch_size: the most images one request may ask for (see `GeneratorServingModule`); None: the most whose
        expected memory fits `memory_budget_mib` (`serving_memory.choose_max_batch_size`).
      class_names: see `GeneratorServingModule`.
      memory_budget_mib: MiB one request may add to the serving process.

    Returns:
      The path of the new version directory.

    Raises:
      UsageError: the version is not an int >= 0, `export_dir/<version>` exists already, or bad class names.
      ValueError: a `max_batch_size` or `memory_budget_mib` out of range.
      WriteFailedError: the filesystem refused the export (no space, no permission, read-only); nothing is left.
    """
    return export_generator_with_limits(generator, config, export_dir, version, info=info,
                                        max_batch_size=max_batch_size, class_names=class_names,
                                        memory_budget_mib=memory_budget_mib)[0]


def export_generator_with_limits(generator, config, export_dir, version, info=None, max_batch_size=None,
                                 class_names=None, memory_budget_mib=serving_memory.DEFAULT_MEMORY_BUDGET_MIB):
    """`export_generator`, also returning its limits: (path, `serving_memory.choose_max_batch_size`'s dict with
    `max_class_name_length` added for a conditional model)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise UsageError(f"The export version must be an integer >= 0. Received: version={version!r}")
    final = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(final):
        raise UsageError(f"{final} exists already, and an export never overwrites a version that a server may be "
                         "serving. Pass another --version (e.g. one above the highest in "
                         f"{export_dir}), or delete that directory first.")
    limits = serving_memory.choose_max_batch_size(as_model_config(config), max_batch_size, memory_budget_mib)
    max_batch_size = limits["max_batch_size"]
    tf.io.gfile.makedirs(export_dir)
    # Dot-prefixed and not a number: TensorFlow Serving ignores it while it is being written.
    temporary = os.path.join(export_dir, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        with write_failures.reporting("export", final):
            config = as_model_config(config)
            module = GeneratorServingModule(generator, config, class_names=class_names, max_batch_size=max_batch_size)
            with tempfile.TemporaryDirectory() as scratch:
                info_path = os.path.join(scratch, EXPORT_INFO_ASSET)
                with open(info_path, "w") as f:
                    json.dump({"config": config.to_dict(), "version": version, **module.limit_values(),
                               "memory": {k: v for k, v in limits.items() if k != "max_batch_size"},
                               "class_names": list(module.class_names), **(info or {})}, f, indent=2,
                              sort_keys=True)
                module.export_info = tf.saved_model.Asset(info_path)
                names_path = os.path.join(scratch, CLASS_NAMES_ASSET)
                with open(names_path, "w", encoding="utf-8") as f:
                    f.write("".join(f"{name}\n" for name in module.class_names))
                module.class_names_file = tf.saved_model.Asset(names_path)
                tf.saved_model.save(module, temporary, signatures=module.signatures())
            tf.io.gfile.rename(temporary, final, overwrite=False)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.rmtree(temporary)
        raise
    return final, {**limits, **module.limit_values()}


def export_run(model_dir, export_dir, checkpoint=None, version=None, use_ema=True, max_batch_size=None,
               memory_budget_mib=serving_memory.DEFAULT_MEMORY_BUDGET_MIB):
    """Restores a training run's generator and exports it (what `python -m export.run` does).

    Args:
      model_dir: the training run directory.
      export_dir: the model's base path; the export goes to `export_dir/<version>/`.
      checkpoint: None or "latest", "best", a step number or a checkpoint path prefix (see
        `CheckpointStore.find`).
      version: the version number; None uses the checkpoint's training step.
      use_ema: export the EMA weights (the default) rather than the raw generator's.
      max_batch_size: see `export_generator`.
      memory_budget_mib: see `export_generator`.

    Returns:
      A dict: `path` (the version directory), `version`, `step`, `checkpoint`, `ema`, `preset`,
      `class_names_source` ("run", "dataset", "numbers" or "unconditional"; see `restore.class_names_of`), the cap
      and its memory figures (`max_batch_size`, `memory_budget_mib`, `mib_per_image`, `mib_per_image_source`,
      `expected_peak_mib`; a `warning` when an explicit cap exceeds the budget), `max_class_name_length`
      (conditional models) and, when the names are not the ones the run recorded, a `note` saying so.

    Raises:
      UsageError: a missing or incompatible run or checkpoint (`CheckpointError`), or an existing version.
      WriteFailedError: the filesystem refused the export: the message names it, the cause and the checkpoint read.
    """
    restored = restore.restore_generator(model_dir, checkpoint=checkpoint, use_ema=use_ema)
    version = restored.step if version is None else version
    described = {**restore.describe(restored), "class_names_source": restored.class_names_source}
    notes = {
        "dataset": "This run recorded no class names (it predates them); the export names its classes as its dataset "
                   f"{restored.config.training.dataset} does now.",
        "numbers": "This run recorded no class names (it predates them) and its dataset's names are not available "
                   "here, so the export names its classes by their ids: '0', '1', ...",
    }
    if restored.class_names_source in notes:
        described["note"] = notes[restored.class_names_source]
    with write_failures.reporting("export", os.path.join(export_dir, str(version)), last_good=restored.checkpoint):
        path, limits = export_generator_with_limits(
            restored.generator, restored.config, export_dir, version, info={"model_dir": str(model_dir), **described},
            max_batch_size=max_batch_size, class_names=restored.class_names, memory_budget_mib=memory_budget_mib)
    return {"path": path, "version": version, **described, **limits}


def export_keras_file(keras_file, export_dir, version, config=None, max_batch_size=None,
                      memory_budget_mib=serving_memory.DEFAULT_MEMORY_BUDGET_MIB):
    """Exports a generator saved in Keras's own format (what `python -m export.run --keras_file=...` does).

    The file may come from any Keras backend, e.g. `model.ema_generator.save("g.keras")` after training on JAX;
    the SavedModel is the one `export_run` writes for a TensorFlow run (same signatures, cap and assets).

    Args:
      keras_file: a `.keras` file of a `Generator` or a `.weights.h5` file of its weights
        (`restore.restore_generator_file`).
      export_dir: the model's base path; the export goes to `export_dir/<version>/`.
      version: the version number (an int >= 0): a file records no training step to default to.
      config: the generator's `ExperimentConfig` (e.g. a preset: its dataset names the classes) or `ModelConfig`;
        needed for `.weights.h5`, checked against a `.keras` file's own.
      max_batch_size: see `export_generator`.
      memory_budget_mib: see `export_generator`.

    Returns:
      A dict: `path`, `version`, `keras_file`, `preset` (the config's name), `class_names_source` ("dataset",
      "numbers" or "unconditional"; `restore.dataset_class_names`), the cap with its memory figures,
      `max_class_name_length` (conditional models) and, for "numbers", a `note` saying so.

    Raises:
      UsageError: no version, a bad or mismatched file (`restore.restore_generator_file`), or an existing version.
      WriteFailedError: the filesystem refused the export.
    """
    if version is None:
        raise UsageError(f"Exporting {keras_file} needs a version number (--version): a Keras file records no "
                         "training step to name the version after.")
    generator, model_config = restore.restore_generator_file(keras_file, config)
    # A given config is the file's (restore_generator_file refuses another); its dataset names the classes.
    class_names, source = restore.dataset_class_names(model_config if config is None else config)
    described = {"keras_file": str(keras_file), "preset": model_config.name, "class_names_source": source}
    if source == "numbers":
        described["note"] = (f"{keras_file} records no class names, so the export names its classes by their ids: "
                             "'0', '1', ... Pass --preset to name them as the preset's dataset does.")
    path, limits = export_generator_with_limits(generator, model_config, export_dir, version, info=described,
                                                max_batch_size=max_batch_size, class_names=class_names or None,
                                                memory_budget_mib=memory_budget_mib)
    return {"path": path, "version": version, **described, **limits}


__all__ = ["GeneratorServingModule", "export_generator", "export_generator_with_limits", "export_run",
           "export_keras_file", "to_uint8_tensor", "encode_png_batch", "SERVING_SIGNATURE", "GENERATE_SIGNATURE",
           "GENERATE_BY_NAME_SIGNATURE", "CLASS_NAMES_SIGNATURE", "LIMITS_SIGNATURE", "Z_INPUT", "LABELS_INPUT",
           "CLASSES_INPUT", "BATCH_SIZE_INPUT", "SEED_INPUT", "TRUNCATION_INPUT", "IMAGES_OUTPUT", "PNG_OUTPUT",
           "LABELS_OUTPUT", "CLASS_NAMES_OUTPUT", "MAX_BATCH_SIZE_OUTPUT", "MAX_CLASS_NAME_LENGTH_OUTPUT",
           "EXPORT_INFO_ASSET", "CLASS_NAMES_ASSET"]
