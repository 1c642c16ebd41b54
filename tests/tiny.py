"""What many tests share, defined once: tiny configs, networks, classifier files, options, child environments and
a reader of a child's output (`Lines`).

No test module imports another test module; they import this one (and `tests.keras_checks`,
`tests.numpy_reference`).
"""

import glob
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from sagan_tf.config import ExperimentConfig, ModelConfig, TrainingConfig
from sagan_tf.run.restore import build_generator

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
#: Names of the 4 classes of the tiny conditional models, in label order (e.g. for exports).
CLASS_NAMES = ("bar", "mirror", "ring", "stripes")


def tiny_model(image_size=16, num_classes=4, **overrides):
    """A residual `ModelConfig` with a few channels, attention in G and D.

    16x16: stages 8 -> 16, attention at 8x8. 32x32: synthetic32's layout with few channels, attention at 16x16 with
    2x2-pooled keys (an 8x8 key grid). Latent size 8.
    """
    if image_size == 16:
        values = dict(g_channels=(16, 8, 8), g_attention_resolutions=(8,), d_channels=(8, 16, 16),
                      d_downsample=(True, True, False), d_attention_resolutions=(8,))
    elif image_size == 32:
        values = dict(g_channels=(16, 16, 8, 8), g_attention_resolutions=(16,), d_channels=(8, 16, 16, 16),
                      d_downsample=(True, True, True, False), d_attention_resolutions=(16,))
    else:
        raise ValueError(f"tiny_model makes 16x16 or 32x32 images. Received: image_size={image_size}")
    values.update(name="tiny", image_size=image_size, num_classes=num_classes, latent_dim=8)
    values.update(overrides)
    return ModelConfig(**values)


def tiny_config(image_size=16, num_classes=4, **fields):
    """An `ExperimentConfig` of `tiny_model` trained on the synthetic dataset: batch 4, 4 steps, EMA decay 0.9.

    `fields` are fields of either config (see `ExperimentConfig.replace`).
    """
    config = ExperimentConfig(tiny_model(image_size, num_classes),
                              TrainingConfig(dataset="synthetic", batch_size=4, train_steps=4, ema_decay=0.9))
    return config.replace(**fields)


def random_generator(config, seed=0):
    """A generator whose every variable is random: batch-norm statistics, spectral-norm vectors, class-wise
    gains and biases and the attention gamma (zero at initialisation, which would leave attention out) too."""
    generator = build_generator(config)
    rng = np.random.default_rng(seed)
    for variable in generator.trainable_variables:
        if not variable.path.endswith("kernel"):
            variable.assign(variable.numpy() + rng.normal(0.0, 0.2, variable.shape).astype("float32"))
    for variable in generator.non_trainable_variables:
        if "variance" in variable.path:
            values = rng.uniform(0.5, 1.5, variable.shape)
        elif variable.path.endswith("/u"):  # a unit vector, as the power iteration keeps it
            values = rng.normal(size=variable.shape)
            values /= np.linalg.norm(values)
        else:
            values = rng.normal(0.0, 0.3, variable.shape)
        variable.assign(values.astype("float32"))
    return generator


