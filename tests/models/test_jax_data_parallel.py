"""SAGAN on Keras's JAX backend over two CPU devices through `keras.distribution.DataParallel` (the `jax_trained`
child of tests/conftest.py): every replicated variable identical on both devices, the same training as on one
device, the global batch split between them, and a batch they do not divide refused."""

import numpy as np


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


def test_two_devices_train_as_one_device_does(jax_trained):
    """One program over the global batch: the same noise, batch-norm statistics of the whole batch, gradients of
    the global loss; only the order of float32 sums differs."""
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
