"""SAGAN's small-data options in the training step: augmentation the discriminator sees (DiffAugment, ADA), LeCam and
orthogonal regularization, data-frequency fake labels; their state in the checkpoint, resumed bit for bit.

The steps run eagerly (`train_step` called directly): no tracing, so these stay fast; `tests/models/test_replicas.py`
runs them under MirroredStrategy and `tests/training/test_train_lib.py` through `train_lib.run`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import callbacks
from sagan_tf.models import augment
from sagan_tf.run import checkpoint
from sagan_tf.serving import signatures as serving
from sagan_tf.models import SAGAN, Discriminator, Generator, build_sagan
from sagan_tf.models import gan as gan_module
from tests.tiny import tiny_config, tiny_model

ALL_ON = dict(augment="ada", ada_interval=2, ada_kimg=0.01, lecam_weight=0.5, orthogonal_reg=1e-3,
              fake_labels="data")
FREQUENCIES = (0.4, 0.3, 0.2, 0.1)


def batches(count, batch=4, seed=1):
    rng = np.random.default_rng(seed)
    return [(tf.constant(rng.uniform(-1, 1, (batch, 16, 16, 3)).astype("float32")),
             tf.constant((np.arange(batch) % 4).astype("int32"))) for _ in range(count)]


def full_state(model):
    """Every variable a resume must restore: networks, optimizers, the small-data state and both seed generators."""
    variables = model.state_variables() + [model.seed_generator.state, model.g_optimizer.iterations,
                                           model.d_optimizer.iterations]
    if model.augment_seed_generator is not None:
        variables.append(model.augment_seed_generator.state)
    return [(variable.path, np.array(variable)) for variable in variables]


def test_a_resumed_run_ends_bit_for_bit_where_the_straight_one_does(tmp_path):
    # Every option with state at once: ADA (p, its statistics, the augmentation RNG), LeCam (the anchors), and the
    # stateless ones (orthogonal regularization, data-frequency fake labels) in the same steps.
    config = tiny_config(**ALL_ON)
    data = batches(2)
    straight = build_sagan(config, seed=5, class_frequencies=FREQUENCIES)
    straight.ada.p.assign(0.5)  # augmentation at work from the first step (p moves from there)
    logs = straight.train_step(data[0])
    # The checkpoint falls in the middle of ADA's interval of 2 steps: its statistics must be restored too.
    path = checkpoint.gan_checkpoint(straight).write(str(tmp_path / "ckpt-1"))
    assert {"augment_seed", "ada", "lecam"} <= checkpoint.saved_names(path)
    assert float(straight.ada.seen.numpy()) == 4
    assert {"lecam_reg", "ortho_reg"} <= set(logs) and float(logs["finite"]) == 1.0 and float(logs["ortho_reg"]) > 0
    # After one update the LeCam anchors are that update's mean logits.
    anchors = [float(a) for a in straight.lecam.anchors()]
    assert anchors == pytest.approx([float(logs["d_real"]), float(logs["d_fake"])], abs=1e-5)
    straight.train_step(data[1])
    assert float(straight.ada.p.numpy()) != 0.5  # adjusted at step 2, from the statistics of steps 1 and 2

    # Another seed and other weights: whatever the resumed run ends with comes from the checkpoint.
    keras.utils.set_random_seed(99)
    resumed = build_sagan(config, seed=6, class_frequencies=FREQUENCIES)
    checkpoint.gan_checkpoint(resumed).read(path).assert_existing_objects_matched()
    resumed.train_step(data[1])
    expected, actual = full_state(straight), full_state(resumed)
    assert len(actual) == len(expected) > 100  # in one order (the paths differ: Keras numbers generator_1, ...)
    for (_, value), (path, reference) in zip(actual, expected):
        np.testing.assert_array_equal(value, reference, err_msg=path)


def test_the_papers_recipe_keeps_its_checkpoint_layout_and_noise(tmp_path):
    model = build_sagan(tiny_config(), seed=3)
    assert model.augment_seed_generator is None and model.ada is None and model.lecam is None
    path = checkpoint.gan_checkpoint(model).write(str(tmp_path / "ckpt"))
    assert checkpoint.saved_names(path) == {"generator", "discriminator", "ema_generator", "g_optimizer",
                                            "d_optimizer", "noise_seed", "_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert [tracker.name for tracker in model.metrics] == ["d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm",
                                                           "g_grad_norm"]
    # Uniform fake labels are drawn exactly as before the option existed.
    seed = keras.random.SeedGenerator(3)
    z = keras.random.normal((6, 8), seed=seed)
    labels = keras.random.randint((6,), 0, 4, seed=seed, dtype="int32")
    drawn_z, drawn_labels = model.draw_noise(6)
    np.testing.assert_array_equal(drawn_z, z)
    np.testing.assert_array_equal(drawn_labels, labels)
    assert model.draw_augmentation(6, 16) is None


def test_ada_at_p_zero_trains_bit_for_bit_as_the_papers_recipe():
    # A target ADA's heuristic never reaches keeps p at 0: nothing is augmented, and the run is the paper's to the last
    # bit (before the colour op kept closed gates exact, 3 steps differed by 6e-5).
    data = batches(3)
    weights = {}
    for mode in ("none", "ada"):
        keras.utils.set_random_seed(0)  # the same initial weights
        model = build_sagan(tiny_config(**(dict(augment="ada", ada_target=0.99) if mode == "ada" else {})), seed=5)
        for batch in data:
            model.train_step(batch)
        weights[mode] = [np.array(v) for v in model.generator.weights + model.discriminator.weights]
    assert float(model.ada.p.numpy()) == 0.0
    for plain, adaptive in zip(weights["none"], weights["ada"]):
        np.testing.assert_array_equal(adaptive, plain)


def test_fake_labels_follow_the_data_frequencies():
    model = build_sagan(tiny_config(fake_labels="data"), seed=0, class_frequencies=(40, 30, 20, 10))  # normalized
    _, labels = model.draw_noise(20_000)
    shares = np.bincount(np.asarray(labels), minlength=4) / 20_000
    np.testing.assert_allclose(shares, FREQUENCIES, atol=0.012)
    with pytest.raises(ValueError, match="fake_labels='data' draws fake labels from the training data's class "
                                         "frequencies: pass class_frequencies"):
        build_sagan(tiny_config(fake_labels="data"))
    with pytest.raises(ValueError, match="one non-negative value per class"):
        build_sagan(tiny_config(fake_labels="data"), class_frequencies=(1, 2))


def test_generator_gradients_pass_through_the_augmentation():
    model = build_sagan(tiny_config(augment="diffaugment"), seed=0)
    z, labels = model.draw_noise(4)
    params = model.draw_augmentation(4, 16)
    state = model.generator.get_weights(), model.discriminator.get_weights()

    def generator_gradients(augmentation):
        model.generator.set_weights(state[0])  # the power iteration and batch norm move with every call
        model.discriminator.set_weights(state[1])
        gradients = model._generator_gradients(z, labels, 4, augmentation)[0]
        variables = model.generator.trainable_variables
        return {v.path: np.array(tf.convert_to_tensor(g)) for v, g in zip(variables, gradients)}

    augmented, plain = generator_gradients(params), generator_gradients(None)
    # Attention's projections get none yet: their output is scaled by gamma, 0 at initialisation.
    kernels = [path for path in augmented if path.endswith("kernel") and "attention" not in path]
    assert len(kernels) >= 7
    for path in kernels:
        assert np.isfinite(augmented[path]).all() and np.abs(augmented[path]).max() > 0, path
    assert any(not np.allclose(augmented[path], plain[path], rtol=1e-3, atol=1e-6) for path in kernels)
    # With every op gated off (ADA at p = 0) the discriminator sees the generated images as they are.
    closed = dict(params, gates=tf.zeros((4, 5)))
    for path, gradient in generator_gradients(closed).items():
        np.testing.assert_allclose(gradient, plain[path], rtol=1e-4, atol=1e-6, err_msg=path)


class MeanDiscriminator(keras.Model):
    """D(x) = w * (mean(x) - 0.1): positive on bright images, negative on dark ones, whatever the labels."""

    def build(self, images_shape=None, labels_shape=None):
        self.w = self.add_weight(shape=(), initializer=keras.initializers.Constant(10.0), name="w")

    def call(self, images, labels=None, training=False):
        return self.w * (keras.ops.mean(images, axis=(1, 2, 3)) - 0.1)


class DarkGenerator(keras.Model):
    """Generates nearly black images: tanh(b) with b = -2."""

    def build(self, z_shape=None, labels_shape=None):
        self.b = self.add_weight(shape=(), initializer=keras.initializers.Constant(-2.0), name="b")

    def call(self, z, labels=None, training=False):
        return keras.ops.tanh(self.b) * keras.ops.ones((keras.ops.shape(z)[0], 16, 16, 3))


@pytest.mark.parametrize("real_pixel, direction", [(1.0, 1), (-1.0, -1)])
def test_ada_p_rises_when_the_discriminator_separates_real_from_fake_and_falls_otherwise(real_pixel, direction):
    # Bright real images, dark generated ones: D tells them apart on every (augmented) image, r_t = 1 > 0.6.
    # Dark real images: D calls them fake, r_t = -1 < 0.6.
    model = SAGAN(DarkGenerator(), MeanDiscriminator(), 8, 4, d_steps=2, ema_decay=None, seed=0, augment="ada",
                  ada_interval=2, ada_kimg=0.1)
    model.compile(g_optimizer=keras.optimizers.SGD(1e-4), d_optimizer=keras.optimizers.SGD(1e-4))
    model.ada.p.assign(0.5)
    images = tf.fill((8, 16, 16, 3), real_pixel)
    labels = tf.zeros((8,), "int32")
    history = []
    for _ in range(4):
        logs = model.train_step((images, labels))
        history.append(float(model.ada.p.numpy()))
    assert (float(logs["d_real"]) > 0) == (direction > 0) and float(logs["d_fake"]) < 0
    # Every 2 steps of 2 x 4 real images: p moves by 16 / 100.
    np.testing.assert_allclose(history, [0.5, 0.5 + 0.16 * direction, 0.5 + 0.16 * direction,
                                         0.5 + 0.32 * direction], atol=1e-6)
    assert model.augment_signals()["ada_rt"].numpy() == direction
    assert set(model.augment_signals()) == {"ada_p", "ada_rt"}


def test_sampling_evaluation_grids_and_exports_never_see_augmentation(monkeypatch):
    calls = []
    real_apply = augment.apply

    def counting(images, params, policy):
        calls.append(images.shape)
        return real_apply(images, params, policy)

    monkeypatch.setattr(gan_module.augment_module, "apply", counting)
    cfg = tiny_model()
    model = SAGAN(Generator(cfg), Discriminator(cfg), cfg.latent_dim, cfg.num_classes, ema_decay=0.9, seed=0,
                  augment="diffaugment")
    model.compile(g_optimizer=keras.optimizers.SGD(0.01), d_optimizer=keras.optimizers.SGD(0.01))
    model.train_step(batches(1)[0])
    assert len(calls) == 3  # the real and the fake batch of the discriminator update, the generator update's fakes
    del calls[:]
    z, labels = keras.random.normal((4, 8), seed=1), tf.constant([0, 1, 2, 3])
    expected = np.array(model.ema_generator(z, labels, training=False))
    np.testing.assert_array_equal(model((z, labels)), expected)  # what evaluation samples (sampling_generator)
    grid = callbacks.SampleGrid("unused", 0, samples_per_class=1, seed=0)
    grid.set_model(model)
    grid.render()
    exported = serving.GeneratorServingModule(model.sampling_generator, cfg).serve(z, labels)
    np.testing.assert_allclose(exported[serving.IMAGES_OUTPUT], expected, atol=1e-6)
    assert calls == []
