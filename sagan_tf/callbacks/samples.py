"""Sample grids of the sampling (EMA) generator during training (`SampleGrid`)."""

import keras
import tensorflow as tf

from sagan_tf.callbacks.periodic import PeriodicCallback, sampling_generator
from sagan_tf.sampling import images, summaries


class SampleGrid(PeriodicCallback):
    """Renders the sampling (EMA) generator's images of fixed latents and labels as a PNG grid.

    Every `every_n_steps` training steps and at the end of training it writes `directory/step_XXXXXXXX.png`
    (one row per class, labelled with the class name, for conditional models) and, given a summary writer, a
    TensorBoard image "samples". The latents and labels are drawn from `seed` (see `images.grid_inputs`), so the
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
        super().__init__(every_n_steps)
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1. Received: samples_per_class={samples_per_class}")
        self.directory = directory
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.class_names = class_names
        self.summary_writer = summary_writer
        self.last_path = None
        self._inputs = None
        if latent_dim is not None and num_classes is not None:
            self._inputs = images.grid_inputs(latent_dim, num_classes, samples_per_class, seed)

    def set_model(self, model):
        super().set_model(model)
        if self._inputs is None:
            self.latent_dim = model.latent_dim if self.latent_dim is None else self.latent_dim
            self.num_classes = model.num_classes if self.num_classes is None else self.num_classes
            self._inputs = images.grid_inputs(self.latent_dim, self.num_classes, self.samples_per_class, self.seed)

    @property
    def inputs(self):
        """(z, labels or None) of the grid, in row-major order."""
        return self._inputs[0], self._inputs[1]

    def render(self):
        """The current grid as a uint8 array."""
        z, labels, row_classes, rows, cols = self._inputs
        pixels = images.to_uint8(keras.ops.convert_to_numpy(sampling_generator(self.model)(z, labels,
                                                                                           training=False)))
        row_labels = None
        if row_classes is not None:  # labelled as training.visualize labels its grids
            row_labels = [images.class_name(c, self.class_names) for c in row_classes]
        return images.make_grid(pixels, rows, cols, row_labels)

    def write(self, step):
        """Writes the grid of the current weights for training step `step`; returns the PNG path."""
        grid = self.render()
        path = tf.io.gfile.join(self.directory, f"step_{step:08d}.png")
        png = images.save_png(grid, path, what="sample grid")
        if self.summary_writer is not None:
            with self.summary_writer.as_default():
                summaries.write_image("samples", png, grid.shape[1], grid.shape[0], step)
        self.last_path = path
        return path

    def act(self, step):
        self.write(step)
