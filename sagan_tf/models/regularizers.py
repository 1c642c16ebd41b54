"""Regularizers of the GAN losses for small datasets and for truncation: LeCam and orthogonal regularization.

- LeCam (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under Limited Data", sec. 3.1, eq. 3):
  the discriminator's loss gains lambda * R_LC, which keeps its outputs on real images near the moving average of
  its outputs on generated ones and vice versa, so that it cannot drive them apart without bound on a few real
  images.
- Orthogonal regularization (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image
  Synthesis", sec. 3.1): the generator's loss gains beta * sum_W ||W^T W * (1 - I)||_F^2 (W: one column per filter),
  which pushes each weight's filters toward orthogonality without constraining their norms and makes the generator
  amenable to truncated latents.
"""

import keras
from keras import ops


def lecam_penalty(real_logits, fake_logits, anchor_real, anchor_fake):
    """The LeCam penalty of each example pair: relu(D(x) - alpha_F)^2 + relu(alpha_R - D(G(z)))^2.

    Tseng et al.'s eq. 3 writes ||D(x) - alpha_F||^2 + ||D(G(z)) - alpha_R||^2; their released code (and the
    figures they report) penalises only the side where the outputs have crossed the other kind's anchor, which is
    what this does. Its mean over a batch is R_LC.

    Args:
      real_logits: (batch,) discriminator outputs on real images.
      fake_logits: (batch,) discriminator outputs on generated images (as many).
      anchor_real: alpha_R, the moving average of the outputs on real images (a scalar, no gradient).
      anchor_fake: alpha_F, the moving average of the outputs on generated images (a scalar, no gradient).

    Returns:
      (batch,) float32 penalties.
    """
    real = ops.cast(real_logits, "float32")
    fake = ops.cast(fake_logits, "float32")
    anchor_real = ops.stop_gradient(ops.cast(anchor_real, "float32"))
    anchor_fake = ops.stop_gradient(ops.cast(anchor_fake, "float32"))
    return ops.square(ops.relu(real - anchor_fake)) + ops.square(ops.relu(anchor_real - fake))


class LeCamAnchors:
    """The moving averages alpha_R and alpha_F of the discriminator's mean outputs on real and generated images.

    Each discriminator update adds the global batch's means with decay 0.99 (the paper's); the anchors are the
    averages corrected for their start at zero (divided by 1 - decay^updates, as the authors' TensorFlow code for
    StyleGAN2 does; their BigGAN code starts the averages at a copy instead), and 0.0 before the first update. A
    discriminator update uses the anchors of the updates before it: the authors' TensorFlow code first adds the
    current batch's means (1% of the anchor at decay 0.99), which would need the replicas' means inside the gradient
    computation, where a per-replica XLA computation cannot all-reduce.

    State (float32 `keras.Variable`s created in the current strategy scope, all checkpointed): `real`, `fake` (the
    uncorrected averages) and `updates`. Under tf.distribute every replica passes the same all-reduced means to
    `update` and so holds the same values.

    Args:
      decay: the moving averages' decay, in (0, 1).
    """

    def __init__(self, decay=0.99):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1). Received: decay={decay}")
        self.decay = float(decay)

        def variable(name):
            return keras.Variable(0.0, dtype="float32", trainable=False, aggregation="none", name=name)

        self.real, self.fake, self.updates = (variable(f"lecam_{name}") for name in ("real", "fake", "updates"))

    @property
    def variables(self):
        """{name: variable} of the state, as a checkpoint holds it."""
        return {"real": self.real, "fake": self.fake, "updates": self.updates}

    def anchors(self):
        """(alpha_R, alpha_F) as float32 scalars: the bias-corrected averages, (0, 0) before any update."""
        updates = self.updates.value  # a value, not the variable: JAX's ops do not take variables
        correction = 1.0 - ops.power(self.decay, updates)
        safe = ops.maximum(correction, 1e-12)
        started = ops.greater(updates, 0.0)
        return (ops.where(started, self.real.value / safe, 0.0), ops.where(started, self.fake.value / safe, 0.0))

    def update(self, real_mean, fake_mean):
        """Adds one discriminator update's mean outputs on real and on generated images (global-batch means)."""
        self.real.assign(self.decay * self.real + (1.0 - self.decay) * ops.cast(real_mean, "float32"))
        self.fake.assign(self.decay * self.fake + (1.0 - self.decay) * ops.cast(fake_mean, "float32"))
        self.updates.assign(self.updates + 1.0)


# Layers whose kernel is laid out (*spatial, filters, input channels): the filters are the second-to-last axis.
_TRANSPOSED_KERNEL_LAYERS = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


def orthogonal_kernels(network):
    """The weights orthogonal regularization applies to, each with the axis that indexes its filters.

    Every trainable kernel of `network` (convolutions, transposed convolutions and dense layers, spectrally
    normalized or not: the raw kernel), not biases, gains or per-class tables (BigGAN leaves its shared class
    embedding out). A `Conv*D` or `Dense` kernel holds its output filters on its last axis; a `Conv*DTranspose`
    kernel is (*spatial, filters, input channels), so its filters are axis -2.

    Args:
      network: a built `keras.Layer` (e.g. the generator).

    Returns:
      A list of (kernel variable, filter axis) pairs, in the order of `network.trainable_variables`.
    """
    # Keras 3 has no public recursive layer walk; `_flatten_layers` is what `Model.layers` itself uses.
    transposed = {id(layer.kernel) for layer in network._flatten_layers()
                  if isinstance(layer, _TRANSPOSED_KERNEL_LAYERS) and getattr(layer, "kernel", None) is not None}
    return [(variable, -2 if id(variable) in transposed else -1) for variable in network.trainable_variables
            if variable.path.endswith("kernel") and len(variable.shape) >= 2]


def orthogonal_penalty(kernels):
    """BigGAN's modified orthogonal regularization without its weight: sum over W of ||W^T W * (1 - I)||_F^2.

    Each kernel is a matrix W with one column per filter (output channel; the other axes are flattened: BigGAN's
    released code, `ortho` in BigGAN-PyTorch's utils.py, views a PyTorch weight with one row per output channel),
    so W^T W holds the filters' inner products and the penalty its off-diagonal part. The weight beta (1e-4 in
    BigGAN) multiplies it in the loss. BigGAN's released code adds 2 * beta * W (W^T W * (1 - I)) to the gradient,
    half the gradient of this term: its strength s corresponds to beta = s / 2 here.

    Args:
      kernels: (kernel, filter axis) pairs, as `orthogonal_kernels` returns them: variables or tensors of rank
        >= 2 and the axis of each that indexes its filters (-1 for `Conv*D` and `Dense`, -2 for `Conv*DTranspose`).

    Returns:
      A float32 scalar.
    """
    total = ops.zeros((), "float32")
    for kernel, axis in kernels:
        rank, filters = len(kernel.shape), kernel.shape[axis]
        axis = axis % rank
        order = [a for a in range(rank) if a != axis] + [axis]  # the filters last
        matrix = ops.reshape(ops.transpose(ops.cast(kernel, "float32"), order), (-1, filters))
        gram = ops.matmul(ops.transpose(matrix), matrix)
        off_diagonal = gram * (1.0 - ops.eye(filters, dtype="float32"))
        total = total + ops.sum(ops.square(off_diagonal))
    return total


__all__ = ["lecam_penalty", "LeCamAnchors", "orthogonal_kernels", "orthogonal_penalty"]
