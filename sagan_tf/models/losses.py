"""Adversarial losses of SAGAN and their replica-aware reduction.

Each loss returns per-example values; `global_mean` reduces them over the *global* batch, so that the gradients
that `tf.distribute` sums across replicas come out as the gradient of the global-batch mean (BUILD.md fact 4).
"""

from keras import ops


def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge loss of the discriminator (SAGAN eq. 4, first line), per example.

    L_D = max(0, 1 - D(x, y)) + max(0, 1 + D(G(z), y)).

    Args:
      real_logits: (batch,) discriminator logits on real images.
      fake_logits: (batch,) discriminator logits on generated images.

    Returns:
      (batch,) per-example losses.
    """
    return ops.relu(1.0 - real_logits) + ops.relu(1.0 + fake_logits)


def hinge_generator_loss(fake_logits):
    """Hinge loss of the generator (SAGAN eq. 4, second line), per example: L_G = -D(G(z), y).

    Args:
      fake_logits: (batch,) discriminator logits on generated images.

    Returns:
      (batch,) per-example losses.
    """
    return -fake_logits


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """Logistic discriminator loss of Goodfellow et al. (2014), per example.

    L_D = -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) = softplus(-D(x)) + softplus(D(G(z))).

    Args:
      real_logits: (batch,) discriminator logits on real images.
      fake_logits: (batch,) discriminator logits on generated images.

    Returns:
      (batch,) per-example losses.
    """
    return ops.softplus(-real_logits) + ops.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits):
    """Non-saturating generator loss (Goodfellow et al. 2014), per example: -log sigmoid(D(G(z))).

    Args:
      fake_logits: (batch,) discriminator logits on generated images.

    Returns:
      (batch,) per-example losses.
    """
    return ops.softplus(-fake_logits)


LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "non_saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss),
}


def get_losses(name):
    """Returns the (discriminator_loss, generator_loss) pair called `name`.

    Raises:
      ValueError: for an unknown name, listing the known ones.
    """
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}. Known losses: {', '.join(sorted(LOSSES))}.")
    return LOSSES[name]


def global_mean(per_example, global_batch_size):
    """Sum over this replica's examples divided by the global batch size.

    Summed over replicas (as gradients are), this is the mean over the global batch.

    Args:
      per_example: (batch,) per-example values on this replica.
      global_batch_size: examples per step over all replicas.

    Returns:
      A float32 scalar.
    """
    return ops.sum(ops.cast(per_example, "float32")) / ops.cast(global_batch_size, "float32")
