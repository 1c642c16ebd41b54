"""Keras callbacks for training a `sagan_tf.models.SAGAN` with plain `model.fit`.

    checkpoint = callbacks.gan_checkpoint(model)
    manager = tf.train.CheckpointManager(checkpoint, "run/checkpoints", max_to_keep=3)
    writer = tf.summary.create_file_writer("run")
    model.fit(dataset, steps_per_epoch=1000, callbacks=[
        callbacks.GracefulStop(),
        callbacks.ProgressLogger(total_steps=1000, every_n_steps=50, summary_writer=writer),
        callbacks.SampleGrid("run/samples", every_n_steps=200, summary_writer=writer),
        callbacks.CheckpointEvery(manager, every_n_steps=500),
    ])

The training step is the generator optimizer's `iterations` (`global_step`): the number of generator updates,
which `SAGANConfig.train_steps` counts. Callbacks act when the step crosses a multiple of their period, so they
stay correct when one `fit` batch runs several steps or when a float16 loss-scaled update is skipped.
Each callback is independent; put `CheckpointEvery` last so that its end-of-training save sees the final state.
"""

import io
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

GRID_PADDING = 2


def global_step(model):
    """The training step of a SAGAN model: its generator optimizer's update count (a Python int)."""
    optimizer = getattr(model, "g_optimizer", None) or model.optimizer
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _crossed(previous, current, every):
    """Whether a multiple of `every` lies in (previous, current]."""
    return every > 0 and current // every > previous // every


def network_variables(network):
    """The variables of a network keyed by their path below the network's name: what `gan_checkpoint` saves.

    Args:
      network: a built Keras layer or model.

    Returns:
      A dict mapping "block1/bn1/gamma"-style keys to variables.
    """
    # Keyed by the path below the network's own name ("block1/bn1/gamma"), which does not depend on how many
    # networks were created before in the session (Keras numbers default names: generator_1, ...).
    variables = {}
    for variable in network.variables:
        key = variable.path.split("/", 1)[-1]
        if key in variables:
            raise ValueError(f"{network.name} has two variables with the path {key!r}; give its layers unique names.")
        variables[key] = variable
    return variables


def gan_checkpoint(model):
    """A `tf.train.Checkpoint` of everything needed to resume training a compiled SAGAN exactly.

    It holds the generator, the discriminator, the EMA generator (spectral-norm vectors and batch-norm statistics
    included), both optimizers (slots, iteration counts, float16 loss scale) and the noise RNG state.

    The networks are given as dicts of their variables rather than as objects: TensorFlow's object-graph
    checkpointing does not see Keras 3 layers kept in Python lists (the generator's stages), so
    `tf.train.Checkpoint(model=model)` would silently leave their batch-norm statistics and spectral-norm vectors
    out (and the EMA generator's blocks entirely, as no optimizer references them).

    Args:
      model: a compiled `sagan_tf.models.SAGAN`.

    Returns:
      A `tf.train.Checkpoint`; restore it with `checkpoint.restore(path).assert_existing_objects_matched()`.
    """
    networks = {"generator": network_variables(model.generator),
                "discriminator": network_variables(model.discriminator)}
    if model.ema_generator is not None:
        networks["ema_generator"] = network_variables(model.ema_generator)
    return tf.train.Checkpoint(noise_seed=model.seed_generator.state, g_optimizer=model.g_optimizer,
                               d_optimizer=model.d_optimizer, **networks)


def sample_inputs(latent_dim, num_classes, samples_per_class=8, seed=0, max_rows=16):
    """The fixed latents and labels of a sample grid, drawn from `seed`.

    Conditional models get one row per class (`max_rows` evenly spaced classes when there are more), each of
    `samples_per_class` images; unconditional ones a square of `samples_per_class` x `samples_per_class`.

    Returns:
      (z float32 (rows * cols, latent_dim), labels int32 (rows * cols,) or None, class id of each row or None,
      rows, cols).
    """
    rng = np.random.default_rng(seed)
    cols = samples_per_class
    if num_classes:
        row_classes = np.unique(np.linspace(0, num_classes - 1, min(num_classes, max_rows)).round().astype(int))
        labels = np.repeat(row_classes, cols).astype("int32")
        rows = len(row_classes)
    else:
        row_classes, labels, rows = None, None, samples_per_class
    z = rng.standard_normal((rows * cols, latent_dim)).astype("float32")
    return z, labels, row_classes, rows, cols


