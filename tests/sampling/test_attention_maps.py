"""Attention maps and their rendering, checked against NumPy re-derivations."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from sagan_tf.sampling import images, attention_maps as visualize
from sagan_tf.config import AttentionConfig
from sagan_tf.config.presets import get_preset
from sagan_tf.errors import UsageError
from sagan_tf.run.restore import build_generator
from tests.tiny import tiny_model

IMAGE_SIZE = 32


def residual_config(**overrides):
    """32x32 images, attention at 16x16 with 2x2-pooled keys (an 8x8 key grid)."""
    return tiny_model(IMAGE_SIZE, **overrides)


def dcgan_config():
    """The dcgan block type: attention at 8x8 and 16x16 with full (unpooled) keys, C-channel values."""
    return get_preset("dcgan64").replace(
        image_size=IMAGE_SIZE, num_classes=3, latent_dim=8, g_channels=(16, 8, 8),
        g_attention_resolutions=(8, 16), d_channels=(8, 8, 16), d_downsample=(True, True, True),
        d_attention_resolutions=(8,)).model


def generator_with_attention(config, gammas=(0.8, -0.6)):
    """A float32 generator whose attention layers have non-zero gamma (so attention changes the images)."""
    keras.utils.set_random_seed(3)
    generator = build_generator(config)
    for layer, gamma in zip(generator.attention_layers, gammas):
        layer.gamma.assign(gamma)
    return generator


def inputs(config, batch=3, seed=0):
    z = np.random.default_rng(seed).standard_normal((batch, config.latent_dim)).astype("float32")
    return z, (np.arange(batch) % config.num_classes).astype("int32")


def capture_attention_inputs(generator):
    """Replaces each attention layer's `call` by one that records its input feature map; returns the records."""
    captured = {}
    for layer in generator.attention_layers:
        def recording_call(x, *args, _layer=layer, _call=layer.call, **kwargs):
            captured[_layer.name] = keras.ops.convert_to_numpy(x)
            return _call(x, *args, **kwargs)
        layer.call = recording_call
    return captured


def numpy_scores(layer, x):
    """The attention softmax (batch, H*W, keys) of `layer` at `x`, re-derived in NumPy from its theta/phi outputs."""
    queries = keras.ops.convert_to_numpy(layer.theta_conv(x, training=False)).astype("float64")
    keys = keras.ops.convert_to_numpy(layer.phi_conv(x, training=False)).astype("float64")
    batch, height, width, channels = keys.shape
    if layer.pool_keys:
        keys = keys.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))
    logits = queries.reshape(batch, -1, channels) @ keys.reshape(batch, -1, channels).transpose(0, 2, 1)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True), keys.shape[1:3]


