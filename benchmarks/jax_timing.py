"""Train-step timing on Keras's JAX backend, for `train_throughput.py --backend=jax`: needs Keras, JAX and NumPy only.

The step is the model's own jitted train function, called as `fit` calls it (Keras's JAX trainer: the state
tuple of trainable, non-trainable, optimizer and metric values goes in, the updated one comes back and is passed
to the next call), on one batch already on the device, so that neither host-to-device copies nor Keras's
per-call variable bookkeeping (`train_on_batch`) are timed. Every timed step ends with `jax.block_until_ready` on
its logs and state: asynchronous dispatch would otherwise return before the device has finished.

JAX runs float32 matmuls and convolutions at its default precision, which on NVIDIA GPUs may be TF32, the model's
and the float32 ceiling's alike; `matmul_precision` in the record says which default was set.
"""

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import cpu_description, fastest_call


def device_name():
    """A short description of JAX's default device: its kind (e.g. "NVIDIA H100 80GB HBM3") or the CPU's."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return cpu_description()
    return f"{device.device_kind} ({len(jax.devices())} x {device.platform})"


def default_matmul_size():
    """The side of the square matmul whose speed is the ceiling: 2048 on CPUs (as on TensorFlow), 8192 on
    accelerators, where a 2048^3 product (17 GFLOP, tens of microseconds) measures launch overhead, not the
    matrix units."""
    return 2048 if jax.devices()[0].platform == "cpu" else 8192


def matmul_ceiling(dtype, size=None, repeats=10):
    """Best-of-repeats FLOP/s of a size x size jitted `jnp.matmul` in `dtype` ("float32" or "bfloat16") on JAX's
    default device, each timed to `block_until_ready`."""
    size = size or default_matmul_size()
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32).astype(dtype)
    b = a.T
    matmul = jax.jit(jnp.matmul)
    return 2 * size ** 3 / fastest_call(lambda: matmul(a, b).block_until_ready(), repeats)


def matmul_precision():
    """JAX's default matmul precision ("default" unless `jax_default_matmul_precision` is set)."""
    return str(jax.config.jax_default_matmul_precision or "default")


def _memory_stats():
    return jax.devices()[0].memory_stats() or {}


def memory_mib():
    """(peak, in use) MiB of JAX's allocator on the default device (GPU: `memory_stats()`), or (None, None) where
    the device keeps no statistics (CPU)."""
    stats = _memory_stats()
    if "peak_bytes_in_use" not in stats:
        return None, None
    return (round(stats["peak_bytes_in_use"] / 2 ** 20, 1), round(stats.get("bytes_in_use", 0) / 2 ** 20, 1))


def peak_memory_mib():
    """GPU: the allocator's peak bytes in use; CPU: the process's maximum resident set size (getrusage)."""
    peak, _ = memory_mib()
    if peak is not None:
        return peak
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10, 1)  # KiB on Linux


def time_train_steps(model, images, labels, steps, warmup, rss_mib):
    """Times `steps` calls of the model's jitted train function after `warmup` untimed ones (the first compiles).

    Args:
      model: a compiled `SAGAN` on the JAX backend.
      images: float32 array (d_steps * batch, H, W, 3).
      labels: int32 array (d_steps * batch,), or None for an unconditional model.
      steps: timed steps.
      warmup: untimed steps first (at least the compiling one runs).
      rss_mib: a function returning the process's resident set size in MiB.

    Returns:
      dict: `first_step_s`, `times` (seconds of each timed step), `d_loss` (of the last step), `rss_before_steps`,
      `allocator_resident_mib` (device memory in use before the timed steps; None on CPU).
    """
    # (x, y, sample_weight): the structure `train_on_batch` passes, so that a model it has trained reuses its step.
    batch = (jax.device_put(images), None if labels is None else jax.device_put(labels), None)
    model.make_train_function()
    variables = model.jax_state_variables()
    state = tuple([v.value for v in group] for group in variables)
    rss_before_steps = rss_mib()

    def step(state):
        logs, state = model.train_function(state, iter([batch]))
        jax.block_until_ready((logs, state))
        return logs, state

    start = time.perf_counter()
    logs, state = step(state)
    first_step_s = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        logs, state = step(state)
    _, resident = memory_mib()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logs, state = step(state)
        times.append(time.perf_counter() - start)
    for group, values in zip(variables, state):  # the train function donates its input state: hand it back
        for variable, value in zip(group, values):
            variable.assign(value)
    return {"first_step_s": first_step_s, "times": times, "d_loss": float(np.asarray(logs["d_loss"])),
            "rss_before_steps": rss_before_steps, "allocator_resident_mib": resident}