def tiny_classifier_file(path, image_size=8, num_classes=5, seed=0):
    """Saves a tiny functional classifier images -> (features [n, 8], logits [n, num_classes]) as a .keras file."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="tanh", name="conv")(images)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0),
                                name="logits")(features)
    keras.Model(images, [features, logits], name="tiny_classifier").save(str(path))
    return str(path)


#: Colours of the classes of `tiny_image_folder`: each class is an easily told apart dominant colour.
FOLDER_COLOURS = {"blue": (40, 60, 220), "red": (220, 50, 40), "green": (40, 200, 60)}


def tiny_image_folder(path, classes=("blue", "red"), per_class=12, size=16, seed=0):
    """Writes a labelled image folder: one subfolder per class, `per_class` noisy PNGs of the class's colour
    (`FOLDER_COLOURS`), `size` x `size`. `classes=()` writes an unlabelled folder of `per_class` mixed images.
    Returns the folder path as a string."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = pathlib.Path(path)
    targets = [(root / name, FOLDER_COLOURS[name]) for name in classes] or [(root, None)]
    for folder, colour in targets:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = colour if colour is not None else rng.integers(0, 256, 3)
            # A bright square in one corner: gives an unlabelled folder an orientation to learn.
            pixels = np.clip(np.asarray(base) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            pixels[: size // 3, : size // 3] = 255
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"image_{i:03d}.png")
    return str(root)


def messy_image_folder(path, per_class=24, seed=0):
    """Writes a two-class folder ("cats", "dogs") as users have them: `per_class` 48x40 images per class, in turn an
    RGBA PNG, a 16-bit grayscale PNG, a grayscale JPEG and an RGB PNG, plus a truncated PNG (`cats/broken.png`) that
    the folder scan skips. Returns the folder path as a string."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = pathlib.Path(path)
    for index, name in enumerate(("cats", "dogs")):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(80 + 100 * index, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
            kind = i % 4
            if kind == 0:
                Image.fromarray(pixels).convert("RGBA").save(folder / f"{i}.png")
            elif kind == 1:
                Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(folder / f"{i}.png")
            elif kind == 2:
                Image.fromarray(pixels).convert("L").save(folder / f"{i}.jpg", quality=90)
            else:
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return str(root)


def train_options(model_dir, **overrides):
    """`TrainOptions` for a quick in-process run: one device, no signal handlers, progress every 2 steps."""
    from training import train_lib

    values = dict(model_dir=str(model_dir), strategy="off", sample_every=0, checkpoint_every=0, log_every=2,
                  handle_signals=False)
    values.update(overrides)
    return train_lib.TrainOptions(**values)


def full_disk_save(fail_at, calls=None):
    """A `tf.train.CheckpointManager.save` that fails checkpoint number `fail_at` as TensorFlow does on a full disk
    (the shards half-written into `<prefix>_temp/`, then `ResourceExhaustedError`, as in a probe on a 30 MiB
    filesystem) and saves the others. The checkpoint numbers asked for are appended to `calls`."""
    save = tf.train.CheckpointManager.save

    def save_or_fail(manager, checkpoint_number=None, **kwargs):
        if calls is not None:
            calls.append(checkpoint_number)
        if checkpoint_number != fail_at:
            return save(manager, checkpoint_number=checkpoint_number, **kwargs)
        temp = os.path.join(manager.directory, f"ckpt-{fail_at}_temp")
        os.makedirs(temp)
        shard = os.path.join(temp, "part-00000-of-00001.data-00000-of-00001.tempstate123")
        with open(shard, "wb") as f:
            f.write(b"\0" * 1000)
        raise tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__SaveV2_dtypes_336}} "
                                               f"{shard}; No space left on device [Op:SaveV2]")

    return save_or_fail


def event_scalars(directory, prefix=""):
    """{tag: {step: value}} of the summaries (tags starting with `prefix`) in `directory`'s event files, read with
    TensorFlow only. Scalars come back as floats, texts as strings, other tensors as NumPy arrays."""
    values = {}
    for path in glob.glob(f"{directory}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith(prefix):
                    tensor = tf.make_ndarray(value.tensor)
                    if tensor.dtype == object and tensor.ndim == 0:  # a text summary
                        item = tensor.item().decode("utf-8")
                    else:
                        item = float(tensor) if tensor.ndim == 0 else tensor
                    values.setdefault(value.tag, {})[event.step] = item
    return values


def subprocess_environment(**extra):
    """Environment for a child Python that can import the repository but has not imported anything yet; an `extra`
    value of None removes that variable."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


def main_in_process(module, capsys, *args):
    """(exit status, stdout, stderr) of the command `module` (an entry point such as `export.run`) run in this
    process: its `main` with its flags parsed from `args`, which prints a `UsageError` as the command's one-paragraph
    "Error: " line and returns exit status 2, as the command does (`sagan_tf.cli.main_wrapper`)."""
    from absl import flags as absl_flags

    values = absl_flags.FlagValues()
    module.define_flags(values)
    values([module.__name__, *args])
    status = module.main([module.__name__], values)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def start_command(module, args, separate_stderr=False, **env):
    """Starts `python -m <module> <args>` in the repository root as a user would (without TF_CPP_MIN_LOG_LEVEL
    unless `env` sets it, so that the command's console is its default one); returns the `Popen` (text mode,
    stdout piped; stderr piped apart with `separate_stderr`, else merged into stdout)."""
    env = {"TF_CPP_MIN_LOG_LEVEL": None, **env}
    return subprocess.Popen([PYTHON, "-m", module, *args], cwd=ROOT, env=subprocess_environment(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
                            text=True)


class Lines:
    """Reads a process's output on a thread so that the test can wait for a line with a deadline; `times` holds when
    each of `lines` was read (`time.monotonic()`)."""

    def __init__(self, process):
        self.process, self.lines, self.times, self._queue = process, [], [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.process.poll() is None:  # a failed test must not leave a training process behind
            self.process.kill()
            self.process.wait()

    def _read(self):
        for line in self.process.stdout:
            self._queue.put((time.monotonic(), line))
        self._queue.put(None)

    def wait_for(self, pattern, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if item is None:
                break
            line = self._append(item)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def rest(self):
        self.process.wait(timeout=180)
        while (item := self._queue.get(timeout=10)) is not None:
            self._append(item)
        return "".join(self.lines)

    def _append(self, item):
        seconds, line = item
        self.times.append(seconds)
        self.lines.append(line)
        return line


def flaky_checkpoint_restore(name, failures, error=tf.errors.UnavailableError, reads=None):
    """A `tf.train.Checkpoint.restore` whose first `failures` reads of the checkpoint `name` (e.g. "ckpt-4") raise
    `error`, as storage that does not answer (gs://: "Connection reset by peer"); install it with
    `monkeypatch.setattr(tf.train.Checkpoint, "restore", ...)`. Every read's checkpoint name goes into `reads`."""
    restore = tf.train.Checkpoint.restore
    reads = [] if reads is None else reads

    def flaky_restore(self, save_path, *args, **kwargs):
        reads.append(os.path.basename(str(save_path)))
        if reads[-1] == name and reads.count(name) <= failures:
            raise error(None, None, f"Error executing an HTTP request for {save_path}: Connection reset by peer "
                                    "(injected)")
        return restore(self, save_path, *args, **kwargs)

    return flaky_restore
