"""sagan_tf: Self-Attention GAN (Zhang, Goodfellow, Metaxas, Odena, 2019) in Keras 3.

Import the pieces you need:

    from sagan_tf import config, layers, models
    cfg = config.get_preset("cifar32")
    generator = models.Generator(cfg)
"""

__version__ = "0.1.0"
