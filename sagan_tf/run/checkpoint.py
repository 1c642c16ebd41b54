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

Every read goes through `read_checkpoint`, the one place that tells a damaged checkpoint from a storage that did not
serve it this time: a checkpoint whose files are damaged (truncated by a full disk, a corrupt block, a missing or
garbled file; `is_damage`) is a `DamagedCheckpointError` naming it (training then resumes from an older one); a
passing storage error (`TRANSIENT_READ_ERRORS`, e.g. on gs://) is retried `READ_ATTEMPTS` times, one warning line
each, and then is a `CheckpointUnavailableError`: the checkpoint is not damaged, so nothing falls back to an older
one. Training never writes a checkpoint whose state is not finite (`nonfinite_variables`).
"""

import time

import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf.errors import CheckpointError, CheckpointUnavailableError, DamagedCheckpointError

#: What TensorFlow raises when a checkpoint's files cannot be read back. A checkpoint of another architecture raises
#: `ValueError` or `AssertionError` instead.
READ_ERRORS = (tf.errors.OpError, IndexError)
#: Read errors of a storage that did not serve the read this time (gs://, a network filesystem): UNAVAILABLE and
#: DEADLINE_EXCEEDED (the codes gRPC's status-code guide says to retry), and ABORTED, which TensorFlow's retrying
#: file systems (gs://) return when their own retries are used up ("All 10 retry attempts failed",
#: tsl/platform/retrying_utils.cc).
TRANSIENT_READ_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)
#: Reads of a checkpoint tried before a transient error stops the command, the first retry waiting
#: `RETRY_DELAY_SECONDS` and each next one twice as long (1 + 2 + 4 + 8 s).
READ_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 1.0


def is_damage(error):
    """Whether a read error says that the checkpoint's files are damaged, as measured with TensorFlow 2.21:
    `IndexError` for truncated or overwritten data ("Read less bytes than requested", "Parsed past limit"),
    `DataLossError` for a block whose checksum fails, `NotFoundError` for a missing index, and the checkpoint
    reader's UNKNOWN-coded `OpError` for a garbled or truncated index ("not an sstable (bad magic number)") or a
    missing data file. Anything else (a storage error, no permission, out of memory) leaves the files as they are."""
    if isinstance(error, (IndexError, tf.errors.DataLossError, tf.errors.NotFoundError)):
        return True
    return isinstance(error, tf.errors.OpError) and error.error_code == tf.errors.UNKNOWN


def read_checkpoint(read, path, what):
    """`read()`, a read of the checkpoint at `path`, retried while storage does not serve it.

    Args:
      read: a function that reads the checkpoint (a restore, a listing of its variables); its result is returned.
      path: the checkpoint path prefix, for the messages.
      what: what failed, for the messages: "its index cannot be read", "its ema_generator cannot be read back".

    Raises:
      DamagedCheckpointError: its files are damaged (`is_damage`).
      CheckpointUnavailableError: storage still failed (`TRANSIENT_READ_ERRORS`) after `READ_ATTEMPTS` reads.
      CheckpointError: any other read error (e.g. no permission): the checkpoint is not damaged either.
    """
    delay = RETRY_DELAY_SECONDS
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return read()
        except READ_ERRORS as error:
            cause = describe_read_error(error)
            if is_damage(error):
                raise DamagedCheckpointError(f"Checkpoint {path} is damaged: {what} ({cause}).") from None
            if not isinstance(error, TRANSIENT_READ_ERRORS):
                raise CheckpointError(f"Checkpoint {path}: {what} ({cause}). Its files are not known to be damaged, so "
                                      "no older checkpoint replaces it: fix the access to them and rerun the same "
                                      "command.") from None
            if attempt == READ_ATTEMPTS:
                raise CheckpointUnavailableError(
                    f"Checkpoint {path}: {what}: storage failed {READ_ATTEMPTS} times in a row (last: {cause}). "
                    "The checkpoint is not damaged, so no older one replaces it; rerun the same command when the "
                    "storage answers again.", path=path) from None
            logging.warning("Checkpoint %s: %s (%s); storage may be busy, so retrying in %g s (attempt %d of %d).",
                            path, what, cause, delay, attempt + 1, READ_ATTEMPTS)
            time.sleep(delay)
            delay *= 2


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

    Raises what `read_checkpoint` raises when its index cannot be read.
    """
    return {name.split("/", 1)[0] for name, _ in _variable_names(path)}


def _variable_names(path):
    return read_checkpoint(lambda: tf.train.list_variables(path), path, "its index cannot be read")


def uses_loss_scaling(path):
    """Whether the checkpoint at `path` was written with float16 dynamic loss scaling (mixed_float16).

    Raises what `read_checkpoint` raises when its index cannot be read."""
    return any("dynamic_scale" in name for name, _ in _variable_names(path))


def saved_step(path):
    """The training step stored in the checkpoint at `path`: its generator optimizer's iteration count (0 if none)."""
    for name, _ in _variable_names(path):
        if name.startswith("g_optimizer/") and "iteration" in name:
            return int(read_checkpoint(lambda: tf.train.load_variable(path, name), path, "its step cannot be read"))
    return 0


def restore_network(network, path, key):
    """Reads the variables of one network saved under `key` in the checkpoint at `path` into `network`.

    Args:
      network: a built network with the architecture of the saved one.
      path: a checkpoint path prefix.
      key: `GENERATOR`, `EMA_GENERATOR` or `DISCRIMINATOR`.

    Raises:
      DamagedCheckpointError: its files cannot be read back.
      CheckpointUnavailableError: storage did not serve it (`read_checkpoint`).
      CheckpointError: the checkpoint holds no such network, or one of another architecture.
    """
    names = saved_names(path)
    if key not in names:
        raise CheckpointError(f"Checkpoint {path} holds no {key} (it has: {', '.join(sorted(names))}); it was not "
                              "written by `python -m training.run`.")
    reader = tf.train.Checkpoint(**{key: network_variables(network)})
    try:
        read_checkpoint(lambda: reader.read(path).expect_partial().assert_existing_objects_matched(), path,
                        f"its {key} cannot be read back")
    except CheckpointError:  # a `ValueError` too, but about its files, not its fit
        raise
    except (AssertionError, ValueError) as error:
        raise CheckpointError(f"Checkpoint {path} does not fit this {key} ({str(error).splitlines()[0]}); the "
                              "config and the checkpoint come from different runs.") from None


__all__ = ["network_variables", "gan_checkpoint", "nonfinite_variables", "saved_names", "uses_loss_scaling",
           "saved_step", "restore_network", "describe_read_error", "read_checkpoint", "is_damage", "READ_ERRORS",
           "TRANSIENT_READ_ERRORS", "READ_ATTEMPTS", "RETRY_DELAY_SECONDS", "GENERATOR", "DISCRIMINATOR",
           "EMA_GENERATOR"]
