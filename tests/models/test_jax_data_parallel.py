"""SAGAN on Keras's JAX backend over two CPU devices through `keras.distribution.DataParallel` (the `jax_trained`
child of tests/conftest.py): every replicated variable identical on both devices, the same training as on one
device normalizing each half of a batch on its own, batch norm as TensorFlow's MirroredStrategy with two replicas,
the global batch split between them, and a batch they do not divide refused."""

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import BatchNorm, ConditionalBatchNorm, average_across_replicas, moving_statistics


def _groups(directory):
    """{"one" | "several" | "copies": {variable path: array}} from the child's state.npz."""
    state = np.load(directory / "state.npz")
    paths = list(state["paths"])
    return {group: {paths[int(key.split("/", 1)[1])]: state[key] for key in state.files
                    if key.startswith(group + "/")} for group in ("one", "several", "copies")}


def test_every_replicated_variable_is_identical_on_both_devices(jax_trained):
    _, directory, results = jax_trained
    assert results["devices"] == 2
    copies = _groups(directory)["copies"]
    assert len(copies) > 100
    assert all(stacked.shape[0] == 2 for stacked in copies.values())
    assert [path for path, stacked in copies.items() if not np.array_equal(stacked[0], stacked[1])] == []


def test_two_devices_train_as_one_device_normalizing_each_half(jax_trained):
    """One program over the global batch: the same noise and gradients of the global loss as one device whose batch
    norms normalize each half of a batch on its own (each device's piece); only the order of float32 sums differs."""
    _, directory, _ = jax_trained
    groups = _groups(directory)
    one, several = groups["one"], groups["several"]
    assert sorted(one) == sorted(several)
    largest = {path: float(np.abs(one[path] - several[path]).max()) for path in one}
    assert max(largest.values()) < 1e-5, sorted(largest.items(), key=lambda item: -item[1])[:5]
    moved = [path for path in one if "moving_mean" in path and np.abs(one[path]).max() > 1e-3]
    assert len(moved) >= 4  # batch-norm statistics were updated (by the data of both halves)


