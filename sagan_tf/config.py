"""Frozen configuration dataclasses and the named presets of sagan_tf.

A preset (`SAGANConfig`) is plain data: the architecture of the generator and the discriminator, the dataset it
was made for and the training hyperparameters. Libraries take these objects; only the command-line entry points
turn flags into them (with `dataclasses.replace`).

Architecture vocabulary (shared by both block types, so one Generator/Discriminator class expresses both the
residual ImageNet architecture of the SAGAN paper and the DCGAN-style variant of seeds/003):

- `g_channels`: channels of the generator's first feature map (at `g_base_resolution`), then the output channels
  of each upsampling stage. Every stage doubles the resolution.
- `d_channels`/`d_downsample`: output channels of each discriminator stage and whether it halves the resolution.
- `g_attention_resolutions`/`d_attention_resolutions`: a self-attention layer follows the first stage whose output
  has that resolution.
"""

import dataclasses
import json
from typing import Optional

from sagan_tf.errors import ConfigError

BLOCK_TYPES = ("residual", "dcgan")
LOSSES = ("hinge", "non_saturating")


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """Options of the self-attention layers (see `sagan_tf.layers.SelfAttention`).

    Attributes:
      key_ratio: C / channels of the queries and keys (C/8 in the paper, eq. 1).
      value_ratio: C / channels of the values (C/2 in the official code; 1 in the DCGAN variant).
      pool_keys: 2x2 max-pool keys and values (official code) or use every position (DCGAN variant).
      use_spectral_norm: wrap the 1x1 projections in spectral normalization.
      use_bias: give the 1x1 projections a bias.
      output_projection: apply a final 1x1 convolution from the value channels back to C.
    """

    key_ratio: int = 8
    value_ratio: int = 2
    pool_keys: bool = True
    use_spectral_norm: bool = True
    use_bias: bool = False
    output_projection: bool = True


