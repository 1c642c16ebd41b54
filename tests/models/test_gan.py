"""The SAGAN training model: noise, EMA, d_steps, distribution equivalence, precision and XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import SpectralNormalization
from sagan_tf.models import SAGAN, Discriminator, Generator
from tests.tiny import tiny_model


def make_gan(cfg=None, seed=0, d_steps=1, ema_decay=0.9, lr=0.05, optimizer="sgd", loss="hinge", ema_start=0,
             **compile_kwargs):
    cfg = cfg or tiny_model()
    keras.utils.set_random_seed(seed)
    gan = SAGAN(Generator(cfg), Discriminator(cfg), cfg.latent_dim, cfg.num_classes, d_steps=d_steps,
                ema_decay=ema_decay, seed=seed, ema_start=ema_start)
    make = (lambda: keras.optimizers.SGD(lr)) if optimizer == "sgd" else (
        lambda: keras.optimizers.Adam(lr, beta_1=0.0, beta_2=0.9))
    gan.compile(g_optimizer=make(), d_optimizer=make(), loss=loss, **compile_kwargs)
    return gan


def real_data(cfg, batch, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, size=(batch, cfg.image_size, cfg.image_size, 3)).astype("float32")
    labels = (np.arange(batch) % max(cfg.num_classes, 1)).astype("int32")
    return images, labels


def snapshot(model):
    return [np.array(w) for w in model.get_weights()]


def test_one_step_updates_both_networks_with_the_logged_hinge_losses():
    cfg = tiny_model()
    gan = make_gan(cfg, lr=0.0)  # lr 0: the logged losses can be recomputed from unchanged weights
    images, labels = real_data(cfg, 4)
    seed_state = np.array(gan.seed_generator.state)
    generator_state = gan.generator.get_weights()
    logs = gan.train_on_batch(images, labels, return_dict=True)
    # Replay the discriminator step: its noise from the recorded seed state, its generator state (power-iteration
    # vectors) from before the step.
    gan.seed_generator.state.assign(seed_state)
    gan.generator.set_weights(generator_state)
    z, fake_labels = gan.draw_noise(4)
    # The generator ran once in training mode (BN batch statistics) to make the discriminator's fakes.
    fake = gan.generator(z, fake_labels, training=True)
    real_logits = np.array(gan.discriminator(images, labels, training=False))
    fake_logits = np.array(gan.discriminator(fake, fake_labels, training=False))
    expected_d = np.mean(np.maximum(0, 1 - real_logits) + np.maximum(0, 1 + fake_logits))
    np.testing.assert_allclose(logs["d_loss"], expected_d, rtol=1e-4)
    np.testing.assert_allclose(logs["d_real"], real_logits.mean(), rtol=1e-4, atol=1e-5)
    assert {"d_loss", "g_loss", "d_real", "d_fake", "gamma_g_attention8", "gamma_d_attention8"} <= set(logs)
    assert int(gan.d_optimizer.iterations) == 1 and int(gan.g_optimizer.iterations) == 1


def test_d_steps_and_batch_splitting():
    cfg = tiny_model()
    gan = make_gan(cfg, d_steps=2)
    images, labels = real_data(cfg, 4)
    gan.train_on_batch(images, labels)
    assert int(gan.d_optimizer.iterations) == 2 and int(gan.g_optimizer.iterations) == 1
    with pytest.raises(ValueError, match="multiple of d_steps"):
        gan.train_on_batch(images[:3], labels[:3])


def test_ema_generator_averages_weights_and_copies_power_iteration_vectors():
    cfg = tiny_model()
    gan = make_gan(cfg, ema_decay=0.9, lr=0.1)
    before_ema = snapshot(gan.ema_generator)
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in before_ema]),
                                  np.concatenate([w.ravel() for w in snapshot(gan.generator)]))
    images, labels = real_data(cfg, 4)
    gan.train_on_batch(images, labels)
    after = snapshot(gan.generator)
    sn_vectors = {id(layer.u) for layer in gan.generator._flatten_layers()
                  if isinstance(layer, SpectralNormalization)}
    changed = 0
    for old, new, ema, weight in zip(before_ema, after, snapshot(gan.ema_generator), gan.generator.weights):
        expected = new if id(weight) in sn_vectors else 0.9 * old + 0.1 * new
        np.testing.assert_allclose(ema, expected, rtol=1e-5, atol=1e-6, err_msg=weight.path)
        changed += not np.allclose(old, new)
    assert changed > 10
    # Sampling uses the EMA generator.
    z = np.random.default_rng(0).normal(size=(2, cfg.latent_dim)).astype("float32")
    np.testing.assert_allclose(gan((z, labels[:2])), gan.ema_generator(z, labels[:2], training=False))
    assert make_gan(cfg, ema_decay=None).ema_generator is None


def test_ema_copies_the_generator_through_ema_start_then_averages():
    cfg = tiny_model()
    gan = make_gan(cfg, ema_decay=0.9, lr=0.1, ema_start=2)
    images, labels = real_data(cfg, 4)
    trainable = [i for i, w in enumerate(gan.generator.weights) if w.trainable]
    for step in (1, 2):
        gan.train_on_batch(images, labels)
        for ema, new in zip(snapshot(gan.ema_generator), snapshot(gan.generator)):
            np.testing.assert_array_equal(ema, new, err_msg=f"step {step}")
    before = snapshot(gan.ema_generator)
    gan.train_on_batch(images, labels)  # step 3: the first averaged update
    after, ema = snapshot(gan.generator), snapshot(gan.ema_generator)
    for i in trainable:
        np.testing.assert_allclose(ema[i], 0.9 * before[i] + 0.1 * after[i], rtol=1e-5, atol=1e-6)
    assert not np.allclose(ema[trainable[0]], after[trainable[0]])
    assert [float(gan.ema_decay_at(step)) for step in (0, 2, 3)] == [0.0, 0.0, pytest.approx(0.9)]
    # A negative ema_start is refused by TrainingConfig (tests/config/test_config.py), which the model trusts.


def test_logged_gradient_norms_are_the_norms_of_the_updates():
    # With plain SGD an update is -lr * gradient: the norm of each network's weight change over lr is the norm of
    # its gradient. Each network's trainable weights change only in its own update.
    cfg = tiny_model()
    lr = 1e-3
    gan = make_gan(cfg, lr=lr)
    images, labels = real_data(cfg, 4)
    d_before = [np.array(w) for w in gan.discriminator.trainable_weights]
    g_before = [np.array(w) for w in gan.generator.trainable_weights]
    logs = gan.train_on_batch(images, labels, return_dict=True)

    def update_norm(before, network):
        return np.sqrt(sum(np.sum((np.array(w, np.float64) - b) ** 2) for w, b in zip(network.trainable_weights,
                                                                                        before))) / lr

    np.testing.assert_allclose(logs["d_grad_norm"], update_norm(d_before, gan.discriminator), rtol=2e-3)
    np.testing.assert_allclose(logs["g_grad_norm"], update_norm(g_before, gan.generator), rtol=2e-3)
    assert logs["d_grad_norm"] > 0 and logs["g_grad_norm"] > 0 and logs["finite"] == 1.0


def test_the_finite_flag_watches_the_losses_and_state_is_finite_the_weights():
    cfg = tiny_model()
    images, labels = real_data(cfg, 4)
    gan = make_gan(cfg)
    assert gan.train_on_batch(images, labels, return_dict=True)["finite"] == 1.0 and gan.state_is_finite()
    weight = gan.generator.trainable_weights[0]
    weight.assign(np.full(weight.shape, np.nan, "float32"))
    assert gan.train_on_batch(images, labels, return_dict=True)["finite"] == 0.0 and not gan.state_is_finite()
    # An infinite learning rate makes finite losses but infinite weights; the generator's gradient through the
    # diverged discriminator shows it in the same step.
    gan = make_gan(cfg, lr=float("inf"))
    logs = gan.train_on_batch(images, labels, return_dict=True)
    assert np.isfinite(logs["d_loss"]) and not np.isfinite(logs["g_grad_norm"]) and logs["finite"] == 0.0
    assert not gan.state_is_finite()


def test_reseeding_the_noise_changes_the_stream():
    gan = make_gan()
    start = np.array(gan.seed_generator.state)
    first = np.array(gan.draw_noise(3)[0])
    gan.seed_generator.state.assign(start)
    np.testing.assert_array_equal(np.array(gan.draw_noise(3)[0]), first)
    gan.seed_generator.state.assign(start)
    gan.reseed_noise(12345)
    assert not np.allclose(np.array(gan.draw_noise(3)[0]), first)


def test_noise_differs_across_replicas_and_matches_one_device(mirrored_strategy):
    cfg = tiny_model()
    with mirrored_strategy.scope():
        gan = make_gan(cfg)
    start = np.array(gan.seed_generator.state)

    @tf.function
    def draw():
        return mirrored_strategy.run(lambda: gan.draw_noise(3))

    z, labels = draw()
    z0, z1 = (np.array(t) for t in mirrored_strategy.experimental_local_results(z))
    labels = np.concatenate([np.array(t) for t in mirrored_strategy.experimental_local_results(labels)])
    assert not np.allclose(z0, z1)
    # Together the two slices are the noise one device draws for the global batch from the same seed.
    gan.seed_generator.state.assign(start)
    z_single, labels_single = gan.draw_noise(6)
    np.testing.assert_array_equal(np.concatenate([z0, z1]), np.array(z_single))
    np.testing.assert_array_equal(labels, np.array(labels_single))
    assert labels.min() >= 0 and labels.max() < cfg.num_classes


def train_one_step(gan, images, labels):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images), drop_remainder=True)
    gan.fit(dataset, epochs=1, verbose=0)


@pytest.mark.slow  # fast sibling: test_replicas.py::test_one_step_on_two_replicas_equals_one_device
def test_two_replicas_equal_one_device_with_plain_sgd(mirrored_strategy):
    # Synchronized batch norm: with per-replica statistics the two runs would legitimately differ.
    cfg = tiny_model(synchronized_batch_norm=True)
    images, labels = real_data(cfg, 8)
    single = make_gan(cfg, seed=3, lr=0.05)
    with mirrored_strategy.scope():
        mirrored = make_gan(cfg, seed=3, lr=0.05)
    mirrored.set_weights(single.get_weights())
    train_one_step(single, images, labels)
    train_one_step(mirrored, images, labels)
    for name, a, b in [("G", single.generator, mirrored.generator), ("D", single.discriminator,
                                                                      mirrored.discriminator),
                       ("EMA", single.ema_generator, mirrored.ema_generator)]:
        for wa, wb, var in zip(a.get_weights(), b.get_weights(), a.weights):
            np.testing.assert_allclose(wb, wa, rtol=2e-4, atol=2e-5, err_msg=f"{name} {var.path}")
    # And training did move the weights, so the comparison is not trivially true.
    fresh = make_gan(cfg, seed=3, lr=0.05)
    assert not np.allclose(fresh.discriminator.get_weights()[0], single.discriminator.get_weights()[0])


# Each loss's step with XLA would cost an XLA compilation (~30 s on 2 cores) per loss; the losses are independent
# of it, so one loss compiles with XLA and the other runs without.
@pytest.mark.parametrize("loss, jit_compile", [("hinge", True), ("non_saturating", False),
                                               pytest.param("non_saturating", True, marks=pytest.mark.slow)])
def test_fit_with_and_without_xla(loss, jit_compile):
    cfg = tiny_model()
    gan = make_gan(cfg, optimizer="adam", lr=1e-3, loss=loss, jit_compile=jit_compile)
    images, labels = real_data(cfg, 8)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4, drop_remainder=True).repeat()
    history = gan.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all() and np.isfinite(history.history["g_loss"]).all()


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fit_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    cfg = tiny_model()
    gan = make_gan(cfg, optimizer="adam", lr=1e-3)
    if policy == "mixed_float16":
        assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    images, labels = real_data(cfg, 4)
    for _ in range(4):
        logs = gan.train_on_batch(images, labels, return_dict=True)
        # A float16 loss-scale overflow (the scale starts at 2**15) is a skipped update, not a divergence.
        assert logs["finite"] == 1.0
    assert np.isfinite(logs["d_loss"]) and np.isfinite(logs["g_loss"])
    assert all(w.dtype == "float32" for w in gan.generator.weights)
    # Gradient norms are of the unscaled loss, means of the steps whose scaled gradients did not overflow.
    assert 0 < logs["g_grad_norm"] < 1e3 and 0 < logs["d_grad_norm"] < 1e3
    assert gan.state_is_finite()


def test_unconditional_gan_trains_on_images_alone():
    cfg = tiny_model(num_classes=0)
    gan = make_gan(cfg)
    images, _ = real_data(cfg, 4)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4)
    history = gan.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all()


def test_constructor_validation():
    cfg = tiny_model()
    g, d = Generator(cfg), Discriminator(cfg)
    with pytest.raises(ValueError, match="latent_dim"):
        SAGAN(g, d, latent_dim=cfg.latent_dim + 1, num_classes=cfg.num_classes)
    # d_steps, ema_decay and the other training settings are TrainingConfig's to refuse (tests/config/test_config.py).