def to_uint8(images):
    """Images in [-1, 1] to uint8 pixels: round((x + 1) * 127.5), clipped to [0, 255]."""
    return np.clip(np.round((np.asarray(images, "float32") + 1.0) * 127.5), 0, 255).astype("uint8")


def make_grid(images, rows, cols, row_labels=None):
    """Tiles uint8 images (rows * cols, h, w, 3) into one image with `GRID_PADDING` pixels between tiles.

    With `row_labels` the grid gets a left margin with one text label per row. Tile (r, c) starts at
    y = GRID_PADDING + r * (h + GRID_PADDING), x = margin + GRID_PADDING + c * (w + GRID_PADDING), where
    margin = grid width - (cols * (w + GRID_PADDING) + GRID_PADDING).

    Returns:
      A uint8 array (height, width, 3).
    """
    from PIL import Image, ImageDraw, ImageFont

    images = np.asarray(images)
    _, h, w, _ = images.shape
    pad = GRID_PADDING
    font = ImageFont.load_default()
    margin = 0
    if row_labels is not None:
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        margin = 2 * pad + max(measure.textbbox((0, 0), str(label), font=font)[2] for label in row_labels)
    grid = np.full((pad + rows * (h + pad), margin + pad + cols * (w + pad), 3), 255, "uint8")
    for index, image in enumerate(images[:rows * cols]):
        r, c = divmod(index, cols)
        y, x = pad + r * (h + pad), margin + pad + c * (w + pad)
        grid[y:y + h, x:x + w] = image
    if row_labels is not None:
        canvas = Image.fromarray(grid)
        draw = ImageDraw.Draw(canvas)
        for r, label in enumerate(row_labels):
            draw.text((pad, pad + r * (h + pad) + h // 2), str(label), fill=(0, 0, 0), font=font, anchor="lm")
        grid = np.array(canvas)
    return grid


def encode_png(array):
    """PNG bytes of a uint8 (height, width, 3) array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# TensorBoard summaries written with `tf.summary.write` and the plugin metadata that TensorBoard's own
# `tf.summary.scalar`/`image` attach: those two functions live in the `tensorboard` package, which TensorFlow no
# longer installs, while the event files need nothing beyond TensorFlow.
def _plugin_metadata(plugin_name, data_class):
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name), data_class=data_class)
    return metadata.SerializeToString()


_SCALAR_METADATA = _plugin_metadata("scalars", 1)  # DATA_CLASS_SCALAR
_IMAGE_METADATA = _plugin_metadata("images", 3)  # DATA_CLASS_BLOB_SEQUENCE


def write_scalar(name, value, step):
    """A TensorBoard scalar in the default summary writer."""
    return tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def write_image(name, png, width, height, step):
    """A TensorBoard image (PNG bytes) in the default summary writer: the images plugin's [w, h, png] tensor."""
    tensor = tf.constant([str(width).encode(), str(height).encode(), png])
    return tf.summary.write(name, tensor, step=step, metadata=_IMAGE_METADATA)


class SampleGrid(keras.callbacks.Callback):
    """Renders the sampling (EMA) generator's images of fixed latents and labels as a PNG grid.

    Every `every_n_steps` training steps and at the end of training it writes `directory/step_XXXXXXXX.png`
    (one row per class, labelled with the class name, for conditional models) and, given a summary writer, a
    TensorBoard image "samples". The latents and labels are drawn from `seed` (see `sample_inputs`), so the
    grids of one run, and of every run with the same seed, show the same latents.

    Args:
      directory: where the PNG files go (created if missing; any `tf.io.gfile` path).
      every_n_steps: period in training steps (see `global_step`); 0 writes only at the end.
      latent_dim: size of z; None reads `model.latent_dim`.
      num_classes: number of classes (0: unconditional); None reads `model.num_classes`.
      samples_per_class: images per row.
      seed: seed of the fixed latents.
      class_names: names of the classes, for the row labels; None labels rows with class ids.
      summary_writer: a `tf.summary` writer, or None for PNG files only.
    """

    def __init__(self, directory, every_n_steps, latent_dim=None, num_classes=None, samples_per_class=8, seed=0,
                 class_names=None, summary_writer=None):
        super().__init__()
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0. Received: every_n_steps={every_n_steps}")
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1. Received: samples_per_class={samples_per_class}")
        self.directory = directory
        self.every_n_steps = every_n_steps
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.class_names = class_names
        self.summary_writer = summary_writer
        self.last_path = None
        self._last_step = None
        self._inputs = None
        if latent_dim is not None and num_classes is not None:
            self._inputs = sample_inputs(latent_dim, num_classes, samples_per_class, seed)

    def set_model(self, model):
        super().set_model(model)
        if self._inputs is None:
            self.latent_dim = model.latent_dim if self.latent_dim is None else self.latent_dim
            self.num_classes = model.num_classes if self.num_classes is None else self.num_classes
            self._inputs = sample_inputs(self.latent_dim, self.num_classes, self.samples_per_class, self.seed)

    @property
    def inputs(self):
        """(z, labels or None) of the grid, in row-major order."""
        return self._inputs[0], self._inputs[1]

    def render(self):
        """The current grid as a uint8 array."""
        z, labels, row_classes, rows, cols = self._inputs
        generator = getattr(self.model, "sampling_generator", None) or self.model.generator
        images = to_uint8(keras.ops.convert_to_numpy(generator(z, labels, training=False)))
        row_labels = None
        if row_classes is not None:
            names = self.class_names
            row_labels = [names[c] if names is not None and c < len(names) else str(c) for c in row_classes]
        return make_grid(images, rows, cols, row_labels)

    def write(self, step):
        """Writes the grid of the current weights for training step `step`; returns the PNG path."""
        grid = self.render()
        png = encode_png(grid)
        tf.io.gfile.makedirs(self.directory)
        path = tf.io.gfile.join(self.directory, f"step_{step:08d}.png")
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(png)
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                write_image("samples", png, grid.shape[1], grid.shape[0], step)
        self.last_path, self._last_step = path, step
        return path

    def on_train_begin(self, logs=None):
        self._previous = global_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if _crossed(self._previous, step, self.every_n_steps):
            self.write(step)
        self._previous = step

    def on_train_end(self, logs=None):
        step = global_step(self.model)
        if step != self._last_step:
            self.write(step)


class CheckpointEvery(keras.callbacks.Callback):
    """Saves a `tf.train.CheckpointManager`'s checkpoint every `every_n_steps` steps and at the end of training.

    Checkpoints are numbered by training step (`ckpt-<step>`). A save writes the data into a temporary directory,
    renames it into place and only then atomically rewrites the manager's `checkpoint` index file, so a process
    killed at any moment leaves `latest_checkpoint` pointing at a complete checkpoint.

    Args:
      manager: the `tf.train.CheckpointManager` (e.g. of `gan_checkpoint(model)`).
      every_n_steps: period in training steps; 0 saves only at the end.
      save_at_end: also save when training ends (normally, or stopped by `GracefulStop`).
    """

    def __init__(self, manager, every_n_steps, save_at_end=True):
        super().__init__()
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0. Received: every_n_steps={every_n_steps}")
        self.manager = manager
        self.every_n_steps = every_n_steps
        self.save_at_end = save_at_end
        self.last_saved_step = None

    def save(self, step):
        """Saves checkpoint number `step`; returns its path."""
        path = self.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        return path

    def on_train_begin(self, logs=None):
        self._previous = global_step(self.model)
        latest = self.manager.latest_checkpoint
        if latest is not None and self.last_saved_step is None:
            self.last_saved_step = int(latest.rsplit("-", 1)[-1])

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if _crossed(self._previous, step, self.every_n_steps):
            self.save(step)
        self._previous = step

    def on_train_end(self, logs=None):
        step = global_step(self.model)
        if self.save_at_end and step != self.last_saved_step:
            self.save(step)


class ProgressLogger(keras.callbacks.Callback):
    """Logs progress every `every_n_steps` steps: step/total, losses, attention gammas, steps/s and images/s.

    The losses it reports (and writes to TensorBoard) are means over the steps since its previous line: after
    each line it resets the model's metrics, which otherwise average over the whole `fit` epoch. Other values in
    the logs (the attention `gamma_*`) are reported as they are. Throughput is measured from the end of the first
    batch, so graph tracing and compilation do not count.

    Args:
      total_steps: the step training ends at, for the "step/total" display.
      every_n_steps: period in training steps.
      images_per_step: real images consumed per step (d_steps * global batch) for images/s; None omits it.
      summary_writer: a `tf.summary` writer for the scalars, or None.
      print_fn: where lines go (e.g. `absl.logging.info`); default `print`.
    """

    def __init__(self, total_steps, every_n_steps, images_per_step=None, summary_writer=None, print_fn=None):
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1. Received: every_n_steps={every_n_steps}")
        self.total_steps = total_steps
        self.every_n_steps = every_n_steps
        self.images_per_step = images_per_step
        self.summary_writer = summary_writer
        self.print_fn = print_fn or print
        self.last_logs = {}

    def on_train_begin(self, logs=None):
        self._previous = global_step(self.model)
        self._batches = 0
        self._mark = None  # (batches, time) at the start of the current throughput window

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        now = time.perf_counter()
        step = global_step(self.model)
        crossed = _crossed(self._previous, step, self.every_n_steps)
        self._previous = step
        if not crossed:
            if self._mark is None:
                self._mark = (self._batches, now)
            return
        logs = {name: float(value) for name, value in (logs or {}).items() if np.ndim(value) == 0}
        first = [m.name for m in self.model.metrics if m.name in logs]
        values = {name: logs[name] for name in first + sorted(set(logs) - set(first))}
        if self._mark is not None and self._batches > self._mark[0]:
            values["steps_per_sec"] = (self._batches - self._mark[0]) / max(now - self._mark[1], 1e-9)
            if self.images_per_step:
                values["images_per_sec"] = values["steps_per_sec"] * self.images_per_step
        self._mark = (self._batches, now)
        self.last_logs = values
        self.print_fn(self.format_line(step, values))
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                for name, value in values.items():
                    write_scalar(name, value, step)
        for metric in self.model.metrics:
            metric.reset_state()

    def format_line(self, step, values):
        """One progress line, e.g. "step 200/2000 (10.0%) d_loss 1.53 g_loss 0.61 ... 4.2 steps/s 134 images/s"."""
        width = len(str(self.total_steps))
        percent = 100.0 * step / self.total_steps if self.total_steps else 0.0
        parts = [f"step {step:>{width}}/{self.total_steps} ({percent:5.1f}%)"]
        parts += [f"{name} {value:.4g}" for name, value in values.items()
                  if name not in ("steps_per_sec", "images_per_sec")]
        if "steps_per_sec" in values:
            parts.append(f"{values['steps_per_sec']:.2f} steps/s")
        if "images_per_sec" in values:
            parts.append(f"{values['images_per_sec']:.1f} images/s")
        return "  ".join(parts)

    def on_train_end(self, logs=None):
        if self.summary_writer is not None:
            self.summary_writer.flush()


class GracefulStop(keras.callbacks.Callback):
    """Turns SIGTERM and SIGINT (Ctrl-C) into a clean stop after the current training step.

    While `fit` runs, the first such signal sets `signal_received` and puts back the previous handler (a second
    Ctrl-C interrupts at once); after the step, the callback sets `model.stop_training`, so `fit` ends through
    `on_train_end` and a `CheckpointEvery` callback saves the final state. Handlers can only be installed from the
    main thread; elsewhere this callback does nothing.

    Args:
      signals: the signal numbers to catch.
      print_fn: where the "stopping" message goes; default `print`.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT), print_fn=None):
        super().__init__()
        self.signals = tuple(signals)
        self.print_fn = print_fn or print
        self.signal_received = None
        self._previous_handlers = {}

    def _handle(self, signum, frame):
        if self.signal_received is None:
            self.signal_received = signum
            self.print_fn(f"Received {signal.Signals(signum).name}: stopping after this step and saving a "
                          "checkpoint (send it again to stop at once).")
        self._restore(signum)

    def _restore(self, signum):
        if signum in self._previous_handlers:
            previous = self._previous_handlers.pop(signum)
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def on_train_begin(self, logs=None):
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self.signal_received is not None:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for signum in list(self._previous_handlers):
            self._restore(signum)

