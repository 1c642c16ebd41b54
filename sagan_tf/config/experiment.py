"""What a SAGAN run is: the model (`ModelConfig`) apart from how it is trained (`TrainingConfig`).

- `ModelConfig` says what the networks are: everything the generator and the discriminator are built from, and so
  everything that a checkpoint, an export and a resume depend on. `Generator.get_config()` stores it alone.
- `TrainingConfig` says how they are optimised: dataset, batch, learning rates (TTUR), Adam betas, discriminator
  steps, loss, EMA of the generator (decay and start step), number of steps, and the small-data options
  (augmentation, LeCam and orthogonal regularization, how fake labels are drawn).
- `ExperimentConfig` pairs the two; a preset (`sagan_tf.config.presets`) and a run directory's `config.json` hold one.

All three are frozen dataclasses and plain data: libraries take them, only the command-line entry points turn
flags into them (`ExperimentConfig.replace`). A field that a command line sets is declared once, with `setting`: its
type, default and help are the field's, its validation is the config's `validate`, and `training/run.py` makes its
flag from that declaration (`settings`).

Architecture vocabulary (shared by both block types, so one Generator/Discriminator class expresses both the
residual ImageNet architecture of the SAGAN paper and the DCGAN-style variant of heykeetae/Self-Attention-GAN;
see BUILD.md, Reference architectures):

- `g_channels`: channels of the generator's first feature map (at `g_base_resolution`), then the output channels
  of each upsampling stage. Every stage doubles the resolution.
- `d_channels`/`d_downsample`: output channels of each discriminator stage and whether it halves the resolution.
- `g_attention_resolutions`/`d_attention_resolutions`: a self-attention layer follows the first stage whose output
  has that resolution.
"""

import dataclasses
import json
import math
from typing import Optional

from sagan_tf.config import choices
from sagan_tf.errors import ConfigError

BLOCK_TYPES = ("residual", "dcgan")
#: How fake labels are drawn (`TrainingConfig.fake_labels`): uniformly, or with the training data's class frequencies.
FAKE_LABELS = ("uniform", "data")
#: The `config.json` layout written by this version: {"format": 2, "model": {...}, "training": {...}}. Runs written
#: before the split hold one flat dict of both (format 1); `ExperimentConfig.from_dict` reads both.
CONFIG_FORMAT = 2
_TUPLE_FIELDS = ("g_channels", "d_channels", "d_downsample", "g_attention_resolutions", "d_attention_resolutions")


def setting(default, help_text, **flag):
    """A config field that a command line sets, declared once: its default and its help.

    Args:
      default: the field's default.
      help_text: what it does, as the flag's `--help` prints it.
      **flag: how its flag differs from the field: `name` (another flag name), `choices` (the values of an enum
        flag), `lower_bound` (of a number), `type` (the flag's when the field takes another too: str for a field
        that also reads "none").

    Returns:
      A `dataclasses.field` whose metadata hold the help and `flag`.
    """
    return dataclasses.field(default=default, metadata={"help": help_text, **flag})