def test_the_global_batch_is_split_between_the_devices(jax_trained):
    config, _, results = jax_trained
    image = [config.model.image_size, config.model.image_size, 3]
    assert results["shard_shapes"] == [[config.training.batch_size // 2, *image]] * 2


def test_a_batch_the_devices_do_not_divide_is_a_clear_error(jax_trained):
    """Ours, not JAX's sharding error: the distribution, its device count, the batch and what to change; before
    training for arrays, and at the batch for a generator, keeping the state of the step that completed (Keras's
    JAX trainer detaches the variables' values while it trains)."""
    _, _, results = jax_trained
    odd = results["indivisible_batch"]
    expected = ("ValueError: Under DataParallel each batch is split over 2 devices, so every batch must be a "
                "multiple of 2")
    assert results["indivisible_error"].startswith(expected) and f"a batch of {odd} images" in results[
        "indivisible_error"], results["indivisible_error"]
    assert results["indivisible_fit_error"].startswith(expected) and f"batch_size={odd}" in results[
        "indivisible_fit_error"]
    generator = results["indivisible_generator"]
    assert generator["error"].startswith(expected) and f"a batch of {odd} images" in generator["error"]
    assert "drop_remainder=True" in generator["error"] and "Sharding" not in generator["error"]
    assert generator["iterations"][1] == generator["iterations"][0] + 1 and generator["finite"]
    # Refused at the first batch: every variable keeps its value (Keras had already detached them).
    assert generator["first_batch_error"].startswith(expected) and generator["first_batch_kept_weights"]


def _numpy_batch_norm(x, labels, gamma, beta, moving_mean, moving_variance, pieces, conditional):
    """(outputs, moving_mean, moving_variance) of one training call (momentum 0.5) that normalizes each of `pieces`
    equal pieces of `x` with its own statistics, the moving statistics taking the mean of the pieces'."""
    x, axes = x.astype(np.float64), (0, 1, 2)
    rows = (gamma[labels], beta[labels]) if conditional else (gamma[0], beta[0])
    gains, offsets = (np.reshape(row, (-1, 1, 1, 3)) if conditional else row for row in rows)
    means = [piece.mean(axis=axes) for piece in np.split(x, pieces)]
    variances = [piece.var(axis=axes) for piece in np.split(x, pieces)]
    normalized = np.concatenate([(piece - mean) / np.sqrt(variance + 1e-5)
                                 for piece, mean, variance in zip(np.split(x, pieces), means, variances)])
    return (normalized * gains + offsets, 0.5 * moving_mean + 0.5 * np.mean(means, axis=0),
            0.5 * moving_variance + 0.5 * np.mean(variances, axis=0))


def _mirrored_batch_norm(strategy, inputs, conditional, synchronized):
    """(outputs, moving_mean, moving_variance) of the same call on TensorFlow, each replica of `strategy` (two) on
    its half of the batch, the replicas' moving statistics averaged as `SAGAN`'s step does."""
    with strategy.scope():
        layer = (ConditionalBatchNorm(4, momentum=0.5, synchronized=synchronized) if conditional
                 else BatchNorm(momentum=0.5, synchronized=synchronized))
        layer.build(*((inputs["x"].shape, inputs["labels"].shape) if conditional else (inputs["x"].shape,)))
        layer.gamma.assign(inputs["gamma"] if conditional else inputs["gamma"][0])
        layer.beta.assign(inputs["beta"] if conditional else inputs["beta"][0])
        layer.moving_mean.assign(inputs["moving_mean"])
        layer.moving_variance.assign(inputs["moving_variance"])
    halves = list(zip(np.split(inputs["x"], 2), np.split(inputs["labels"], 2)))
    distributed = strategy.experimental_distribute_values_from_function(
        lambda context: tuple(tf.constant(t) for t in halves[context.replica_id_in_sync_group]))

    def replica_step(x, labels):
        outputs = layer(x, labels, training=True) if conditional else layer(x, training=True)
        average_across_replicas(moving_statistics(layer))
        return outputs

    outputs = strategy.experimental_local_results(
        tf.function(lambda t: strategy.run(replica_step, args=t))(distributed))
    copies = [[v.numpy() for v in variable.value.values] for variable in layer.moving_statistics]
    assert all(np.array_equal(*pair) for pair in copies)
    return np.concatenate([t.numpy() for t in outputs]), copies[0][0], copies[1][0]


@pytest.mark.parametrize("synchronized", [False, True], ids=["per_device", "synchronized"])
@pytest.mark.parametrize("conditional", [False, True], ids=["plain", "conditional"])
def test_batch_norm_on_two_devices_normalizes_as_mirrored_strategy(jax_trained, mirrored_strategy, conditional,
                                                                     synchronized):
    """JAX's DataParallel and TensorFlow's MirroredStrategy, two devices each, same weights and batch: each half
    normalized with its own statistics (the moving statistics taking their mean), or with synchronized batch norm
    the whole batch's."""
    _, directory, _ = jax_trained
    stored = np.load(directory / "batch_norm.npz")
    name = f"{'conditional' if conditional else 'plain'}/{'synchronized' if synchronized else 'per_device'}"
    on_jax = [stored[f"{name}/{key}"] for key in ("outputs", "moving_mean", "moving_variance")]
    inputs = {key: stored[key] for key in ("x", "labels", "gamma", "beta", "moving_mean", "moving_variance")}
    expected = _numpy_batch_norm(**inputs, pieces=1 if synchronized else 2, conditional=conditional)
    on_tensorflow = _mirrored_batch_norm(mirrored_strategy, inputs, conditional, synchronized)
    for jax_value, tensorflow_value, wanted in zip(on_jax, on_tensorflow, expected):
        np.testing.assert_allclose(jax_value, wanted, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(tensorflow_value, wanted, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(jax_value, tensorflow_value, rtol=1e-5, atol=1e-5)


def test_arrays_with_a_partial_last_batch_and_datasets_of_a_fixed_batch_are_checked_before_training(monkeypatch):
    """README "Training on JAX": `fit` refuses before training the last partial batch of arrays and a dataset
    batched with `drop_remainder=True` whose batch the devices do not divide; the rest reaches training. The check
    is plain Python over shapes: here with two devices' worth of shards, in this TensorFlow process."""
    from sagan_tf.models import jax_step

    monkeypatch.setattr(jax_step, "batch_shards", lambda: 2)
    images = np.zeros((9, 4, 4, 3), "float32")
    refused = "each batch is split over 2 devices, so every batch must be a multiple of 2 images. Received: "
    with pytest.raises(ValueError, match=refused + "9 images in batches of 4: the last batch holds 1"):
        jax_step.check_batches_divide((images, np.zeros(9, "int32")), 4)
    jax_step.check_batches_divide(images[:6], 4)  # the last batch holds 2
    jax_step.check_batches_divide(images, 4, steps_per_epoch=2)  # an epoch of two full batches: never the last
    with pytest.raises(ValueError, match=refused + r"batch_size=3"):
        jax_step.check_batches_divide(images[:6], 3)
    slices = tf.data.Dataset.from_tensor_slices((images, np.zeros(9, "int32")))
    with pytest.raises(ValueError, match=refused + r"a dataset of batches of 3\..*drop_remainder=True"):
        jax_step.check_batches_divide(slices.batch(3, drop_remainder=True), None)
    jax_step.check_batches_divide(slices.batch(4, drop_remainder=True), None)
    jax_step.check_batches_divide(slices.batch(3), None)  # batch size unknown until it comes: refused at the batch
    monkeypatch.setattr(jax_step, "batch_shards", lambda: 1)  # one device divides everything
    jax_step.check_batches_divide(slices.batch(3, drop_remainder=True), None)
    jax_step.check_batches_divide(images, 4)
