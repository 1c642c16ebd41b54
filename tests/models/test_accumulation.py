"""Gradient accumulation (`grad_accumulation`): one update from N micro-batches equals the full batch's (batch norm
frozen), one device with N micro-batches trains like N replicas (batch norm on), XLA and mixed precision, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import BatchNorm, SpectralNormalization, frozen_power_iteration
from sagan_tf.models import SAGAN, Discriminator, Generator
from sagan_tf.models import accumulation
from tests.tiny import tiny_model

SMALL_DATA = dict(augment="ada", lecam_weight=0.5, orthogonal_reg=1e-3, fake_label_probabilities=(0.4, 0.3, 0.2, 0.1))


def make_gan(cfg, grad_accumulation, optimizer="adam", frozen_batch_norm=False, d_steps=1, seed=3, jit_compile=False,
             **options):
    keras.utils.set_random_seed(seed)
    model = SAGAN(Generator(cfg), Discriminator(cfg), cfg.latent_dim, cfg.num_classes, d_steps=d_steps,
                  ema_decay=0.9, seed=seed, grad_accumulation=grad_accumulation, **options)
    if frozen_batch_norm:
        # Inference-mode batch norm (the moving statistics) sees the same statistics in any micro-batch.
        for network in (model.generator, model.discriminator):
            for layer in network._flatten_layers():
                if isinstance(layer, BatchNorm):
                    layer.trainable = False
    if optimizer == "adam":
        # epsilon 1e-3: Adam's update of a near-zero gradient stays proportional to it, instead of turning rounding
        # differences into steps of the learning rate's size.
        optimizers = [keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9, epsilon=1e-3) for lr in (2e-3, 4e-3)]
    else:
        optimizers = [keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05)]
    model.compile(g_optimizer=optimizers[0], d_optimizer=optimizers[1], jit_compile=jit_compile)
    return model


def data(cfg, batch, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype("float32")
    images[batch // 2:] = 0.5 * images[batch // 2:] + 0.3  # the halves have different statistics
    labels = (np.arange(batch) % max(cfg.num_classes, 1)).astype("int32")
    return images, labels


def full_state(model):
    """[(path, value)] of every float variable a checkpoint holds (networks, EMA, optimizer slots, ADA, LeCam) and
    the step counters, in a fixed order (paths differ between models: "generator_1/...")."""
    variables = model.state_variables() + [model.g_optimizer.iterations, model.d_optimizer.iterations]
    return [(variable.path, np.array(variable)) for variable in variables]


def assert_same_state(actual, expected, rtol=1e-4, atol=1e-6):
    assert len(actual) == len(expected)
    for (_, value), (path, reference) in zip(actual, expected):
        np.testing.assert_allclose(value, reference, rtol=rtol, atol=atol, err_msg=path)


def moved(after, before):
    """The paths of `after` whose values differ from `before`'s."""
    return {path for (path, value), (_, old) in zip(after, before) if not np.allclose(value, old)}


def test_micro_batches_and_the_summed_outputs():
    values = {"x": tf.reshape(tf.range(24.0), (8, 3)), "none": None}
    np.testing.assert_array_equal(accumulation.micro_batch(values, 2, 4)["x"], np.arange(24.0).reshape(8, 3)[4:6])
    assert accumulation.micro_batch(values, 1, 4)["none"] is None
    moving = keras.Variable(np.float32(1.0))
    calls = []

    def compute(part, first):
        calls.append(first)
        moving.assign(0.5 * moving + 0.5 * tf.reduce_mean(part["x"]))  # a batch norm's moving-average update
        return tf.reduce_sum(part["x"], axis=0), None

    total, none = tf.function(lambda: accumulation.accumulate(compute, values, 4, [moving]))()
    np.testing.assert_allclose(total, np.arange(24.0).reshape(8, 3).sum(axis=0))
    assert none is None and calls == [True, False]  # the first micro-batch on its own, then one traced loop body
    # One update with the micro-batches' mean statistic (11.5), not four updates in a row.
    np.testing.assert_allclose(moving.numpy(), 0.5 * 1.0 + 0.5 * 11.5, rtol=1e-6)


def test_frozen_power_iteration_normalizes_with_the_stored_vector():
    layer = SpectralNormalization(keras.layers.Dense(3))
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    layer(x, training=True)
    u = np.array(layer.u)
    with frozen_power_iteration([layer]):
        frozen = np.array(layer(x, training=True))
    np.testing.assert_array_equal(np.array(layer.u), u)
    np.testing.assert_allclose(frozen, np.array(layer(x, training=False)), rtol=1e-6)
    assert not layer.power_iteration_frozen
    layer(x, training=True)
    assert not np.array_equal(np.array(layer.u), u)


def test_one_update_of_four_micro_batches_equals_the_full_batch():
    # Batch norm frozen, so that micro-batches see the statistics of the full batch; conditional (the class
    # embeddings' sparse gradients), two discriminator steps, and the small-data options: ADA (p = 0.5, its
    # statistics), LeCam (anchors from all micro-batches' logits) and orthogonal regularization (its share).
    cfg = tiny_model()
    images, labels = data(cfg, 16)
    models = {n: make_gan(cfg, n, frozen_batch_norm=True, d_steps=2, **SMALL_DATA) for n in (1, 4)}
    models[4].set_weights(models[1].get_weights())
    before = full_state(models[1])
    for model in models.values():
        model.ada.p.assign(0.5)
        model.train_on_batch(images, labels)
    full, accumulated = full_state(models[1]), full_state(models[4])
    assert_same_state(accumulated, full)
    assert int(models[4].g_optimizer.iterations) == 1 and int(models[4].d_optimizer.iterations) == 2
    # Not trivially true: every network moved, the spectral-norm vectors advanced, the small-data state changed.
    changed = moved(full, before)
    assert {"lecam_real", "lecam_fake", "ada_seen", "ada_signs"} <= changed
    assert any(path.endswith("/u") and path.startswith("generator") for path in changed)
    assert any(path.endswith("/u") and path.startswith("discriminator") for path in changed)
    assert sum(path.endswith("kernel") for path in changed) >= 20


