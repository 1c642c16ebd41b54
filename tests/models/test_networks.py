"""Generator and Discriminator: every preset, output ranges, architecture details, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.config import AttentionConfig
from sagan_tf.config.presets import get_preset
from sagan_tf.layers import ConditionalBatchNorm, SelfAttention, SpectralNormalization
from sagan_tf.models import Discriminator, Generator
from tests.keras_checks import assert_config_round_trip, assert_keras_file_round_trip
from tests.tiny import tiny_model

FAST_PRESETS = ["synthetic32", "cifar32", "dcgan64"]


def inputs_for(cfg, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(batch, cfg.latent_dim)).astype("float32")
    labels = (np.arange(batch) % max(cfg.num_classes, 1)).astype("int32")
    return z, labels


def layers_of_type(model, layer_type):
    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, layer_type)]


def run_preset(name, batch=2):
    cfg = get_preset(name).model
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    z, labels = inputs_for(cfg, batch)
    images = keras.ops.convert_to_numpy(generator(z, labels, training=True))
    logits = keras.ops.convert_to_numpy(discriminator(images, labels, training=True))
    return cfg, generator, discriminator, images, logits


def check_outputs(cfg, images, logits, batch=2):
    assert images.shape == (batch, cfg.image_size, cfg.image_size, 3)
    assert images.dtype == np.float32 and logits.dtype == np.float32
    assert np.all(np.abs(images) <= 1.0) and np.isfinite(images).all()
    assert images.std() > 1e-3  # not a constant image
    assert logits.shape == (batch,) and np.isfinite(logits).all()


@pytest.mark.parametrize("name", FAST_PRESETS)
def test_preset_shapes_and_ranges(name):
    cfg, generator, discriminator, images, logits = run_preset(name)
    check_outputs(cfg, images, logits)
    attention = layers_of_type(generator, SelfAttention) + layers_of_type(discriminator, SelfAttention)
    assert len(attention) == len(cfg.g_attention_resolutions) + len(cfg.d_attention_resolutions)
    for layer in attention:
        assert float(keras.ops.convert_to_numpy(layer.gamma)) == 0.0


@pytest.mark.slow
def test_imagenet128_runs_a_forward_pass():
    cfg, generator, discriminator, images, logits = run_preset("imagenet128", batch=2)
    check_outputs(cfg, images, logits)


def test_imagenet128_architecture_matches_official_code():
    cfg = get_preset("imagenet128").model
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    generator.build((None, cfg.latent_dim), (None,))
    discriminator.build((None, 128, 128, 3), (None,))
    assert [stage.filters for stage in generator.stages] == [1024, 512, 256, 128, 64]
    assert [stage.filters for stage in discriminator.stages] == [64, 128, 256, 512, 1024, 1024]
    # Self-attention at 32x32: after G block 3 (256 channels) and D block 1 (128 channels).
    assert generator._attention_stages == [2] and discriminator._attention_stages == [1]
    g_attention, d_attention = generator.attention_layers[0], discriminator.attention_layers[0]
    assert g_attention.theta_conv.layer.kernel.shape == (1, 1, 256, 32)
    assert g_attention.g_conv.layer.kernel.shape == (1, 1, 256, 128)
    assert d_attention.theta_conv.layer.kernel.shape == (1, 1, 128, 16)
    assert discriminator.embedding.layer.embeddings.shape == (1000, 1024)
    assert len(layers_of_type(generator, ConditionalBatchNorm)) == 10  # two per up-block
    # Spectral norm on every conv/linear.
    for model in (generator, discriminator):
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Embedding)):
                assert layer in [w.layer for w in layers_of_type(model, SpectralNormalization)], layer.name


def test_dcgan64_reproduces_the_seed_layer_list():
    cfg = get_preset("dcgan64").model
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    generator.build((None, cfg.latent_dim))
    discriminator.build((None, 64, 64, 3))

    def kernel_shapes(model, layer_type):
        return [tuple(layer.kernel.shape) for layer in layers_of_type(model, layer_type)]

    # Keras transposed-conv kernels are (kh, kw, out, in); PyTorch ConvTranspose2d(in, out, 4) in the seed.
    assert kernel_shapes(generator, keras.layers.Conv2DTranspose) == [
        (4, 4, 512, 128), (4, 4, 256, 512), (4, 4, 128, 256), (4, 4, 64, 128), (4, 4, 3, 64)]
    d_convs = [s for s in kernel_shapes(discriminator, keras.layers.Conv2D) if s[0] == 4]
    assert d_convs == [(4, 4, 3, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 512), (4, 4, 512, 1)]
    # Attention: query/key C/8, value C, biases, no output conv, no SN (Self_Attn in the seed).
    attention_shapes = [(a.theta_conv.kernel.shape[-2:], a.g_conv.kernel.shape[-1], a.theta_conv.bias is not None)
                        for a in generator.attention_layers + discriminator.attention_layers]
    assert attention_shapes == [((128, 16), 128, True), ((64, 8), 64, True),
                                ((256, 32), 256, True), ((512, 64), 512, True)]
    # The last layers carry no spectral norm in the seed; every other conv does.
    wrapped = [w.layer.name for w in layers_of_type(generator, SpectralNormalization)]
    assert "output_deconv" not in wrapped and len(wrapped) == 4
    assert len(layers_of_type(discriminator, SpectralNormalization)) == 4
    assert len(layers_of_type(generator, ConditionalBatchNorm)) == 0  # unconditional: plain batch norm


def test_conditional_generator_uses_labels_through_batch_norm_rows():
    cfg = tiny_model()
    generator = Generator(cfg)
    z, _ = inputs_for(cfg, batch=2)
    z = np.repeat(z[:1], 2, axis=0)
    labels = np.array([0, 1], "int32")
    out = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    # All class rows start equal (gamma=1, beta=0), so the label cannot matter yet.
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    for norm in layers_of_type(generator, ConditionalBatchNorm):
        norm.beta.assign(np.random.default_rng(0).normal(size=norm.beta.shape).astype("float32"))
    out = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    assert np.abs(out[0] - out[1]).max() > 1e-3


def test_discriminator_projection_matches_manual_computation():
    cfg = tiny_model()
    discriminator = Discriminator(cfg)
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, size=(3, 16, 16, 3)).astype("float32")
    labels = np.array([0, 1, 2], "int32")
    logits = keras.ops.convert_to_numpy(discriminator(images, labels, training=False))
    # Recompute the head in NumPy from the last stage's features.
    h = images
    for index, stage in enumerate(discriminator.stages):
        h = stage(h, training=False)
        if index in discriminator._attention_stages:
            h = discriminator.attention_layers[0](h, training=False)
    features = np.maximum(keras.ops.convert_to_numpy(h), 0).sum(axis=(1, 2))
    dense_kernel = keras.ops.convert_to_numpy(discriminator.output_layer.normalized_weight())
    dense_bias = keras.ops.convert_to_numpy(discriminator.output_layer.layer.bias)
    embeddings = keras.ops.convert_to_numpy(discriminator.embedding.normalized_weight())
    expected = features @ dense_kernel[:, 0] + dense_bias[0] + (embeddings[labels] * features).sum(axis=1)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_unconditional_models_ignore_labels_and_conditional_ones_require_them():
    cfg = tiny_model(num_classes=0)
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    z, _ = inputs_for(cfg)
    images = generator(z, training=False)
    assert discriminator(images, training=False).shape == (2,)
    assert discriminator.embedding is None
    conditional = Generator(tiny_model())
    with pytest.raises(ValueError, match="pass labels"):
        conditional(z, training=False)


@pytest.mark.parametrize("block_type", ["residual", "dcgan"])
def test_config_and_keras_file_round_trip(block_type, tmp_path):
    if block_type == "residual":
        cfg = tiny_model()
    else:
        cfg = tiny_model(block_type="dcgan", image_size=32, g_channels=(16, 8, 8), g_attention_resolutions=(8,),
                         d_channels=(8, 8, 16), d_downsample=(True, True, True), d_attention_resolutions=(8,),
                         attention=AttentionConfig(value_ratio=1, pool_keys=False, output_projection=False))
    z, labels = inputs_for(cfg)
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    # A few training calls move the power-iteration vectors and BN statistics away from their initial values.
    for _ in range(3):
        images = generator(z, labels, training=True)
        discriminator(images, labels, training=True)
    for model in (generator, discriminator):
        rebuilt = assert_config_round_trip(model)
        assert rebuilt.config == cfg
    assert_keras_file_round_trip(generator, (z, labels), tmp_path / "g")
    assert_keras_file_round_trip(discriminator, (images, labels), tmp_path / "d")


def test_generator_works_under_mixed_bfloat16():
    cfg = tiny_model()
    z, labels = inputs_for(cfg)
    reference = Generator(cfg)
    expected = keras.ops.convert_to_numpy(reference(z, labels, training=False))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    generator(z, labels, training=False)
    generator.set_weights(reference.get_weights())
    images = generator(z, labels, training=False)
    logits = discriminator(images, labels, training=True)
    assert images.dtype == "float32" and logits.dtype == "float32"
    assert all(w.dtype == "float32" for w in generator.weights + discriminator.weights)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(images), expected, atol=0.1)


def test_networks_run_under_mirrored_strategy_and_xla(mirrored_strategy):
    cfg = tiny_model()
    z, labels = inputs_for(cfg, batch=4)
    with mirrored_strategy.scope():
        generator, discriminator = Generator(cfg), Discriminator(cfg)
        generator(z, labels, training=False)
        discriminator(np.zeros((4, 16, 16, 3), "float32"), labels, training=False)
    expected = keras.ops.convert_to_numpy(discriminator(generator(z, labels, training=False), labels,
                                                        training=False))

    @tf.function
    def replica_forward(z, labels):
        return discriminator(generator(z, labels, training=False), labels, training=False)

    dataset = tf.data.Dataset.from_tensor_slices((z, labels)).batch(4)
    batch = next(iter(mirrored_strategy.experimental_distribute_dataset(dataset)))
    per_replica = mirrored_strategy.run(replica_forward, args=batch)
    distributed = np.concatenate([keras.ops.convert_to_numpy(t)
                                  for t in mirrored_strategy.experimental_local_results(per_replica)])
    np.testing.assert_allclose(distributed, expected, rtol=1e-4, atol=1e-4)

    compiled = tf.function(lambda z, labels: generator(z, labels, training=False), jit_compile=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(compiled(z, labels)),
                               keras.ops.convert_to_numpy(generator(z, labels, training=False)), atol=1e-5)


DCGAN_TINY = dict(block_type="dcgan", image_size=32, g_channels=(16, 8, 8), g_attention_resolutions=(8, 16),
                  d_channels=(8, 8, 16), d_downsample=(True, True, True), d_attention_resolutions=(8,),
                  attention=AttentionConfig(value_ratio=1, pool_keys=False, output_projection=False))


@pytest.mark.parametrize("overrides", [{}, DCGAN_TINY], ids=["residual_pooled", "dcgan_unpooled"])
def test_generator_returns_attention_scores_without_changing_images(overrides):
    cfg = tiny_model(**overrides)
    z, labels = inputs_for(cfg, batch=3)
    generator = Generator(cfg)
    generator(z, labels, training=False)
    inputs_seen = {}
    for layer, gamma in zip(generator.attention_layers, (0.7, -1.3)):
        layer.gamma.assign(gamma)  # non-zero: attention changes the images

        def recording_call(x, *args, _layer=layer, _call=layer.call, **kwargs):
            inputs_seen[_layer.name] = x
            return _call(x, *args, **kwargs)
        layer.call = recording_call
    images = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    with_scores, scores = generator(z, labels, training=False, return_attention_scores=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(with_scores), images)
    assert list(scores) == [f"attention{r}" for r in cfg.g_attention_resolutions]
    for layer in generator.attention_layers:
        x = inputs_seen[layer.name]
        size = x.shape[1]
        keys = size // 2 if layer.pool_keys else size
        layer_scores = keras.ops.convert_to_numpy(scores[layer.name])
        assert layer_scores.shape == (3, size, size, keys, keys) and layer_scores.dtype == np.float32
        np.testing.assert_allclose(layer_scores.sum(axis=(3, 4)), 1.0, atol=1e-5)
        # Row (h, w) of the reshaped scores is the layer's softmax row of query h * W + w.
        _, direct = layer(x, return_attention_scores=True, training=False)
        np.testing.assert_array_equal(layer_scores.reshape(3, size * size, keys * keys),
                                      keras.ops.convert_to_numpy(direct))
    # Without attention layers the dict is empty; the default call still returns only the images.
    plain = Generator(tiny_model(g_attention_resolutions=()))
    plain_images, plain_scores = plain(z, labels, training=False, return_attention_scores=True)
    assert plain_scores == {} and plain_images.shape == (3, 16, 16, 3)
    assert not isinstance(generator(z, labels, training=False), tuple)
    compiled = tf.function(lambda z, labels: generator(z, labels, training=False, return_attention_scores=True))
    traced_images, traced_scores = compiled(z, labels)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(traced_images), images, atol=1e-5)
    assert list(traced_scores) == list(scores)