def settings(config_class):
    """The fields of a dataclass declared with `setting`, in declaration order."""
    return [field for field in dataclasses.fields(config_class) if "help" in field.metadata]


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
class ModelConfig:
    """The architecture of a SAGAN generator and discriminator.

    Attributes:
      name: the preset (architecture) name, e.g. "imagenet128".
      image_size: height and width of generated images.
      num_classes: number of classes; 0 makes an unconditional model (plain batch norm, no projection).
      g_channels: see the module docstring.
      d_channels: see the module docstring.
      d_downsample: see the module docstring; same length as `d_channels`.
      g_attention_resolutions: see the module docstring.
      d_attention_resolutions: see the module docstring.
      latent_dim: size of the latent vector z.
      block_type: "residual" (SAGAN/SNGAN residual blocks) or "dcgan" (4x4 (transposed) convolution stages).
      g_base_resolution: resolution of the generator's first feature map.
      attention: options of every self-attention layer.
      output_spectral_norm: spectral normalization on the last layer of G and D (the DCGAN variant has none there).
      batch_norm_momentum: momentum of the generator's batch-norm moving statistics (the blocks' batch norms).
      output_batch_norm_momentum: momentum of the residual generator's final batch norm (before the output
        convolution); None: `batch_norm_momentum`. The official SAGAN code uses 0.999 in the blocks' conditional
        batch norms and 0.9999 in this one.
      batch_norm_epsilon: epsilon of the generator's batch norms.
      synchronized_batch_norm: a `setting` (its help).
      leaky_relu_slope: negative slope of the DCGAN discriminator's LeakyReLU.
    """

    name: str
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
    output_batch_norm_momentum: Optional[float] = None
    batch_norm_epsilon: float = 1e-5
    synchronized_batch_norm: bool = setting(
        False, "Synchronized batch norm: the generator's batch statistics over the global batch of all replicas (on "
        "JAX: of all the devices of a keras.distribution) instead of each replica's (device's) own piece of it (the "
        "official code normalizes per tower). With several replicas the train step "
        "then runs without XLA (its statistics are all-reduced inside the forward pass, which per-replica XLA cannot "
        "do), and --jit_compile with it is refused.", name="sync_batch_norm")
    leaky_relu_slope: float = 0.1

    def __post_init__(self):
        # Lists (e.g. from JSON) become tuples so that configs stay hashable and compare equal.
        for field in _TUPLE_FIELDS:
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
            raise ConfigError(f"Invalid ModelConfig '{self.name}': {message}")

        if self.block_type not in BLOCK_TYPES:
            fail(f"block_type must be one of {BLOCK_TYPES}. Received: block_type={self.block_type!r}")
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
        if self.batch_norm_epsilon <= 0:
            fail(f"batch_norm_epsilon must be > 0. Received: batch_norm_epsilon={self.batch_norm_epsilon}")
        if not 0 <= self.batch_norm_momentum < 1:
            fail(f"batch_norm_momentum must be in [0, 1). Received: batch_norm_momentum={self.batch_norm_momentum}")
        if self.output_batch_norm_momentum is not None and not 0 <= self.output_batch_norm_momentum < 1:
            fail("output_batch_norm_momentum must be in [0, 1) or None (the blocks' batch_norm_momentum). "
                 f"Received: output_batch_norm_momentum={self.output_batch_norm_momentum}")

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
        """A JSON-compatible dict; `ModelConfig.from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Builds a model config from `to_dict()` output (lists are accepted for tuples).

        The flat dict of both configs that `Generator.get_config` stored before the split (format 1, e.g. in
        `.keras` files) is accepted too: its training fields are dropped.

        Raises:
          ConfigError: on unknown fields or invalid values.
        """
        values = dict(values)
        if set(values) & set(TRAINING_FIELDS) - set(MODEL_FIELDS):
            values = {name: value for name, value in values.items() if name not in TRAINING_FIELDS}
        return cls(**_known_fields(cls, values))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How a SAGAN model is trained (SAGAN section 4 and its official code).

    The fields that a command line sets are declared with `setting`: each one's help says what it does. The others:

    Attributes:
      dataset: the `sagan_tf.data` name trained on.
      loss: a name in `sagan_tf.config.choices.LOSS_NAMES`: "hinge" (SAGAN eq. 4) or "non_saturating".
      ada_interval: training steps between ADA's adjustments of p (4, as the paper).
    """

    dataset: str = "synthetic"
    batch_size: int = setting(64, "Global batch size (all replicas together) of each discriminator and generator "
                              "update.")
    g_lr: float = setting(1e-4, "Generator Adam learning rate (TTUR: the paper uses 1e-4).")
    d_lr: float = setting(4e-4, "Discriminator Adam learning rate (TTUR: the paper uses 4e-4).")
    beta1: float = setting(0.0, "Adam beta1 (0 in the paper).")
    beta2: float = setting(0.9, "Adam beta2 (0.9 in the paper, 0.999 in the official code).")
    d_steps: int = setting(1, "Discriminator updates per generator update.")
    grad_accumulation: int = setting(
        1, "Micro-batches per update (1: none): every D and G update sums the gradients of this many micro-batches "
        "of batch_size / N per replica, run one after the other, before one optimizer update of the whole batch "
        "(BigGAN-PyTorch's --num_D_accumulations and --num_G_accumulations), so large batches fit in little memory. "
        "Must divide the per-replica batch. Batch norm normalizes each micro-batch with its own statistics.")
    loss: str = "hinge"
    ema_decay: Optional[float] = setting(
        0.999, "Decay of the exponential moving average of the generator's weights, or 'none' (no EMA).", type=str)
    ema_start: int = setting(
        0, "Step from which the moving average averages; until then the EMA generator copies the generator "
        "(BigGAN's ema_start), so early samples and evaluations show what it has learned rather than a blend still "
        "dominated by its random initialisation (with decay 0.999 averaged from step 0, the initial weights still "
        "hold 0.999**500 = 61% of the EMA at step 500). 0 averages from the first step, as runs written before this "
        "setting existed did. The presets set it per architecture (sagan_tf.config.presets).")
    train_steps: int = setting(100_000, "Generator updates to train to.")
    augment: str = setting(
        "none", "Augmentation of every image the discriminator sees, real and generated, in both updates, for small "
        "datasets: none (the paper's recipe), diffaugment (DiffAugment, Zhao et al. 2020: --augment_policy's "
        "differentiable ops on every image) or ada (the same ops, each applied to each image with an adaptive "
        "probability p, Karras et al. 2020). See sagan_tf.models.augment.")
    augment_policy: str = setting(
        "color,translation,cutout", "The augmentation ops, a comma-separated subset of color, translation and "
        "cutout, applied in that order.")
    ada_target: float = setting(
        0.6, "The value in (0, 1) of ADA's overfitting heuristic r_t = E[sign(D(real))] that p is steered toward "
        "(every 4 steps; 0.6 in the paper).")
    ada_interval: int = 4
    ada_kimg: float = setting(
        500.0, "Thousands of real images in which ADA's p can go from 0 to 1 (500 in the paper: p then moves at most "
        "0.1 in 50,000 images; lower it for short runs). Each adjustment moves p by the real images seen since the "
        "last one over ada_kimg * 1000.")
    lecam_weight: float = setting(
        0.0, "Weight of the LeCam regularizer of the discriminator (Tseng et al. 2021; 0.3 there for BigGAN on "
        "CIFAR-10), with moving anchors of its outputs on real and generated images (decay 0.99); 0 is off.")
    orthogonal_reg: float = setting(
        0.0, "Beta of BigGAN's orthogonal regularization of the generator's kernels (Brock et al. 2019, sec. 3.1: "
        "1e-4), which lets truncation trade variety for fidelity; 0 is off.")
    fake_labels: str = setting(
        "uniform", "How fake labels are drawn: uniform (the paper) or data (with the training data's class "
        "frequencies; folder and synthetic datasets).")

    def __post_init__(self):
        if isinstance(self.augment_policy, (list, tuple)):
            object.__setattr__(self, "augment_policy", ",".join(self.augment_policy))
        if isinstance(self.ema_decay, str):  # as a command line gives it
            object.__setattr__(self, "ema_decay", _parse_ema_decay(self.ema_decay))
        self.validate()
        # One spelling per policy (" color, cutout" and "color,cutout" are one run).
        object.__setattr__(self, "augment_policy", ",".join(choices.parse_policy(self.augment_policy)))

    def validate(self):
        """Checks the fields.

        Raises:
          ConfigError: naming the offending field and its value.
        """
        def fail(message):
            raise ConfigError(f"Invalid TrainingConfig: {message}")

        if not isinstance(self.dataset, str) or not self.dataset:
            fail(f"dataset must be a dataset name. Received: dataset={self.dataset!r}")
        if self.loss not in choices.LOSS_NAMES:
            fail(f"loss must be one of {choices.LOSS_NAMES}. Received: loss={self.loss!r}")
        for name in ("g_lr", "d_lr"):
            if getattr(self, name) <= 0:
                fail(f"{name} must be > 0. Received: {name}={getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                fail(f"{name} must be in [0, 1). Received: {name}={getattr(self, name)}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            fail(f"ema_decay must be in (0, 1) or None. Received: ema_decay={self.ema_decay}")
        for name in ("batch_size", "d_steps", "train_steps"):
            if getattr(self, name) < 1:
                fail(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        accumulation = self.grad_accumulation
        if isinstance(accumulation, bool) or not isinstance(accumulation, int) or accumulation < 1:
            fail(f"grad_accumulation must be an integer >= 1 (1: none). Received: grad_accumulation={accumulation!r}")
        if self.batch_size % accumulation:
            fail(f"grad_accumulation must divide batch_size (each update is split into that many equal "
                 f"micro-batches). Received: batch_size={self.batch_size}, grad_accumulation={accumulation}")
        if isinstance(self.ema_start, bool) or not isinstance(self.ema_start, int) or self.ema_start < 0:
            fail(f"ema_start must be an integer >= 0 (0: average from the first step). Received: "
                 f"ema_start={self.ema_start!r}")
        self._validate_small_data(fail)

    def _validate_small_data(self, fail):
        if self.augment not in choices.AUGMENT_MODES:
            fail(f"augment must be one of {', '.join(choices.AUGMENT_MODES)}. Received: augment={self.augment!r}")
        try:
            choices.parse_policy(self.augment_policy)
        except ValueError as error:
            fail(str(error))
        if not isinstance(self.ada_target, (int, float)) or not 0 < self.ada_target < 1:
            fail(f"ada_target must be in (0, 1) (the paper's is 0.6). Received: ada_target={self.ada_target!r}")
        if isinstance(self.ada_interval, bool) or not isinstance(self.ada_interval, int) or self.ada_interval < 1:
            fail(f"ada_interval must be an integer >= 1. Received: ada_interval={self.ada_interval!r}")
        if not isinstance(self.ada_kimg, (int, float)) or not 0 < self.ada_kimg < math.inf:
            fail(f"ada_kimg must be > 0 (the paper's is 500). Received: ada_kimg={self.ada_kimg!r}")
        for name in ("lecam_weight", "orthogonal_reg"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                fail(f"{name} must be a number >= 0 (0: off). Received: {name}={value!r}")
        if self.fake_labels not in FAKE_LABELS:
            fail(f"fake_labels must be one of {', '.join(FAKE_LABELS)}. Received: fake_labels={self.fake_labels!r}")

    @property
    def images_per_step(self):
        """Real images one training step consumes: `d_steps` discriminator updates of `batch_size` each."""
        return self.d_steps * self.batch_size

    def to_dict(self):
        """A JSON-compatible dict; `TrainingConfig.from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Builds a training config from `to_dict()` output.

        Raises:
          ConfigError: on unknown fields or invalid values.
        """
        return cls(**_known_fields(cls, values))


def _parse_ema_decay(text):
    """A decay from its text: None for "none" (also "off" and ""), else the number."""
    if text.strip().lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"Invalid TrainingConfig: ema_decay must be a number in (0, 1) or 'none'. Received: "
                          f"ema_decay={text!r}") from None


MODEL_FIELDS = tuple(field.name for field in dataclasses.fields(ModelConfig))
TRAINING_FIELDS = tuple(field.name for field in dataclasses.fields(TrainingConfig))


def _known_fields(cls, values):
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} fields {unknown}. Known: {sorted(names)}")
    return values


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A model and how it is trained: what a preset names and what a run directory's `config.json` holds.

    Attributes:
      model: the `ModelConfig`.
      training: the `TrainingConfig`.
    """

    model: ModelConfig
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self):
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig.from_dict(self.model))
        if isinstance(self.training, dict):
            object.__setattr__(self, "training", TrainingConfig.from_dict(self.training))
        if not isinstance(self.model, ModelConfig) or not isinstance(self.training, TrainingConfig):
            raise ConfigError("ExperimentConfig needs a ModelConfig and a TrainingConfig. "
                              f"Received: model={self.model!r}, training={self.training!r}")

    @property
    def name(self):
        """The preset (architecture) name."""
        return self.model.name

    def replace(self, **changes):
        """A copy with fields of either config changed, each routed by its name.

        Example: `get_preset("cifar32").replace(latent_dim=64, batch_size=32)`.

        Raises:
          ConfigError: for a name that is in neither config, or an invalid value.
        """
        unknown = sorted(set(changes) - set(MODEL_FIELDS) - set(TRAINING_FIELDS))
        if unknown:
            raise ConfigError(f"Unknown config fields {unknown}. Model fields: {sorted(MODEL_FIELDS)}; training "
                              f"fields: {sorted(TRAINING_FIELDS)}.")
        model = {name: value for name, value in changes.items() if name in MODEL_FIELDS}
        training = {name: value for name, value in changes.items() if name in TRAINING_FIELDS}
        return ExperimentConfig(dataclasses.replace(self.model, **model),
                                dataclasses.replace(self.training, **training))

    def to_dict(self):
        """{"format": 2, "model": {...}, "training": {...}}, JSON-compatible."""
        return {"format": CONFIG_FORMAT, "model": self.model.to_dict(), "training": self.training.to_dict()}

    @classmethod
    def from_dict(cls, values):
        """Reads `to_dict()` output, or the flat dict of both configs that runs wrote before the split (format 1).

        Raises:
          ConfigError: unknown fields, an unknown format, or invalid values.
        """
        values = dict(values)
        if "model" not in values and "training" not in values:
            unknown = sorted(set(values) - set(MODEL_FIELDS) - set(TRAINING_FIELDS))
            if unknown:
                raise ConfigError(f"Unknown config fields {unknown}. Model fields: {sorted(MODEL_FIELDS)}; "
                                  f"training fields: {sorted(TRAINING_FIELDS)}.")
            return cls(ModelConfig(**{k: v for k, v in values.items() if k in MODEL_FIELDS}),
                       TrainingConfig(**{k: v for k, v in values.items() if k in TRAINING_FIELDS}))
        version = values.pop("format", CONFIG_FORMAT)
        if version != CONFIG_FORMAT:
            raise ConfigError(f"Unknown config format {version!r}; this version of sagan_tf reads formats 1 (flat) "
                              f"and {CONFIG_FORMAT}.")
        unknown = sorted(set(values) - {"model", "training"})
        if unknown:
            raise ConfigError(f"Unknown config sections {unknown}; expected 'model' and 'training'.")
        return cls(ModelConfig.from_dict(values.get("model", {})),
                   TrainingConfig.from_dict(values.get("training", {})))

    def to_json(self):
        """The config as an indented JSON string."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Parses `to_json()` output (or a format-1 flat config.json).

        Raises:
          ConfigError: text that is not JSON, or JSON that is not a config (wrong types, missing fields such as
            `image_size`, unknown fields or format).
        """
        try:
            return cls.from_dict(json.loads(text))
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ConfigError(f"Not a SAGAN config: {type(error).__name__}: {error}") from None


def as_model_config(config):
    """A `ModelConfig` from a `ModelConfig`, an `ExperimentConfig` (its model) or a dict (`ModelConfig.from_dict`).

    Raises:
      ConfigError: anything else, or a dict that is not a valid model config.
    """
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, ExperimentConfig):
        return config.model
    if isinstance(config, dict):
        return ModelConfig.from_dict(config)
    raise ConfigError(f"Expected a ModelConfig (or an ExperimentConfig, or its dict form). Received: {config!r}")


__all__ = ["AttentionConfig", "ModelConfig", "TrainingConfig", "ExperimentConfig", "as_model_config",
           "MODEL_FIELDS", "TRAINING_FIELDS", "BLOCK_TYPES", "FAKE_LABELS", "CONFIG_FORMAT"]
