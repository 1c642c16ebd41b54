"""What the JAX tests run, once per session, in a child process with KERAS_BACKEND=jax (a pytest process has one
Keras backend: TensorFlow), on two CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=2) and with
TensorFlow made unimportable, so that everything below is shown to need only Keras, JAX, NumPy and sagan_tf.

    python tests/jax_child.py <output directory> <ExperimentConfig JSON>

It trains a SAGAN built by `build_sagan(config, seed=0)` (with SGD, see `make`) for two `train_on_batch` steps on
one device with every batch norm normalizing each half of its batch on its own (`normalizing_halves`), and the
same from the same weights through `keras.distribution.DataParallel` on both devices, and writes to the output
directory:
- `generator.keras`, `generator.weights.h5`: the one-device model's EMA generator in Keras's two formats, and
  `outputs.npz`: its images for fixed latents and labels (`z`, `labels`, `images`);
- `state.npz`: every state variable of both runs (`one/<i>`, `several/<i>`, numbered in `state_variables()` order;
  `paths`: the one-device model's variable paths in that order) and each device's copy of each variable of the
  DataParallel run (`copies/<i>`, stacked);
- `batch_norm.npz`: a `BatchNorm` and a `ConditionalBatchNorm` trained one call on both devices (`batch_norms`);
- `results.json`: `devices`, `shard_shapes` (each device's piece of a global batch under the DataParallel layout),
  `indivisible_error` (what `train_on_batch` raised for a global batch of `indivisible_batch` images, which the
  devices do not divide), `indivisible_fit_error` (what `fit` raised, before training, for arrays in batches of
  that size), `indivisible_generator` (what `fit` raised for a generator whose second batch is that size, and the
  generator optimizer's iterations before and after: the first step's state is kept; then for a generator whose
  first batch is that size, and whether every state variable kept its value), `flops` (the analytic train-step
  count of benchmarks/flops.py, on JAX), `timing` (one step timed by `time_train_steps` of
  benchmarks/jax_timing.py), `tensorflow_imported` (whether anything got a
  TensorFlow module) and `seconds` (wall time of each part).
"""

import contextlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.modules["tensorflow"] = None  # as on a machine without TensorFlow: importing it fails

import jax  # noqa: E402
import keras  # noqa: E402

from sagan_tf.config import ExperimentConfig  # noqa: E402
from sagan_tf.layers import BatchNorm, ConditionalBatchNorm, batch_norm  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402

STEPS = 2


