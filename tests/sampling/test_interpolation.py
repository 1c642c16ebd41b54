"""sagan_tf.sampling.interpolation: slerp/lerp against NumPy, exact end points, class blending, the rendered figure."""

import keras
import numpy as np
import pytest

from sagan_tf.sampling import images, interpolation
from sagan_tf.errors import UsageError
from tests.tiny import random_generator, tiny_model


def reference_slerp(z0, z1, t):
    omega = np.arccos(np.dot(z0, z1) / (np.linalg.norm(z0) * np.linalg.norm(z1)))
    return np.sin((1 - t) * omega) / np.sin(omega) * z0 + np.sin(t * omega) / np.sin(omega) * z1


def test_slerp_matches_the_formula_and_keeps_the_end_points():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((2, 16))
    path = interpolation.interpolate_latents(z0, z1, 7, "slerp")
    assert path.shape == (7, 16) and path.dtype == np.float32
    for t, z in zip(np.linspace(0, 1, 7), path):
        np.testing.assert_allclose(z, reference_slerp(z0, z1, t), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(path[0], z0.astype("float32"))
    np.testing.assert_array_equal(path[-1], z1.astype("float32"))
    # Between two latents of equal norm the spherical path keeps that norm; the linear one shrinks it.
    unit0, unit1 = z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1)
    np.testing.assert_allclose(np.linalg.norm(interpolation.interpolate_latents(unit0, unit1, 5), axis=1), 1.0,
                               rtol=1e-5)
    assert np.linalg.norm(interpolation.interpolate_latents(unit0, unit1, 5, "linear")[2]) < 0.99
    # Parallel latents fall back to the linear path (the angle is 0).
    np.testing.assert_allclose(interpolation.slerp(z0, 2 * z0, 0.5), 1.5 * z0, rtol=1e-5)


def test_lerp_and_class_weights():
    z0, z1 = np.zeros(3), np.ones(3)
    np.testing.assert_allclose(interpolation.interpolate_latents(z0, z1, 3, "linear"), [[0] * 3, [0.5] * 3, [1] * 3])
    weights = interpolation.class_weights(1, 3, 5, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_array_equal(weights[0], [0, 1, 0, 0])
    np.testing.assert_array_equal(weights[-1], [0, 0, 0, 1])
    np.testing.assert_allclose(weights[2], [0, 0.5, 0, 0.5])


@pytest.mark.parametrize("call, message", [
    (lambda: interpolation.interpolate_latents(np.zeros(2), np.ones(2), 1), "steps >= 2"),
    (lambda: interpolation.interpolate_latents(np.zeros(2), np.ones(2), 3, "cubic"), "one of slerp, linear"),
    (lambda: interpolation.class_weights(0, 4, 3, 4), r"Class ids must be in \[0, 4\)"),
])
def test_bad_arguments(call, message):
    with pytest.raises(UsageError, match=message):
        call()


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    return random_generator(tiny_model(num_classes=4), seed=1)


def generate(generator, z, labels):
    return keras.ops.convert_to_numpy(generator(np.asarray(z, "float32"), labels, training=False))


def test_row_end_points_are_the_images_of_the_end_latents_and_classes(generator):
    rng = np.random.default_rng(3)
    z0, z1 = rng.standard_normal((2, 8)).astype("float32")
    row = interpolation.latent_row(generator, z0, z1, 6, label=2)
    ends = generate(generator, [z0, z1], np.array([2, 2], "int32"))
    np.testing.assert_allclose(row.images[0], ends[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(row.images[-1], ends[1], atol=1e-6, rtol=0)
    assert np.abs(row.images[2] - ends[0]).max() > 1e-3  # the middle differs from both ends
    blend = interpolation.class_row(generator, z0, 1, 3, 5, num_classes=4)
    classes = generate(generator, [z0, z0], np.array([1, 3], "int32"))
    np.testing.assert_allclose(blend.images[0], classes[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(blend.images[-1], classes[1], atol=1e-6, rtol=0)
    assert np.abs(classes[0] - classes[1]).max() > 1e-2  # the classes look different, so the row shows a change


def test_rows_and_the_rendered_figure(generator):
    rows = interpolation.interpolation_rows(generator, num_classes=4, latent_dim=8, steps=5, seed=0)
    assert [row.kind for row in rows] == ["latent"] * 4 + ["class"] * 4
    assert [row.classes for row in rows[:4]] == [(0,), (1,), (2,), (3,)]
    assert [row.classes for row in rows[4:]] == [(0, 2), (1, 3), (2, 0), (3, 1)]
    names = ["ring", "bar", "stripes", "mirror"]
    assert interpolation.row_label(rows[0], names) == "ring (slerp)"
    assert interpolation.row_label(rows[4], names) == "ring -> stripes"
    figure = interpolation.render(rows, names)
    pixels = np.concatenate([images.to_uint8(row.images) for row in rows])
    expected = images.make_grid(pixels, 8, 5, [interpolation.row_label(row, names) for row in rows])
    np.testing.assert_array_equal(figure, expected)
    again = interpolation.interpolation_rows(generator, num_classes=4, latent_dim=8, steps=5, seed=0)
    np.testing.assert_array_equal(interpolation.render(again, names), figure)  # a seed names the figure


def test_unconditional_rows():
    keras.utils.set_random_seed(0)
    generator = random_generator(tiny_model(num_classes=0), seed=2)
    rows = interpolation.interpolation_rows(generator, num_classes=0, latent_dim=8, steps=3, seed=1, method="linear")
    assert [row.kind for row in rows] == ["latent"] * 4 and rows[0].classes == ()
    assert interpolation.row_label(rows[0]) == "linear"
    with pytest.raises(UsageError, match="needs a generator with >= 2 classes"):
        interpolation.interpolation_rows(generator, num_classes=0, latent_dim=8, class_rows=1)