@pytest.mark.parametrize("make_config", [residual_config, dcgan_config], ids=["residual_pooled", "dcgan_unpooled"])
def test_maps_are_the_softmax_rows_of_the_query_resized_to_the_image(make_config):
    config = make_config()
    generator = generator_with_attention(config)
    z, labels = inputs(config)
    plain = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    captured = capture_attention_inputs(generator)
    points = np.array([(0, 0), (5, 17), (16, 9), (31, 31), (31, 0)])
    result = visualize.attention_maps(generator, z, labels, points)

    np.testing.assert_array_equal(result.images, plain)
    names = [layer.name for layer in generator.attention_layers]
    assert list(result.layer_names) == names == [f"attention{r}" for r in config.g_attention_resolutions]
    assert result.maps.shape == (3, len(names), len(points), IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_array_equal(result.query_points, points)
    for index, layer in enumerate(generator.attention_layers):
        x = captured[layer.name]
        height = x.shape[1]
        expected_scores, key_grid = numpy_scores(layer, x)
        assert key_grid == ((height // 2,) * 2 if layer.pool_keys else (height,) * 2)
        assert result.feature_sizes[index] == (height, height) and result.key_sizes[index] == key_grid
        # The layer's own scores at the captured map agree with the NumPy re-derivation.
        _, layer_scores = layer(x, return_attention_scores=True, training=False)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer_scores), expected_scores, atol=2e-6)
        factor = IMAGE_SIZE // key_grid[0]
        for q, (row, col) in enumerate(points):
            cell = (row * height // IMAGE_SIZE, col * height // IMAGE_SIZE)
            np.testing.assert_array_equal(result.query_cells[index, q], cell)
            softmax_row = expected_scores[:, cell[0] * height + cell[1]].reshape(-1, *key_grid)
            np.testing.assert_allclose(result.key_weights[index][:, q], softmax_row, atol=2e-6)
            np.testing.assert_allclose(result.key_weights[index][:, q].sum(axis=(1, 2)), 1.0, atol=1e-5)
            # Nearest-neighbour resizing: every key cell becomes a factor x factor block of its weight.
            resized = np.stack([np.kron(m, np.ones((factor, factor))) for m in softmax_row])
            np.testing.assert_allclose(result.maps[:, index, q], resized, atol=2e-6)
            np.testing.assert_allclose(result.maps[:, index, q].mean(axis=(1, 2)), 1.0 / np.prod(key_grid),
                                       rtol=1e-5)
    # Different queries look at different places (a test that could not tell the rows apart would pass anyway).
    assert np.abs(result.maps[:, :, 0] - result.maps[:, :, 3]).max() > 1e-4


def test_query_pixels_map_to_the_feature_cell_covering_them():
    config = residual_config()
    generator = generator_with_attention(config)
    z, labels = inputs(config, batch=1)
    # 32x32 image, 16x16 feature map: pixels 2k and 2k + 1 fall in cell k; corners in corner cells.
    points = [(0, 0), (1, 1), (2, 3), (0, 31), (31, 0), (31, 31), (30, 29)]
    result = visualize.attention_maps(generator, z, labels, points)
    np.testing.assert_array_equal(result.query_cells[0],
                                  [(0, 0), (0, 0), (1, 1), (0, 15), (15, 0), (15, 15), (15, 14)])
    np.testing.assert_array_equal(result.maps[0, 0, 0], result.maps[0, 0, 1])  # same cell, same map
    assert np.abs(result.maps[0, 0, 0] - result.maps[0, 0, 2]).max() > 0
    np.testing.assert_array_equal(visualize.default_query_points(32), [(8, 8), (16, 24), (24, 12)])


def test_bad_query_points_and_generators_without_attention_are_usage_errors():
    config = residual_config()
    generator = generator_with_attention(config)
    z, labels = inputs(config, batch=1)
    for points, message in (([(32, 0)], "inside the 32x32 image"), ([(-1, 3)], "inside"),
                            ([(0.5, 0.25)], "integer pixel coordinates"), ([1, 2, 3], "pairs")):
        with pytest.raises(UsageError, match=message):
            visualize.attention_maps(generator, z, labels, points)
    no_attention = build_generator(residual_config(g_attention_resolutions=()))
    with pytest.raises(UsageError, match="no self-attention layer"):
        visualize.attention_maps(no_attention, z, labels)
    np.testing.assert_array_equal(visualize.parse_query_points(" 1,2; 30,4;"), [(1, 2), (30, 4)])
    for text in ("1,2,3", "a,b", "", "1;2"):
        with pytest.raises(UsageError, match="row,col"):
            visualize.parse_query_points(text)


def decode(png):
    return np.array(Image.open(io.BytesIO(png)).convert("RGB"))


def test_render_layout_tiles_and_png(tmp_path):
    config = dcgan_config()
    generator = generator_with_attention(config)
    z, labels = inputs(config, batch=2)
    points = np.array([(4, 4), (20, 28)])
    result = visualize.attention_maps(generator, z, labels, points)
    figure = visualize.render_attention_maps(result, scale=3)
    pad, tile = images.GRID_PADDING, IMAGE_SIZE * 3
    columns = 1 + 2 * 2  # the image, then 2 layers x 2 queries
    assert figure.dtype == np.uint8 and figure.shape[1] == pad + columns * (tile + pad)
    header = figure.shape[0] - (pad + 2 * (tile + pad))
    assert 10 < header < 60
    assert (figure[:header] < 128).any()  # header text drawn
    pixels = images.to_uint8(result.images)
    for image in range(2):
        y = header + image * (tile + pad)
        # Away from the markers (around rows/cols 12-15 and 60-87), a tile is the upscaled image / overlay.
        first = figure[y:y + tile, pad:pad + tile]
        upscaled = np.repeat(np.repeat(pixels[image], 3, 0), 3, 1)
        np.testing.assert_array_equal(first[:6, 40:54], upscaled[:6, 40:54])
        assert (first[6:22, 6:22] != upscaled[6:22, 6:22]).any()  # query 0 (pixel (4, 4)) marked
        for layer in range(2):
            for query in range(2):
                x = pad + (1 + layer * 2 + query) * (tile + pad)
                expected = np.repeat(np.repeat(visualize.overlay(pixels[image], result.maps[image, layer, query]),
                                               3, 0), 3, 1)
                overlay_tile = figure[y:y + tile, x:x + tile]
                np.testing.assert_array_equal(overlay_tile[:6, 40:54], expected[:6, 40:54])
                # Each overlay marks its own query only.
                query0_marked = (overlay_tile[6:22, 6:22] != expected[6:22, 6:22]).any()
                assert query0_marked == (query == 0)
    path = tmp_path / "sub" / "attention.png"
    images.save_png(figure, str(path))
    np.testing.assert_array_equal(decode(path.read_bytes()), figure)
    # Default scale: tiles of at least 128 pixels.
    assert visualize.render_attention_maps(result, max_images=1).shape[1] == pad + columns * (128 + pad)


def test_colormap_and_overlay():
    np.testing.assert_array_equal(visualize.colormap(np.array([0.0, 1.0, 2.0, -1.0])),
                                  [(0, 0, 4), (252, 255, 164), (252, 255, 164), (0, 0, 4)])
    np.testing.assert_array_equal(visualize.colormap(np.array([0.125])), [(44, 8, 57)])  # halfway to anchor 1
    brightness = visualize.colormap(np.linspace(0, 1, 50)).astype(int).sum(axis=-1)
    assert np.all(np.diff(brightness) >= 0)
    image = np.full((2, 2, 3), 100, "uint8")
    attention = np.array([[0.0, 0.5], [0.25, 0.25]])
    blended = visualize.overlay(image, attention, alpha=0.5)
    # Scaled to the map's own maximum: the peak takes the top colour.
    np.testing.assert_array_equal(blended[0, 1], np.round(0.5 * 100 + 0.5 * np.array([252, 255, 164])))
    np.testing.assert_array_equal(blended[0, 0], np.round(0.5 * 100 + 0.5 * np.array([0, 0, 4])))


def test_dcgan_config_is_unpooled():
    assert dcgan_config().attention == AttentionConfig(key_ratio=8, value_ratio=1, pool_keys=False,
                                                       use_spectral_norm=False, use_bias=True,
                                                       output_projection=False)
