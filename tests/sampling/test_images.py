"""sagan_tf.sampling.images: pixels, grid latents, grid layout (checked tile by tile), labelled grids and PNG files."""

import io

import numpy as np
import pytest
from PIL import Image

from sagan_tf.sampling import images
from sagan_tf.errors import UsageError


def decode(png):
    return np.array(Image.open(io.BytesIO(png)).convert("RGB"))


def test_to_uint8_rounds_and_clips():
    values = np.array([-1.5, -1.0, -0.004, 0.0, 0.5, 1.0, 2.0], "float32")
    np.testing.assert_array_equal(images.to_uint8(values), [0, 0, 127, 128, 191, 255, 255])
    assert images.to_uint8(values).dtype == np.uint8


def test_grid_inputs_are_fixed_by_the_seed_and_cap_the_rows():
    z, labels, row_classes, rows, cols = images.grid_inputs(4, 1000, samples_per_class=2, seed=0)
    assert rows == 16 and cols == 2 and row_classes[0] == 0 and row_classes[-1] == 999
    np.testing.assert_array_equal(labels, np.repeat(row_classes, 2))
    np.testing.assert_array_equal(z, np.random.default_rng(0).standard_normal((32, 4)).astype("float32"))
    z, labels, row_classes, rows, cols = images.grid_inputs(3, 0, samples_per_class=3, seed=1)
    assert labels is None and row_classes is None and (rows, cols) == (3, 3) and z.shape == (9, 3)


def test_make_grid_places_each_tile():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 255, (5, 4, 6, 3)).astype("uint8")
    grid = images.make_grid(tiles, 2, 3)
    pad = images.GRID_PADDING
    assert grid.shape == (pad + 2 * (4 + pad), pad + 3 * (6 + pad), 3)
    expected = np.full(grid.shape, 255, "uint8")
    for index in range(5):
        r, c = divmod(index, 3)
        y, x = pad + r * (4 + pad), pad + c * (6 + pad)
        expected[y:y + 4, x:x + 6] = tiles[index]
    np.testing.assert_array_equal(grid, expected)


def test_labelled_grid_has_one_labelled_row_per_class():
    rng = np.random.default_rng(0)
    generated = rng.uniform(-1, 1, (5, 8, 8, 3)).astype("float32")
    labels = np.array([2, 0, 2, 2, 0])
    grid = images.labelled_grid(generated, labels, class_names=["zero", "one", "two"])
    pixels = images.to_uint8(generated)
    blank = np.full((8, 8, 3), 255, "uint8")
    rows = np.stack([pixels[0], pixels[2], pixels[3], pixels[1], pixels[4], blank])
    np.testing.assert_array_equal(grid, images.make_grid(rows, 2, 3, row_labels=["two", "zero"]))
    margin = grid.shape[1] - (3 * (8 + images.GRID_PADDING) + images.GRID_PADDING)
    assert margin > 10 and (grid[:, :margin] < 128).any()  # names drawn in the margin
    # The tiles sit right of the margin, where make_grid without labels would put them.
    np.testing.assert_array_equal(grid[:, margin:], images.make_grid(rows, 2, 3))
    unnamed = images.labelled_grid(pixels, labels)
    np.testing.assert_array_equal(unnamed, images.make_grid(rows, 2, 3, row_labels=["class 2", "class 0"]))
    np.testing.assert_array_equal(images.labelled_grid(generated, None), images.make_grid(pixels, 2, 3))
    with pytest.raises(UsageError, match="one label per image"):
        images.labelled_grid(generated, labels[:3])
    assert images.class_name(7, ["a"]) == "class 7" and images.class_name(0, ("a",)) == "a"


def test_png_round_trip_and_save(tmp_path):
    array = np.random.default_rng(1).integers(0, 255, (5, 7, 3)).astype("uint8")
    np.testing.assert_array_equal(decode(images.encode_png(array)), array)
    path = tmp_path / "new" / "dir" / "grid.png"
    png = images.save_png(array, str(path))
    assert path.read_bytes() == png
    np.testing.assert_array_equal(decode(png), array)
