"""SAGAN under MirroredStrategy on two logical CPU devices: replicas that agree (also with the small-data options),
and per-replica XLA."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.models import augment
from sagan_tf.models import SAGAN, Discriminator, Generator
from sagan_tf.models import gan as gan_module
from tests.tiny import tiny_model


def make_gan(cfg, model_class=SAGAN, seed=3, sgd=False, **compile_kwargs):
    """A SAGAN with Adam (TTUR), or plain SGD, whose updates are proportional to the gradients: Adam's normalized
    update turns rounding differences of near-zero gradients into steps of the learning rate's size."""
    keras.utils.set_random_seed(seed)
    model = model_class(Generator(cfg), Discriminator(cfg), cfg.latent_dim, cfg.num_classes, ema_decay=0.9,
                        seed=seed)
    if sgd:
        optimizers = keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05)
    else:
        optimizers = (keras.optimizers.Adam(2e-3, beta_1=0.0, beta_2=0.9),
                      keras.optimizers.Adam(4e-3, beta_1=0.0, beta_2=0.9))
    model.compile(g_optimizer=optimizers[0], d_optimizer=optimizers[1], **compile_kwargs)
    return model


def data(cfg, batch, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype("float32")
    images[batch // 2:] = 0.5 * images[batch // 2:] + 0.3  # the replicas' halves have different statistics
    labels = (np.arange(batch) % max(cfg.num_classes, 1)).astype("int32")
    return images, labels


def fit(model, images, labels, steps, batch):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True).repeat()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)


def replicated_state(model):
    """{path: [value on each replica]} of every variable a checkpoint holds, and the step and noise state."""
    variables = model.state_variables() + [model.seed_generator.state, model.g_optimizer.iterations,
                                           model.d_optimizer.iterations]
    return {variable.path: [np.array(v) for v in variable.value.values] for variable in variables}


def assert_replicas_agree(state, before):
    """Every replicated variable has one value on both replicas, and the batch-norm statistics of both kinds moved
    (so that the comparison is not trivially true)."""
    assert len(state) > 100
    differing = [path for path, (first, second) in state.items() if not np.array_equal(first, second)]
    assert differing == []
    moved = [path for path in state if "moving_" in path and not np.allclose(state[path][0], before[path][0])]
    assert len(moved) >= 6 and any("output_bn" in path for path in moved)


@pytest.mark.parametrize("num_classes, synchronized", [
    (4, False),   # conditional batch norm in the blocks, plain batch norm before the output
    (0, True),    # plain batch norm only, synchronized
    # Slow (~45 s each on 2 cores): the two fast cases above already reach both batch-norm kinds and both modes.
    pytest.param(0, False, marks=pytest.mark.slow),
    pytest.param(4, True, marks=pytest.mark.slow),
])  # per-replica XLA: test_mirrored_xla_training_equals_one_device
def test_every_replicated_variable_stays_identical(mirrored_strategy, num_classes, synchronized):
    cfg = tiny_model(num_classes=num_classes, synchronized_batch_norm=synchronized)
    images, labels = data(cfg, 8)
    with mirrored_strategy.scope():
        model = make_gan(cfg, jit_compile=False)
    before = replicated_state(model)
    fit(model, images, labels, steps=2, batch=8)
    assert_replicas_agree(replicated_state(model), before)


def test_small_data_state_stays_identical_and_each_replica_augments_its_own_slice(mirrored_strategy):
    cfg = tiny_model()
    options = dict(augment="ada", ada_interval=1, ada_kimg=0.01, lecam_weight=0.5, orthogonal_reg=1e-3,
                   fake_label_probabilities=(0.4, 0.3, 0.2, 0.1))
    with mirrored_strategy.scope():
        keras.utils.set_random_seed(3)
        model = SAGAN(Generator(cfg), Discriminator(cfg), cfg.latent_dim, cfg.num_classes, ema_decay=0.9, seed=3,
                      **options)
        model.compile(g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.0, beta_2=0.9),
                      d_optimizer=keras.optimizers.Adam(4e-3, beta_1=0.0, beta_2=0.9))
        model.ada.p.assign(0.5)
    # Each replica augments with its own slice of what one device draws for the global batch.
    drawn = mirrored_strategy.experimental_local_results(
        mirrored_strategy.run(lambda: model.draw_augmentation(2, cfg.image_size)))
    expected = augment.draw_parameters(4, cfg.image_size, model.augment_policy,
                                       keras.random.SeedGenerator(gan_module._derived_seed(3, "augment")), 0.5)
    for replica, params in enumerate(drawn):
        assert set(params) == {"color", "translation", "cutout", "gates"}
        for name, value in params.items():
            np.testing.assert_array_equal(value, np.asarray(expected[name])[2 * replica:2 * replica + 2], name)
    assert not np.array_equal(drawn[0]["color"], drawn[1]["color"])

    # Eager steps (no tracing): ADA's p and statistics, the LeCam anchors and every other variable agree.
    images, labels = data(cfg, 8)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8, drop_remainder=True).repeat()
    batches = iter(mirrored_strategy.experimental_distribute_dataset(dataset))
    before = replicated_state(model)
    for _ in range(2):
        mirrored_strategy.run(model.train_step, args=(next(batches),))
    state = replicated_state(model)
    state[model.augment_seed_generator.state.path] = [np.array(v) for v in
                                                       model.augment_seed_generator.state.value.values]
    assert {"ada_p", "ada_seen", "lecam_real", "lecam_updates"} <= set(state)
    assert_replicas_agree(state, before)
    assert state["ada_p"][0] != 0.5 and state["lecam_updates"][0] == 2 and state["lecam_fake"][0] != 0


