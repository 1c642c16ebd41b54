"""Checkpoint I/O: what a training checkpoint holds, and reading one network back out of it.

A checkpoint of a SAGAN run (`gan_checkpoint`) holds, under these top-level names:

    generator/..., discriminator/..., ema_generator/...   every variable of each network, keyed by its path below
                                                          the network's name (`network_variables`)
    g_optimizer/..., d_optimizer/...                      slots, iteration counts, float16 loss scale
    noise_seed                                            the state of the training noise's SeedGenerator
    augment_seed                                          with augmentation on: the state of its SeedGenerator
    ada/p, ada/signs, ada/seen, ada/rt                    with ADA: its probability p and the statistics since its
                                                          last adjustment
    lecam/real, lecam/fake, lecam/updates                 with LeCam: its moving anchors

The training step is the generator optimizer's iteration count. Inference code (evaluation, export, pictures)
reads one generator with `restore_network`, without building the discriminator or the optimizers.

A checkpoint that cannot be read back (truncated by a full disk, a corrupt block, a missing data file) raises one of
`READ_ERRORS` when restored; `restore_network` turns that into a `DamagedCheckpointError` naming it. Training never
writes a checkpoint whose state is not finite (`nonfinite_variables`).
"""

import numpy as np
import tensorflow as tf

from sagan_tf.errors import CheckpointError, DamagedCheckpointError

#: What TensorFlow raises when a checkpoint's files cannot be read back: `IndexError` ("Read less bytes than
#: requested") for truncated data, `tf.errors.DataLossError` for a corrupt block, other `OpError`s for a truncated
#: index or a missing data file. A checkpoint of another architecture raises `ValueError` or `AssertionError`.
READ_ERRORS = (tf.errors.OpError, IndexError)


def describe_read_error(error):
    """"IndexError: Read less bytes than requested": a read error's class and first line, without TF's op name."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if isinstance(error, tf.errors.OpError) and lines else (lines[0] if lines else "")
    return f"{type(error).__name__}: {text.strip()[:200]}"

GENERATOR = "generator"
DISCRIMINATOR = "discriminator"
EMA_GENERATOR = "ema_generator"


def network_variables(network):
    """The variables of a network keyed by their path below the network's name: what `gan_checkpoint` saves.

    Keyed by the path below the network's own name ("block1/bn1/gamma"), which does not depend on how many networks
    were created before in the session (Keras numbers default names: generator_1, ...).

    Args:
      network: a built Keras layer or model.

    Returns:
      A dict mapping "block1/bn1/gamma"-style keys to variables.

    Raises:
      ValueError: two variables share a path (give the layers unique names).
    """
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
    included), both optimizers (slots, iteration counts, float16 loss scale) and the noise RNG state; with the
    small-data options on, also the augmentation RNG state, ADA's p and statistics and the LeCam anchors (left out
    when off, so that checkpoints of runs without them, older ones included, keep their layout).

    The networks are given as dicts of their variables rather than as objects: TensorFlow's object-graph
    checkpointing does not see Keras 3 layers kept in Python lists (the generator's stages), so
    `tf.train.Checkpoint(model=model)` would silently leave their batch-norm statistics and spectral-norm vectors
    out (and the EMA generator's blocks entirely, as no optimizer references them).

    Args:
      model: a compiled `sagan_tf.models.SAGAN`.

    Returns:
      A `tf.train.Checkpoint`; restore it with `checkpoint.restore(path).assert_existing_objects_matched()`.
    """
    networks = {GENERATOR: network_variables(model.generator),
                DISCRIMINATOR: network_variables(model.discriminator)}
    if model.ema_generator is not None:
        networks[EMA_GENERATOR] = network_variables(model.ema_generator)
    extra = dict(model.regularization_state())
    if model.augment_seed_generator is not None:
        extra["augment_seed"] = model.augment_seed_generator.state
    return tf.train.Checkpoint(noise_seed=model.seed_generator.state, g_optimizer=model.g_optimizer,
                               d_optimizer=model.d_optimizer, **networks, **extra)


def nonfinite_variables(model):
    """The paths of the float variables of a SAGAN's checkpointed state (`SAGAN.state_variables`) that hold a NaN or
    an infinity; empty when the state may be saved. The variables are copied to the host only when the device
    check (`SAGAN.state_is_finite`) finds something."""
    if model.state_is_finite():
        return []
    return [v.path for v in model.state_variables() if not np.isfinite(np.asarray(v.numpy(), np.float32)).all()]


def saved_names(path):
    """The top-level names in the checkpoint at `path` (e.g. {"generator", "ema_generator", "g_optimizer", ...}).

    Raises:
      DamagedCheckpointError: its index cannot be read.
    """
    try:
        return {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}
    except READ_ERRORS as error:
        raise DamagedCheckpointError(f"Checkpoint {path} is damaged: its index cannot be read "
                                     f"({describe_read_error(error)}).") from None


def uses_loss_scaling(path):
    """Whether the checkpoint at `path` was written with float16 dynamic loss scaling (mixed_float16).

    Raises one of `READ_ERRORS` when its index cannot be read."""
    return any("dynamic_scale" in name for name, _ in tf.train.list_variables(path))


def saved_step(path):
    """The training step stored in the checkpoint at `path`: its generator optimizer's iteration count (0 if none)."""
    for name, _ in tf.train.list_variables(path):
        if name.startswith("g_optimizer/") and "iteration" in name:
            return int(tf.train.load_variable(path, name))
    return 0


def restore_network(network, path, key):
    """Reads the variables of one network saved under `key` in the checkpoint at `path` into `network`.

    Args:
      network: a built network with the architecture of the saved one.
      path: a checkpoint path prefix.
      key: `GENERATOR`, `EMA_GENERATOR` or `DISCRIMINATOR`.

    Raises:
      DamagedCheckpointError: its files cannot be read back.
      CheckpointError: the checkpoint holds no such network, or one of another architecture.
    """
    names = saved_names(path)
    if key not in names:
        raise CheckpointError(f"Checkpoint {path} holds no {key} (it has: {', '.join(sorted(names))}); it was not "
                              "written by `python -m training.run`.")
    reader = tf.train.Checkpoint(**{key: network_variables(network)})
    try:
        reader.read(path).expect_partial().assert_existing_objects_matched()
    except READ_ERRORS as error:
        raise DamagedCheckpointError(f"Checkpoint {path} is damaged: its {key} cannot be read back "
                                     f"({describe_read_error(error)}).") from None
    except (AssertionError, ValueError) as error:
        raise CheckpointError(f"Checkpoint {path} does not fit this {key} ({str(error).splitlines()[0]}); the "
                              "config and the checkpoint come from different runs.") from None


__all__ = ["network_variables", "gan_checkpoint", "nonfinite_variables", "saved_names", "uses_loss_scaling",
           "saved_step", "restore_network", "describe_read_error", "READ_ERRORS", "GENERATOR", "DISCRIMINATOR",
           "EMA_GENERATOR"]
