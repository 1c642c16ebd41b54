"""What the train steps of every backend share: batch unpacking, noise fed with a batch, gradient norms, finiteness,
and the one check of the settings that a strategy's replica count rules out (`check_replica_settings`).

Backend-neutral (`keras.ops` only), imported by `sagan_tf.models.gan` and by the step of each backend
(`tensorflow_step`, `jax_step`).
"""

import keras
from keras import ops

from sagan_tf.errors import ConfigError

#: The keys of a batch dict that carries the step's noise (see `FedDraws`).
FED_NOISE_KEYS = ("z", "fake_labels")
FED_AUGMENT_PREFIX = "augment_"


def _batch_dict(data):
    """The dict of a batch given as a dict, `(dict,)` or `(dict, None, None)` (`train_on_batch(x=dict)`); else
    `data` itself (a 1-tuple unwrapped)."""
    if isinstance(data, (tuple, list)) and data and (len(data) == 1 or isinstance(data[0], dict)):
        return data[0]
    return data


def unpack(data):
    """(images, labels or None) from a batch of `images`, `(images,)`, `(images, labels)`, `(images, labels, w)` or a
    dict with "images" (and "labels"; see `FedDraws` for the rest)."""
    data = _batch_dict(data)
    if isinstance(data, dict):
        if "images" not in data:
            raise ValueError(f"A batch dict needs an 'images' entry. Received: keys={sorted(data)}")
        return data["images"], data.get("labels")
    if isinstance(data, (tuple, list)):
        return data[0], data[1]
    return data, None


class FedDraws:
    """The noise of one train step read from its batch instead of drawn from the seed generators.

    A hook for comparing backends (`benchmarks/backend_parity.py`): TensorFlow and JAX draw different numbers from
    the same seed, so both are fed the same draws. A batch dict (`{"images": ..., "labels": ...}`) that also holds
    "z" feeds them:

      z: (d_steps + 1, batch, latent_dim) float32: the latents of each discriminator update, then the generator's.
      fake_labels: (d_steps + 1, batch) int32, for conditional models.
      augment_<name>: (2 * d_steps + 1, batch, ...) for each parameter `augment.draw_parameters` draws ("color",
        "translation", "cutout"), in the order the step draws them (each discriminator update's real images, then
        its generated ones; last the generator update's); with ADA, "augment_gate_draws" holds the uniform draws
        that become the gates (draw < p, with the current p) instead of "gates".

    The draws are this replica's batch as they are (no replica slicing); one device is what the hook is for.
    """

    def __init__(self, batch):
        self._z = batch["z"]
        self._labels = batch.get("fake_labels")
        self._augment = {key[len(FED_AUGMENT_PREFIX):]: value for key, value in batch.items()
                         if key.startswith(FED_AUGMENT_PREFIX)}
        self._noise_draws = 0
        self._augment_draws = 0

    @staticmethod
    def of(data):
        """The `FedDraws` of batch `data`, or None when it carries no noise."""
        data = _batch_dict(data)
        return FedDraws(data) if isinstance(data, dict) and "z" in data else None

    def noise(self):
        """(z, fake labels or None) of the next draw."""
        index = self._noise_draws
        self._noise_draws += 1
        labels = None if self._labels is None else ops.cast(self._labels[index], "int32")
        return ops.cast(self._z[index], "float32"), labels

    def augmentation(self, probability):
        """The augmentation parameters of the next draw (`augment.draw_parameters`'s dict), gated with ADA's p
        `probability` when the batch holds gate draws; None when the batch holds none."""
        if not self._augment:
            return None
        index = self._augment_draws
        self._augment_draws += 1
        params = {name: value[index] for name, value in self._augment.items() if name != "gate_draws"}
        if "gate_draws" in self._augment:
            draws = ops.cast(self._augment["gate_draws"][index], "float32")
            params["gates"] = ops.cast(ops.less(draws, ops.cast(probability, "float32")), "float32")
        return params


def layers_of_type(model, layer_type):
    """The layers of `model` (not itself) that are instances of `layer_type`."""
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, layer_type)]


def with_loss_scaling(optimizer):
    """`optimizer` wrapped in a `keras.optimizers.LossScaleOptimizer` (unless it is one)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def gradient_norm(gradients, optimizer):
    """The global L2 norm of `gradients` of a loss scaled by `optimizer.scale_loss` (unscaled again)."""
    norm = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(ops.cast(g, "float32"))) for g in gradients
                                       if g is not None])))
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        norm = norm / ops.cast(optimizer.dynamic_scale, "float32")
    return norm


def watched_norm(norm, optimizer):
    """(the gradient norm the `finite` flag and the trackers see, 1.0 when it counts in the window mean else 0.0).

    Under a dynamic loss scale (mixed_float16) scaled gradients that overflow are the optimizer's to handle: it skips
    that update and lowers the scale, so the step is not a divergence and its norm (inf) is left out of the mean.
    NaN weights there are caught by `state_is_finite` at the logging cadence and before every checkpoint.
    """
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return norm, 1.0
    finite = ops.isfinite(norm)
    return ops.where(finite, norm, ops.zeros_like(norm)), ops.cast(finite, "float32")


def all_finite(variables):
    """Whether every floating-point variable is finite: one sum per variable, then one test (a NaN or an infinity
    anywhere makes its sum non-finite; so does a sum that overflows, which only weights near 1e38 can)."""
    sums = [ops.sum(ops.cast(v.value, "float32")) for v in variables]
    return ops.all(ops.isfinite(ops.stack(sums)))


def check_replica_settings(replicas, synchronized_batch_norm, grad_accumulation, explicit_replica_jit):
    """Refuses the settings that a strategy's replica count rules out. The one place these combinations are checked:
    `SAGAN.compile` calls it, and `training.run` before it writes anything into the run directory.

    Args:
      replicas: replicas in sync.
      synchronized_batch_norm: whether batch norm all-reduces its statistics over the replicas.
      grad_accumulation: micro-batches per update.
      explicit_replica_jit: whether XLA was asked for explicitly (not by default) and would compile each replica's
        computation (several replicas, not a TPU, where the whole step is one XLA computation).

    Raises:
      ConfigError: naming the settings (argument and flag) and what to change.
    """
    if not synchronized_batch_norm or replicas < 2:
        return
    if explicit_replica_jit:
        raise ConfigError(
            f"XLA (jit_compile=True, --jit_compile) cannot compile a train step with synchronized batch norm over "
            f"{replicas} replicas: its statistics are all-reduced inside the forward pass, which a per-replica XLA "
            "computation cannot do. Leave XLA to its default (synchronized batch norm then trains without it) or turn "
            "it off (jit_compile=False, --nojit_compile), or turn synchronized batch norm off (--nosync_batch_norm).")
    if grad_accumulation > 1:
        raise ConfigError(
            f"grad_accumulation={grad_accumulation} (--grad_accumulation) cannot train synchronized batch norm on "
            f"{replicas} replicas: its statistics are all-reduced inside the forward pass, which cannot run inside "
            "the loop over micro-batches (tf.distribute cannot synchronize replicas inside control flow). Turn "
            "synchronized batch norm off (--nosync_batch_norm: each micro-batch is then normalized on its own, as "
            "BigGAN-PyTorch does), or train without accumulation.")