@dataclasses.dataclass(frozen=True)
class SAGANConfig:
    """Architecture and training hyperparameters of one SAGAN model.

    Attributes:
      name: preset name.
      dataset: default dataset for `training.run` (a `sagan_tf.data` name).
      image_size: height and width of generated images.
      num_classes: number of classes; 0 makes an unconditional model (plain batch norm, no projection).
      latent_dim: size of the latent vector z.
      block_type: "residual" (SAGAN/SNGAN residual blocks) or "dcgan" (4x4 (transposed) convolution stages).
      g_base_resolution: resolution of the generator's first feature map.
      g_channels: see the module docstring.
      g_attention_resolutions: see the module docstring.
      d_channels: see the module docstring.
      d_downsample: see the module docstring; same length as `d_channels`.
      d_attention_resolutions: see the module docstring.
      attention: options of every self-attention layer.
      output_spectral_norm: spectral normalization on the last layer of G and D (the DCGAN variant has none there).
      batch_norm_momentum: momentum of the generator's batch-norm moving statistics.
      batch_norm_epsilon: epsilon of the generator's batch norms.
      synchronized_batch_norm: compute the generator's batch statistics across replicas under tf.distribute.
      leaky_relu_slope: negative slope of the DCGAN discriminator's LeakyReLU.
      batch_size: global batch size.
      g_lr: generator Adam learning rate (TTUR).
      d_lr: discriminator Adam learning rate (TTUR).
      beta1: Adam beta1.
      beta2: Adam beta2.
      d_steps: discriminator updates per generator update.
      ema_decay: decay of the generator's exponential moving average, or None for no EMA.
      loss: "hinge" (paper) or "non_saturating".
      train_steps: default number of generator updates.
    """

    name: str
    dataset: str
    image_size: int
    num_classes: int
    g_channels: tuple
    d_channels: tuple
    d_downsample: tuple
    g_attention_resolutions: tuple = ()
    d_attention_resolutions: tuple = ()
    latent_dim: int = 128
    block_type: str = "residual"
    g_base_resolution: int = 4
    attention: AttentionConfig = AttentionConfig()
    output_spectral_norm: bool = True
    batch_norm_momentum: float = 0.99
    batch_norm_epsilon: float = 1e-5
    synchronized_batch_norm: bool = False
    leaky_relu_slope: float = 0.1
    batch_size: int = 64
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    d_steps: int = 1
    ema_decay: Optional[float] = 0.999
    loss: str = "hinge"
    train_steps: int = 100_000

    def __post_init__(self):
        # Lists (e.g. from JSON) become tuples so that configs stay hashable and compare equal.
        for field in ("g_channels", "d_channels", "d_downsample", "g_attention_resolutions",
                      "d_attention_resolutions"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        if isinstance(self.attention, dict):
            object.__setattr__(self, "attention", AttentionConfig(**self.attention))
        self.validate()

    @property
    def conditional(self):
        """Whether the model is class-conditional."""
        return self.num_classes > 0

    def validate(self):
        """Checks that the fields describe a buildable model.

        Raises:
          ConfigError: naming the offending field and its value.
        """
        def fail(message):
            raise ConfigError(f"Invalid SAGANConfig '{self.name}': {message}")

        if self.block_type not in BLOCK_TYPES:
            fail(f"block_type must be one of {BLOCK_TYPES}. Received: block_type={self.block_type!r}")
        if self.loss not in LOSSES:
            fail(f"loss must be one of {LOSSES}. Received: loss={self.loss!r}")
        if self.num_classes < 0:
            fail(f"num_classes must be >= 0 (0 = unconditional). Received: num_classes={self.num_classes}")
        if self.latent_dim < 1:
            fail(f"latent_dim must be >= 1. Received: latent_dim={self.latent_dim}")
        if len(self.g_channels) < 2 or min(self.g_channels) < 1:
            fail("g_channels needs a base width and at least one upsampling stage, all positive. "
                 f"Received: g_channels={self.g_channels}")
        if not self.d_channels or min(self.d_channels) < 1:
            fail(f"d_channels must be non-empty and positive. Received: d_channels={self.d_channels}")
        if len(self.d_downsample) != len(self.d_channels):
            fail("d_downsample needs one entry per discriminator stage. "
                 f"Received: d_channels={self.d_channels}, d_downsample={self.d_downsample}")
        if self.image_size != self.generator_output_resolution():
            fail(f"the generator stages make {self.generator_output_resolution()}x"
                 f"{self.generator_output_resolution()} images, not image_size. Received: "
                 f"image_size={self.image_size}, g_base_resolution={self.g_base_resolution}, "
                 f"g_channels={self.g_channels}, block_type={self.block_type!r}")
        if self.block_type == "dcgan" and self.g_base_resolution != 4:
            fail("the DCGAN generator starts with a 4x4 transposed convolution of z. "
                 f"Received: g_base_resolution={self.g_base_resolution}")
        d_resolutions = self.discriminator_resolutions()
        if self.block_type == "residual" and not self.d_downsample[0]:
            fail("the first residual discriminator block always downsamples. "
                 f"Received: d_downsample={self.d_downsample}")
        if self.block_type == "dcgan" and (not all(self.d_downsample) or d_resolutions[-1] != 4):
            fail("DCGAN discriminator stages all halve the resolution and must end at 4x4 for the final 4x4 "
                 f"convolution. Received: image_size={self.image_size}, d_downsample={self.d_downsample}")
        if d_resolutions[-1] < 1:
            fail(f"too many downsampling stages for image_size. Received: image_size={self.image_size}, "
                 f"d_downsample={self.d_downsample}")
        # Stage outputs that attention may follow; a DCGAN generator's last stage is its output layer.
        g_stage_resolutions = self.generator_resolutions()[1:]
        if self.block_type == "dcgan":
            g_stage_resolutions = g_stage_resolutions[:-1]
        for resolution in self.g_attention_resolutions:
            if resolution not in g_stage_resolutions:
                fail(f"no generator stage outputs {resolution}x{resolution} (stages: {g_stage_resolutions}). "
                     f"Received: g_attention_resolutions={self.g_attention_resolutions}")
        for resolution in self.d_attention_resolutions:
            if resolution not in d_resolutions:
                fail(f"no discriminator stage outputs {resolution}x{resolution} (stages: {d_resolutions}). "
                     f"Received: d_attention_resolutions={self.d_attention_resolutions}")
        for name in ("g_lr", "d_lr", "batch_norm_epsilon"):
            if getattr(self, name) <= 0:
                fail(f"{name} must be > 0. Received: {name}={getattr(self, name)}")
        for name in ("beta1", "beta2", "batch_norm_momentum"):
            if not 0 <= getattr(self, name) < 1:
                fail(f"{name} must be in [0, 1). Received: {name}={getattr(self, name)}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            fail(f"ema_decay must be in (0, 1) or None. Received: ema_decay={self.ema_decay}")
        for name in ("batch_size", "d_steps", "train_steps"):
            if getattr(self, name) < 1:
                fail(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")

    def generator_resolutions(self):
        """Resolutions of the generator's feature maps: the base map, then after each stage.

        For the DCGAN block type the last entry is the output layer's resolution.
        """
        num_stages = len(self.g_channels) - 1
        if self.block_type == "dcgan":
            num_stages += 1  # the output layer is a stride-2 transposed convolution too
        return [self.g_base_resolution * 2 ** i for i in range(num_stages + 1)]

    def generator_output_resolution(self):
        """Resolution of the generated images implied by the generator stages."""
        return self.generator_resolutions()[-1]

    def discriminator_resolutions(self):
        """Resolution after each discriminator stage."""
        resolutions, resolution = [], self.image_size
        for downsample in self.d_downsample:
            resolution = resolution // 2 if downsample else resolution
            resolutions.append(resolution)
        return resolutions

    def to_dict(self):
        """A JSON-compatible dict; `SAGANConfig.from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from `to_dict()` output (lists are accepted for tuples).

        Raises:
          ConfigError: on unknown fields or invalid values.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"Unknown SAGANConfig fields {unknown}. Known: {sorted(names)}")
        return cls(**values)

    def to_json(self):
        """The config as an indented JSON string."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Parses `to_json()` output."""
        return cls.from_dict(json.loads(text))


def _imagenet128():
    # DESIGN.md section 3: the official SAGAN 128x128 ImageNet architecture.
    return SAGANConfig(
        name="imagenet128",
        dataset="imagenet2012",
        image_size=128,
        num_classes=1000,
        g_channels=(1024, 1024, 512, 256, 128, 64),
        g_attention_resolutions=(32,),
        d_channels=(64, 128, 256, 512, 1024, 1024),
        d_downsample=(True, True, True, True, True, False),
        d_attention_resolutions=(32,),
        batch_size=256,
        ema_decay=0.9999,
        train_steps=1_000_000,
    )


def _cifar32():
    # SNGAN's CIFAR-10 widths (G 256, D 128) with SAGAN's attention at 16x16.
    return SAGANConfig(
        name="cifar32",
        dataset="cifar10",
        image_size=32,
        num_classes=10,
        g_channels=(256, 256, 256, 256),
        g_attention_resolutions=(16,),
        d_channels=(128, 128, 128, 128),
        d_downsample=(True, True, False, False),
        d_attention_resolutions=(16,),
        batch_size=64,
        train_steps=100_000,
    )


def _dcgan64():
    # The unconditional 64x64 variant of seeds/003 (PyTorch SAGAN), layer for layer: attention after the 128- and
    # 64-channel layers of G and the 256- and 512-channel layers of D, full keys/values with C channels, no output
    # projection, biased un-normalized 1x1 convolutions in attention, no spectral norm on the last layers.
    return SAGANConfig(
        name="dcgan64",
        dataset="lsun/church_outdoor",
        image_size=64,
        num_classes=0,
        block_type="dcgan",
        g_base_resolution=4,
        g_channels=(512, 256, 128, 64),
        g_attention_resolutions=(16, 32),
        d_channels=(64, 128, 256, 512),
        d_downsample=(True, True, True, True),
        d_attention_resolutions=(8, 4),
        attention=AttentionConfig(key_ratio=8, value_ratio=1, pool_keys=False, use_spectral_norm=False,
                                  use_bias=True, output_projection=False),
        output_spectral_norm=False,
        batch_norm_momentum=0.9,
        batch_size=64,
        train_steps=100_000,
    )


def _synthetic32():
    # Small enough to learn the 4-class synthetic dataset in about ten minutes on 2 CPU cores. A faster generator
    # lr and a short EMA horizon (~100 steps) because the whole run is a couple of thousand steps: with G lr 1e-4
    # and EMA 0.999 the 500-step samples were still flat colour.
    return SAGANConfig(
        name="synthetic32",
        dataset="synthetic",
        image_size=32,
        num_classes=4,
        latent_dim=64,
        g_channels=(128, 128, 64, 32),
        g_attention_resolutions=(16,),
        d_channels=(32, 64, 128, 128),
        d_downsample=(True, True, True, False),
        d_attention_resolutions=(16,),
        batch_size=32,
        g_lr=2e-4,
        d_lr=4e-4,
        ema_decay=0.99,
        train_steps=2_000,
    )


_PRESETS = {
    "imagenet128": _imagenet128,
    "cifar32": _cifar32,
    "dcgan64": _dcgan64,
    "synthetic32": _synthetic32,
}


def preset_names():
    """Names accepted by `get_preset`, sorted."""
    return sorted(_PRESETS)


def get_preset(name):
    """Returns the named preset.

    Args:
      name: one of `preset_names()`.

    Returns:
      A frozen `SAGANConfig`.

    Raises:
      ConfigError: for an unknown name; the message lists the known ones.
    """
    if name not in _PRESETS:
        raise ConfigError(f"Unknown preset {name!r}. Known presets: {', '.join(preset_names())}.")
    return _PRESETS[name]()
