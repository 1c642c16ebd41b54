"""Truncated latents: the one definition of the z that a seed and a truncation name.

The truncation trick (Brock, Donahue, Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis" (BigGAN), sec. 3.1) samples the generator's z from a standard normal truncated at |z| <= t: a smaller
t gives less varied, cleaner images. The exported `generate` signature (sagan_tf/serving/signatures.py) draws its
latents with `truncated_normal` inside the SavedModel; `truncated_latents` draws the same latents here, so that

    serving_default(z=truncated_latents(n, latent_dim, seed, t), labels)  ==  generate(labels, seed, t)

(after `sagan_tf.serving.signatures.to_uint8_tensor`), bit for bit on the same machine. A seed, a truncation and
the labels (or the batch size) thus name the images whichever signature is called, on any machine with the same export.
Across machines, float rounding may differ in the last bits: TensorFlow's stateless random ops (Philox) give the same
uniforms on CPU and GPU (within a TensorFlow version; its documentation does not promise them across versions), but
erfc, ndtri and the generator's kernels may round differently from one device to another.

The draws are TensorFlow's stateless random ops, which only TensorFlow implements bit for bit: the module imports
on any Keras backend, and its functions need TensorFlow installed (a clear ImportError without it).
"""

import numbers
import operator

import numpy as np


def _tensorflow():
    """The `tensorflow` module, or an ImportError that says why it is needed."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError("sagan_tf.sampling.latents draws with TensorFlow's stateless random ops (Philox), the ones "
                          "the exported `generate` signature runs, so that a seed names the same images in and out of "
                          "a SavedModel: install TensorFlow to use it.") from error
    return tf


def truncated_normal(shape, seed, truncation):
    """Standard-normal samples conditioned on |z| <= truncation, a pure function of `seed` (the truncation trick).

    |z| is drawn by inverse-CDF sampling, |z| = -Phi^-1(u) with u uniform in [Phi(-t), 1/2], and its sign by a
    second uniform draw; both use stateless random ops seeded with (seed, 0) and (seed, 1), in float64 so that
    the tail probability Phi(-t) stays exact for large t. This is the algorithm every export's `generate`
    signature runs; changing it would change the images that existing seeds name.

    Args:
      shape: the shape of the result (a 1-D int tensor or list).
      seed: int64 scalar.
      truncation: float scalar t > 0. A Python number is checked here; a tensor is not (inside the serving graph,
        `GeneratorServingModule` asserts it). A Python float becomes a float32 tensor before the cast to float64,
        as TensorFlow converts Python floats.

    Returns:
      A float32 tensor of `shape` with every |z| <= truncation.

    Raises:
      ValueError: `truncation` is a number that is not > 0.
    """
    if isinstance(truncation, numbers.Real) and not truncation > 0:
        raise ValueError(f"truncation must be > 0. Received: truncation={truncation}")
    tf = _tensorflow()
    seed = tf.cast(seed, tf.int64)
    t = tf.cast(truncation, tf.float64)
    lower = 0.5 * tf.math.erfc(t / tf.sqrt(tf.constant(2.0, tf.float64)))  # Phi(-t)
    uniform = tf.random.stateless_uniform(shape, seed=tf.stack([seed, tf.constant(0, tf.int64)]), dtype=tf.float64)
    # The smallest positive double keeps Phi^-1 finite for a huge t where Phi(-t) underflows to 0.
    u = tf.maximum(lower + uniform * (0.5 - lower), tf.constant(5e-324, tf.float64))
    magnitude = tf.minimum(-tf.math.ndtri(u), t)
    sign_draw = tf.random.stateless_uniform(shape, seed=tf.stack([seed, tf.constant(1, tf.int64)]), dtype=tf.float64)
    return tf.cast(tf.where(sign_draw < 0.5, -magnitude, magnitude), tf.float32)


def _positive_int(name, value):
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value}")
    return value


def truncated_latents(batch_size, latent_dim, seed, truncation):
    """The latents the `generate` signature draws for a batch: `truncated_normal` with its inputs' dtypes.

    `generate` takes an int64 `seed` and a float32 `truncation`; the truncation is rounded to float32 here too
    (0.7 is 0.699999988079071 in float32), so that feeding the result to `serving_default` gives `generate`'s
    images exactly.

    Args:
      batch_size: number of latents, an integer >= 1.
      latent_dim: size of each latent, an integer >= 1 (the generator's `config.latent_dim`).
      seed: an integer in the int64 range.
      truncation: a number t > 0 (after rounding to float32); `float("inf")` draws an untruncated normal.

    Returns:
      A float32 tensor [batch_size, latent_dim] with every |z| <= truncation.

    Raises:
      ValueError: an argument out of range or of the wrong type; the message names it.
    """
    batch_size = _positive_int("batch_size", batch_size)
    latent_dim = _positive_int("latent_dim", latent_dim)
    try:
        if isinstance(seed, bool):
            raise TypeError
        seed = np.int64(operator.index(seed))
    except (TypeError, OverflowError):
        raise ValueError(f"seed must be an integer in the int64 range. Received: seed={seed!r}") from None
    if isinstance(truncation, bool) or not isinstance(truncation, numbers.Real):
        raise ValueError(f"truncation must be a number > 0. Received: truncation={truncation!r}")
    truncation32 = np.float32(truncation)
    if not truncation32 > 0:
        raise ValueError(f"truncation must be a number > 0 (in float32, as `generate` takes it). "
                         f"Received: truncation={truncation!r}")
    tf = _tensorflow()
    shape = tf.constant([batch_size, latent_dim], tf.int32)  # as `generate` stacks its int32 batch size
    return truncated_normal(shape, tf.constant(seed, tf.int64), tf.constant(truncation32, tf.float32))


__all__ = ["truncated_normal", "truncated_latents"]
