"""Checkpoint I/O: what a training checkpoint holds, and reading one network back out of it.

A checkpoint of a SAGAN run (`gan_checkpoint`) holds, under these top-level names:

    generator/..., discriminator/..., ema_generator/...   every variable of each network, keyed by its path below
                                                          the network's name (`network_variables`)
    g_optimizer/..., d_optimizer/...                      slots, iteration counts, float16 loss scale
    noise_seed                                            the state of the training noise's SeedGenerator

The training step is the generator optimizer's iteration count. Inference code (evaluation, export, pictures)
reads one generator with `restore_network`, without building the discriminator or the optimizers.
"""

import tensorflow as tf

from sagan_tf.errors import CheckpointError

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
    networks = {GENERATOR: network_variables(model.generator),
                DISCRIMINATOR: network_variables(model.discriminator)}
    if model.ema_generator is not None:
        networks[EMA_GENERATOR] = network_variables(model.ema_generator)
    return tf.train.Checkpoint(noise_seed=model.seed_generator.state, g_optimizer=model.g_optimizer,
                               d_optimizer=model.d_optimizer, **networks)


def saved_names(path):
    """The top-level names in the checkpoint at `path` (e.g. {"generator", "ema_generator", "g_optimizer", ...})."""
    return {name.split("/", 1)[0] for name, _ in tf.train.list_variables(path)}


def uses_loss_scaling(path):
    """Whether the checkpoint at `path` was written with float16 dynamic loss scaling (mixed_float16)."""
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
      CheckpointError: the checkpoint holds no such network, or one of another architecture.
    """
    names = saved_names(path)
    if key not in names:
        raise CheckpointError(f"Checkpoint {path} holds no {key} (it has: {', '.join(sorted(names))}); it was not "
                              "written by `python -m training.run`.")
    reader = tf.train.Checkpoint(**{key: network_variables(network)})
    try:
        reader.read(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise CheckpointError(f"Checkpoint {path} does not fit this {key} ({str(error).splitlines()[0]}); the "
                              "config and the checkpoint come from different runs.") from None


__all__ = ["network_variables", "gan_checkpoint", "saved_names", "uses_loss_scaling", "saved_step",
           "restore_network", "GENERATOR", "DISCRIMINATOR", "EMA_GENERATOR"]
