"""sagan_tf: Self-Attention GAN (Zhang, Goodfellow, Metaxas, Odena, 2019) in Keras 3.

Import the pieces you need:

    from sagan_tf import models, presets
    config = presets.get_preset("cifar32")          # an ExperimentConfig: config.model and config.training
    generator = models.Generator(config.model)
"""

__version__ = "0.1.0"