def test_keras_batch_norm_would_have_drifted(mirrored_strategy):
    """The observation that made batch norm ours: Keras's layer keeps a moving mean per replica."""
    with mirrored_strategy.scope():
        layer = keras.layers.BatchNormalization()
        layer.build((None, 3))
    halves = [np.zeros((4, 3), "float32"), np.ones((4, 3), "float32")]
    inputs = mirrored_strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group]))
    tf.function(lambda t: mirrored_strategy.run(lambda part: layer(part, training=True), args=(t,)))(inputs)
    copies = [np.array(v) for v in layer.moving_mean.value.values]
    assert not np.array_equal(copies[0], copies[1])


class TiedNoiseSAGAN(SAGAN):
    """Every replica draws the noise one device draws for one replica's batch (no replica slice), so a mirrored step
    on two copies of a batch is exactly the one-device step on that batch, per-replica batch norm included."""

    def draw_noise(self, batch_size):
        z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        if not self.num_classes:
            return z, None
        return z, keras.random.randint((batch_size,), 0, self.num_classes, seed=self.seed_generator, dtype="int32")


def smallest_model(**overrides):
    """The smallest model: 8x8 images, one block in G and in D, no attention (its XLA compilation is the cost of a
    per-replica XLA step here)."""
    values = dict(image_size=8, g_channels=(8, 4), d_channels=(8,), d_downsample=(True,), g_attention_resolutions=(),
                  d_attention_resolutions=())
    return dataclasses.replace(tiny_model(), **values, **overrides)


def eager_step(model, images, labels, strategy=None):
    """One train step run eagerly (no tracing of Keras's train function): on one device, or on each replica of
    `strategy` with its slice of the batch."""
    if strategy is None:
        model.train_step((tf.constant(images), tf.constant(labels)))
        return
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images), drop_remainder=True)
    strategy.run(model.train_step, args=(next(iter(strategy.experimental_distribute_dataset(dataset))),))


def assert_same_networks(single, mirrored, moved_from):
    """G, D and the EMA generator of `mirrored` equal those of `single` (rtol 1e-4), and D moved from `moved_from`
    (D's weights before the step) by far more than that."""
    for name in ("generator", "discriminator", "ema_generator"):
        for expected, actual, variable in zip(getattr(single, name).get_weights(),
                                              getattr(mirrored, name).get_weights(),
                                              getattr(single, name).weights):
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6, err_msg=f"{name} {variable.path}")
    moved = [np.abs(after - before).max() for after, before in zip(single.discriminator.get_weights(), moved_from)]
    assert max(moved) > 1e-2


# The fast siblings of the slow tests below and of test_gan.py::test_two_replicas_equal_one_device_with_plain_sgd:
# one eager step each, checked against one device.
@pytest.mark.parametrize("per_replica_xla", [False, True], ids=["synchronized_batch_norm", "per_replica_xla"])
def test_one_step_on_two_replicas_equals_one_device(mirrored_strategy, per_replica_xla):
    if per_replica_xla:
        # Per-replica batch norm: each replica gets the same 4 images and noise, so the global batch of 8 is two
        # copies of the one-device batch.
        cfg, model_class = smallest_model(), TiedNoiseSAGAN
        images, labels = data(cfg, 4)
        mirrored_images, mirrored_labels = np.concatenate([images, images]), np.concatenate([labels, labels])
    else:
        # Synchronized batch norm: the replicas' halves (of different statistics) are normalized as one batch, and
        # the noise one device draws for the batch is split between them.
        cfg, model_class = smallest_model(synchronized_batch_norm=True), SAGAN
        images, labels = data(cfg, 8)
        mirrored_images, mirrored_labels = images, labels
    single = make_gan(cfg, model_class, sgd=True, jit_compile=False)
    with mirrored_strategy.scope():
        mirrored = make_gan(cfg, model_class, sgd=True, jit_compile=per_replica_xla)
    assert mirrored.replica_jit_compile == per_replica_xla and not mirrored.jit_compile
    mirrored.set_weights(single.get_weights())
    before = single.discriminator.get_weights()
    eager_step(single, images, labels)
    eager_step(mirrored, mirrored_images, mirrored_labels, mirrored_strategy)
    assert int(mirrored.g_optimizer.iterations.numpy()) == 1
    assert_same_networks(single, mirrored, before)