# Both cases are slow (~100 s without XLA on 2 cores, ~215 s with per-replica XLA): the default run keeps accumulation
# on one device (test_one_update_of_four_micro_batches_equals_the_full_batch) and replicas in test_replicas.py.
@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_micro_batches_on_one_device_train_like_replicas_and_accumulate_under_mirrored(mirrored_strategy,
                                                                                       jit_compile):
    # Batch norm on: each micro-batch normalizes with its own statistics, and the moving statistics take one
    # update per optimizer update with the micro-batches' mean statistics, the rule that merges replicas. So one
    # device with 4 micro-batches of 2 equals two replicas with 2 micro-batches each (with per-replica XLA or not),
    # micro-batch k of replica r being micro-batch 2r + k of the one device (noise included).
    cfg = tiny_model()
    images, labels = data(cfg, 8)
    single = make_gan(cfg, 4, optimizer="sgd")
    with mirrored_strategy.scope():
        mirrored = make_gan(cfg, 2, optimizer="sgd", jit_compile=jit_compile)
    assert mirrored.replica_jit_compile == jit_compile
    mirrored.set_weights(single.get_weights())
    before = full_state(single)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8, drop_remainder=True).repeat()
    for model in (single, mirrored):
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    expected = full_state(single)
    assert_same_state(full_state(mirrored), expected, rtol=2e-4, atol=2e-5)
    replicas = {v.path: [np.array(copy) for copy in v.value.values] for v in mirrored.state_variables()}
    assert [path for path, (a, b) in replicas.items() if not np.array_equal(a, b)] == []
    assert len([path for path in moved(expected, before) if "moving_" in path]) >= 6
    # Synchronized batch norm all-reduces inside the forward pass, which the micro-batch loop cannot hold.
    with mirrored_strategy.scope(), pytest.raises(
            ValueError, match=r"grad_accumulation=2 \(--grad_accumulation\) cannot train synchronized batch norm on 2 "
            "replicas"):
        make_gan(tiny_model(synchronized_batch_norm=True), 2)


def test_accumulation_under_xla_and_mixed_bfloat16():
    # Against the same steps in float32 without XLA (eager), from the same weights and fed the same noise (XLA draws
    # other random numbers): SGD, so that the updates are proportional to the gradients. Micro-batches of 8 (batch
    # norm over 2 images leaves only rounding in the gradients before it).
    cfg = tiny_model()
    images, labels = data(cfg, 16)
    rng = np.random.default_rng(5)
    batches = [{"images": images, "labels": labels, "z": rng.standard_normal((2, 16, cfg.latent_dim)).astype("float32"),
                "fake_labels": rng.integers(0, cfg.num_classes, (2, 16)).astype("int32")} for _ in range(2)]
    reference = make_gan(cfg, 2, optimizer="sgd")
    before = full_state(reference)
    for batch in batches:
        reference.train_step({name: tf.constant(value) for name, value in batch.items()})
    expected = full_state(reference)

    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # conftest puts float32 back
    model = make_gan(cfg, 2, optimizer="sgd", jit_compile=True)
    assert model.jit_compile
    for batch in batches:
        logs = model.train_on_batch(batch, return_dict=True)
        assert logs["finite"] == 1.0
    assert 0 < logs["g_grad_norm"] < 1e3 and 0 < logs["d_grad_norm"] < 1e3
    assert int(model.g_optimizer.iterations) == 2 and model.state_is_finite()
    actual = [(path, value) for (path, _), (_, value) in zip(expected, full_state(model))]  # the reference's paths
    assert "generator/output_bn/moving_mean" in moved(actual, before)
    # Each network's update within bf16's rounding of float32's (measured: 0.11 of G's, relative L2); a compiled step
    # that averaged the micro-batches' gradients instead of summing them gave 0.74.
    for network in ("generator", "discriminator"):
        trained = [i for i, (path, _) in enumerate(before) if path.startswith(network + "/") and
                   "moving_" not in path and not path.endswith("/u")]
        update = np.concatenate([(expected[i][1] - before[i][1]).ravel() for i in trained])
        error = np.concatenate([(actual[i][1] - expected[i][1]).ravel() for i in trained])
        assert np.linalg.norm(error) < 0.25 * np.linalg.norm(update), (network, np.linalg.norm(error) /
                                                                         np.linalg.norm(update))


def test_accumulation_errors():
    cfg = tiny_model()
    # A grad_accumulation that is not an integer >= 1 is TrainingConfig's to refuse (tests/config/test_config.py).
    model = make_gan(cfg, 3)
    assert model.get_config()["grad_accumulation"] == 3
    images, labels = data(cfg, 4)
    with pytest.raises(ValueError, match=r"grad_accumulation=3 splits each update's per-replica batch into that many "
                                         r"equal micro-batches, but the per-replica batch of an update is 4"):
        model.train_on_batch(images, labels)
