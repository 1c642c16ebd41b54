"""sagan_tf: Self-Attention GAN (Zhang, Goodfellow, Metaxas, Odena, 2019) in Keras 3.

What lives where, from the model outwards:

    layers/      spectral normalization, self-attention, (conditional) batch norm
    models/      Generator, projection Discriminator, the SAGAN training model and its train steps (TensorFlow,
                 JAX, multi-worker), losses, regularizers, augmentation
    config/      the settings of an experiment (each declared once), the presets, the named choices
    data/        input pipelines: the embedded synthetic dataset, TFDS, image folders
    run/         the run directory: its layout, lock, atomic writes, checkpoints, restoring a trained generator
    callbacks/   what runs during training: samples, checkpoints, progress, evaluation, health, stopping
    evaluation/  FID, IS, KID, precision/recall (metrics/) and the classifiers that measure them (classifiers/)
    sampling/    latents and truncation, sample grids, interpolations, attention maps, plots
    serving/     the SavedModel for TensorFlow Serving: signatures, class names, memory cap
    errors, cli  the error types and their exit statuses; the command lines' shared plumbing

    from sagan_tf import models
    from sagan_tf.config import presets
    config = presets.get_preset("cifar32")          # an ExperimentConfig: config.model and config.training
    generator = models.Generator(config.model)
"""

from sagan_tf import _moved

__version__ = "0.1.0"

_moved.install()