# Slow (~80 s on 2 cores): per-replica XLA compiles the step for each replica. The default run keeps one eager step of
# it on the smallest model: test_one_step_on_two_replicas_equals_one_device[per_replica_xla].
@pytest.mark.slow
def test_mirrored_xla_training_equals_one_device(mirrored_strategy):
    cfg = tiny_model()
    images, labels = data(cfg, 4)
    single = make_gan(cfg, TiedNoiseSAGAN, sgd=True, jit_compile=False)
    with mirrored_strategy.scope():
        mirrored = make_gan(cfg, TiedNoiseSAGAN, sgd=True, jit_compile=True)
    assert mirrored.replica_jit_compile and not mirrored.jit_compile  # Keras's own XLA cannot span two devices
    mirrored.set_weights(single.get_weights())
    fit(single, images, labels, steps=3, batch=4)
    # Each replica gets the same 4 images: the global batch of 8 is two copies of them.
    fit(mirrored, np.concatenate([images, images]), np.concatenate([labels, labels]), steps=3, batch=8)
    for name in ("generator", "discriminator", "ema_generator"):
        for expected, actual, variable in zip(getattr(single, name).get_weights(),
                                              getattr(mirrored, name).get_weights(),
                                              getattr(single, name).weights):
            np.testing.assert_allclose(actual, expected, rtol=2e-4, atol=2e-5, err_msg=f"{name} {variable.path}")
    assert int(mirrored.g_optimizer.iterations.numpy()) == 3
    # One more step, with replicas fed images of different statistics: they still agree under XLA.
    before = replicated_state(mirrored)
    fit(mirrored, *data(cfg, 8), steps=1, batch=8)
    assert_replicas_agree(replicated_state(mirrored), before)
    fresh = make_gan(cfg, TiedNoiseSAGAN, sgd=True)
    assert not np.allclose(fresh.discriminator.get_weights()[0], single.discriminator.get_weights()[0])


@pytest.mark.slow  # ~70 s on 2 cores; fast: test_one_step_on_two_replicas_equals_one_device[synchronized...]
def test_synchronized_batch_norm_trains_without_per_replica_xla(mirrored_strategy, monkeypatch):
    cfg = tiny_model(synchronized_batch_norm=True)
    with mirrored_strategy.scope():
        with pytest.raises(ValueError, match=r"XLA \(jit_compile=True, --jit_compile\) cannot compile a train step "
                                             "with synchronized batch norm over 2 replicas"):
            make_gan(cfg, jit_compile=True)
        monkeypatch.setattr(gan_module, "default_jit_compile", lambda: True)  # "auto" as with GPUs
        model = make_gan(cfg, sgd=True)
    assert not model.replica_jit_compile and not model.jit_compile
    assert make_gan(cfg, jit_compile=True).jit_compile  # on one device Keras compiles the whole step
    # It trains, and with the global batch's statistics: two replicas fed halves of different statistics take the
    # steps one device takes on the whole batch (the noise is drawn for the global batch and sliced).
    single = make_gan(cfg, sgd=True, jit_compile=False)
    model.set_weights(single.get_weights())
    images, labels = data(cfg, 8)
    before = replicated_state(model)
    fit(single, images, labels, steps=2, batch=8)
    fit(model, images, labels, steps=2, batch=8)
    assert int(model.g_optimizer.iterations.numpy()) == 2
    assert_replicas_agree(replicated_state(model), before)
    for name in ("generator", "discriminator", "ema_generator"):
        for expected, actual, variable in zip(getattr(single, name).get_weights(),
                                              getattr(model, name).get_weights(),
                                              getattr(single, name).weights):
            np.testing.assert_allclose(actual, expected, rtol=2e-4, atol=2e-5, err_msg=f"{name} {variable.path}")
    first_kernel = model.generator.trainable_variables[0]
    assert np.abs(np.asarray(first_kernel) - before[first_kernel.path][0]).max() > 1e-3  # the weights moved


def test_the_xla_default_is_on_with_gpus_and_off_on_cpu(monkeypatch):
    devices = {"GPU": [], "TPU": []}
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: devices.get(kind, []))
    assert gan_module.default_jit_compile() is False
    for count in (1, 2):
        devices["GPU"] = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(count)]
        assert gan_module.default_jit_compile() is True