def real_batches(config, seed=1):
    """`STEPS` (images, labels) batches of d_steps * batch_size images whose halves have different statistics (so
    that batch-norm statistics differ between devices that each see one half)."""
    rng = np.random.default_rng(seed)
    model, batch = config.model, config.training.batch_size * config.training.d_steps
    batches = []
    for _ in range(STEPS):
        images = rng.uniform(-1, 1, (batch, model.image_size, model.image_size, 3)).astype("float32")
        images[batch // 2:] = 0.5 * images[batch // 2:] + 0.3
        labels = (np.arange(batch) % max(model.num_classes, 1)).astype("int32")
        batches.append((images, labels))
    return batches


def make(config):
    """`build_sagan(config, seed=0)` recompiled with plain SGD, whose updates are proportional to the gradients:
    Adam's normalized update turns float32 rounding differences of near-zero gradients (e.g. of a convolution's
    bias before batch norm) into steps of the learning rate's size, which would hide what one and two devices
    compute alike."""
    model = build_sagan(config, seed=0)
    model.compile(g_optimizer=keras.optimizers.SGD(0.05), d_optimizer=keras.optimizers.SGD(0.05))
    return model


def train(model, config, weights=None):
    """`model` after `STEPS` train_on_batch calls (from `weights` when given)."""
    if weights is not None:
        for variable, value in zip(model.state_variables(), weights):
            variable.assign(value)
    for images, labels in real_batches(config):
        model.train_on_batch(images, labels if config.model.num_classes else None)
    return model


def batch_norms(directory, distribution):
    """batch_norm.npz: the inputs of a `BatchNorm` and a `ConditionalBatchNorm` (`x`, `labels`, `gamma`, `beta`
    (per class), the moving statistics they start from, momentum 0.5) and, for each layer ("plain", "conditional")
    and `synchronized` ("per_device", "synchronized"), `<layer>/<synchronized>/outputs`, `.../moving_mean` and
    `.../moving_variance` after one training call on `x` split over the devices of `distribution`."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 2, 2, 3)).astype("float32")
    x[4:] = 3.0 * x[4:] - 5.0  # the devices' halves have different statistics
    values = {"x": x, "labels": np.array([0, 1, 2, 3, 3, 2, 1, 1], "int32"),
              "gamma": rng.uniform(0.5, 2.0, (4, 3)).astype("float32"),
              "beta": rng.normal(size=(4, 3)).astype("float32"),
              "moving_mean": rng.normal(size=3).astype("float32"),
              "moving_variance": rng.uniform(0.5, 1.5, 3).astype("float32")}
    sharded = jax.device_put(x, distribution.get_data_layout(x.shape).backend_layout)
    for synchronized in (False, True):
        for conditional in (False, True):
            layer = (ConditionalBatchNorm(4, momentum=0.5, synchronized=synchronized) if conditional
                     else BatchNorm(momentum=0.5, synchronized=synchronized))
            inputs = (sharded, values["labels"]) if conditional else (sharded,)
            layer.build(*(tensor.shape for tensor in inputs))
            layer.gamma.assign(values["gamma"] if conditional else values["gamma"][0])
            layer.beta.assign(values["beta"] if conditional else values["beta"][0])
            layer.moving_mean.assign(values["moving_mean"])
            layer.moving_variance.assign(values["moving_variance"])
            outputs = layer(*inputs, training=True)
            name = f"{'conditional' if conditional else 'plain'}/{'synchronized' if synchronized else 'per_device'}"
            values.update({f"{name}/outputs": np.array(outputs),
                           f"{name}/moving_mean": np.array(layer.moving_mean.value),
                           f"{name}/moving_variance": np.array(layer.moving_variance.value)})
    np.savez(os.path.join(directory, "batch_norm.npz"), **values)


@contextlib.contextmanager
def normalizing_halves():
    """Within it, every `BatchNorm` normalizes each half of a training batch on its own, as on two devices."""
    device_groups, batch_norm.device_groups = batch_norm.device_groups, lambda: 2
    try:
        yield
    finally:
        batch_norm.device_groups = device_groups


def save_generator(directory, config, model):
    generator = model.ema_generator
    generator.save(os.path.join(directory, "generator.keras"))
    generator.save_weights(os.path.join(directory, "generator.weights.h5"))
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, config.model.latent_dim)).astype("float32")
    labels = (np.arange(6) % max(config.model.num_classes, 1)).astype("int32")
    images = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    np.savez(os.path.join(directory, "outputs.npz"), z=z, labels=labels, images=images)


def benchmark_path(config, model):
    """What `train_throughput.py --backend=jax` measures, on the trained model: the FLOP count and one timed step."""
    from benchmarks import flops, jax_timing

    counted = flops.count_train_step_flops(model.generator, model.discriminator, config.training.batch_size,
                                           config.training.d_steps)
    images, labels = real_batches(config)[0]
    timed = jax_timing.time_train_steps(model, images, labels, steps=1, warmup=1, rss_mib=lambda: 0.0)
    return counted["total"], {key: value for key, value in timed.items() if key != "times"}


def _values(model):
    """{position: value} of the model's state variables, numbered in `state_variables()` order (the paths of two
    models built in one process differ: Keras numbers repeated layer names)."""
    return {f"{index:04d}": np.array(variable.value) for index, variable in enumerate(model.state_variables())}


def _error(call):
    """"<type>: <message>" of the ValueError that `call()` raises, or None."""
    try:
        call()
    except ValueError as error:
        return f"{type(error).__name__}: {error}"
    return None


def main(directory, config):
    started = time.perf_counter()
    keras.utils.set_random_seed(0)
    one_device = make(config)
    initial = [np.array(v.value) for v in one_device.state_variables()]
    with normalizing_halves():
        train(one_device, config)
    save_generator(directory, config, one_device)
    one_values = _values(one_device)
    seconds = {"one_device": time.perf_counter() - started}

    distribution = keras.distribution.DataParallel(devices=jax.devices())
    keras.distribution.set_distribution(distribution)
    model = train(make(config), config, initial)
    batch_norms(directory, distribution)
    images, labels = real_batches(config)[0]
    sharded = jax.device_put(images, distribution.get_data_layout(images.shape).backend_layout)
    odd = config.training.batch_size + 1
    indivisible_error = _error(lambda: model.train_on_batch(np.concatenate([images, images[:1]]),
                                                            np.concatenate([labels, labels[:1]])))
    seconds["data_parallel"] = time.perf_counter() - started - seconds["one_device"]
    np.savez(os.path.join(directory, "state.npz"),
             **{f"one/{index}": value for index, value in one_values.items()},
             **{f"several/{index}": value for index, value in _values(model).items()},
             **{f"copies/{index:04d}": np.stack([np.array(shard.data) for shard in variable.value.addressable_shards])
                for index, variable in enumerate(model.state_variables())},
             paths=np.array([variable.path for variable in one_device.state_variables()]))
    # Last: these change the DataParallel model (the generator's first batch trains it one step).
    odd_images, odd_labels = np.concatenate([images, images[:1]]), np.concatenate([labels, labels[:1]])
    indivisible_fit_error = _error(lambda: model.fit(odd_images, odd_labels, batch_size=odd, verbose=0))
    before = int(np.array(model.g_optimizer.iterations.value))
    generator_error = _error(lambda: model.fit(
        (batch for batch in [(images, labels), (odd_images, odd_labels)]), steps_per_epoch=2, verbose=0))
    weights = [np.array(v.value) for v in model.state_variables()]
    first_batch_error = _error(lambda: model.fit((batch for batch in [(odd_images, odd_labels)]), steps_per_epoch=1,
                                                 verbose=0))
    indivisible_generator = {"error": generator_error, "iterations": [
        before, int(np.array(model.g_optimizer.iterations.value))],
        "finite": bool(all(np.isfinite(np.array(v.value, "float64")).all() for v in model.trainable_variables)),
        "first_batch_error": first_batch_error,
        "first_batch_kept_weights": all(np.array_equal(value, np.array(v.value))
                                        for value, v in zip(weights, model.state_variables()))}
    keras.distribution.set_distribution(None)
    flop_count, timing = benchmark_path(config, one_device)
    results = {"devices": len(jax.devices()), "shard_shapes": [list(s.data.shape) for s in sharded.addressable_shards],
               "indivisible_batch": odd, "indivisible_error": indivisible_error,
               "indivisible_fit_error": indivisible_fit_error, "indivisible_generator": indivisible_generator,
               "flops": flop_count,
               "timing": timing, "tensorflow_imported": sys.modules.get("tensorflow") is not None,
               "seconds": {**seconds, "total": time.perf_counter() - started}}
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    if keras.backend.backend() != "jax":
        raise SystemExit(f"Run with KERAS_BACKEND=jax. Received: {keras.backend.backend()}")
    main(sys.argv[1], ExperimentConfig.from_dict(json.loads(sys.argv[2])))
