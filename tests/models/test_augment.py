"""sagan_tf.models.augment: DiffAugment's ops against NumPy references, their gradients, the draws, and ADA's p."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.models import augment


def images(batch=3, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


def translate_reference(x, shifts):
    """out[b, i, j] = x[b, i - dy, j - dx], zero outside: pixel by pixel."""
    out = np.zeros_like(x)
    size = x.shape[1]
    for b, (dy, dx) in enumerate(shifts):
        for i in range(size):
            for j in range(size):
                if 0 <= i - dy < size and 0 <= j - dx < size:
                    out[b, i, j] = x[b, i - dy, j - dx]
    return out


def diffaugment_size(image_size, ratio):
    """The shift limit (ratio 1/8) or cutout side (1/2) as DiffAugment_tf.py computes it: float32, + 0.5, to int32."""
    return int(np.float32(image_size) * np.float32(ratio) + np.float32(0.5))


def cutout_reference(x, centres):
    """Zero the rows and columns centre - side // 2 ... centre - side // 2 + side - 1 that lie in the image."""
    out = x.copy()
    side = diffaugment_size(x.shape[1], 0.5)
    for b, (row, col) in enumerate(centres):
        top, left = max(row - side // 2, 0), max(col - side // 2, 0)
        out[b, top:max(row - side // 2 + side, 0), left:max(col - side // 2 + side, 0)] = 0.0
    return out


def color_reference(x, magnitudes):
    b, s, c = (magnitudes[:, i].reshape(-1, 1, 1, 1).astype(np.float64) for i in range(3))
    x = x.astype(np.float64) + (b - 0.5)
    mean = x.mean(axis=3, keepdims=True)
    x = (x - mean) * (2 * s) + mean
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (c + 0.5) + mean


def test_translation_is_exact_for_given_offsets():
    x = images(batch=5)
    shifts = np.array([[0, 0], [2, -1], [-2, 2], [1, 0], [16, -3]], "int32")  # 16: the whole image shifted out
    np.testing.assert_array_equal(augment.translate(x, shifts), translate_reference(x, shifts))
    # A gate of 0 leaves its image as it is.
    gates = np.array([1, 0, 1, 0, 1], "float32")
    expected = translate_reference(x, shifts * gates[:, None].astype("int32"))
    np.testing.assert_array_equal(augment.translate(x, shifts, gates), expected)


def test_cutout_is_exact_for_given_centres_including_the_borders():
    x = images(batch=5)
    centres = np.array([[8, 8], [0, 0], [16, 16], [3, 12], [15, 1]], "int32")  # side 8: clipped at the borders
    np.testing.assert_array_equal(augment.cut_out(x, centres), cutout_reference(x, centres))
    mask = np.asarray(augment.cutout_mask(16, centres))
    assert mask[0].sum() == 256 - 64 and mask[1].sum() == 256 - 16 and mask[2].sum() == 256 - 16
    gates = np.array([0, 1, 0, 1, 1], "float32")
    expected = np.where(gates[:, None, None, None] > 0, cutout_reference(x, centres), x)
    np.testing.assert_array_equal(augment.cut_out(x, centres, gates), expected)


@pytest.mark.parametrize("size", [20, 21, 36, 12])
def test_shift_and_cutout_sizes_are_rounded_as_diffaugment_rounds_them(size):
    # Sizes not a multiple of 8: 20 -> shifts up to 3 (20 // 8 = 2), side 10; 21 -> 3, side 11 (21 // 2 = 10);
    # 36 -> 5 (36 // 8 = 4), side 18; 12 -> 2 (12 // 8 = 1), side 6.
    limit, side = diffaugment_size(size, 0.125), diffaugment_size(size, 0.5)
    assert (augment.translation_limit(size), augment.cutout_size(size)) == (limit, side)
    params = augment.draw_parameters(4096, size, ("translation", "cutout"), keras.random.SeedGenerator(4))
    assert sorted(np.unique(np.asarray(params["translation"]))) == list(range(-limit, limit + 1))
    # Centres 0 ... size - side % 2, as DiffAugment draws them; a square in the middle is side x side.
    assert sorted(np.unique(np.asarray(params["cutout"]))) == list(range(0, size + 1 - side % 2))
    middle = np.full((1, 2), size // 2, "int32")
    assert np.asarray(augment.cutout_mask(size, middle)).sum() == size * size - side * side
    x = images(batch=4, size=size)
    centres = np.array([[size // 2, size // 2], [0, size - 1], [size, 3], [5, 1]], "int32")
    np.testing.assert_array_equal(augment.cut_out(x, centres), cutout_reference(x, centres))


def test_color_matches_numpy_and_its_ranges():
    x = images(batch=4)
    magnitudes = np.array([[0.0, 0.0, 0.0], [0.999, 0.999, 0.999], [0.5, 0.5, 0.5], [0.3, 0.8, 0.1]], "float32")
    out = np.asarray(augment.adjust_color(x, magnitudes))
    np.testing.assert_allclose(out, color_reference(x, magnitudes), atol=2e-6)
    # b = 0.5, s = 0.5, c = 0.5: no change at all.
    np.testing.assert_allclose(out[2], x[2], atol=1e-6)
    # s = 0 makes a grey image (every channel its pixel's mean), before the contrast scales it.
    grey = np.asarray(augment.adjust_color(x[:1], np.array([[0.5, 0.0, 0.5]], "float32")))
    np.testing.assert_allclose(grey, np.repeat(x[:1].mean(axis=3, keepdims=True), 3, axis=3), atol=1e-6)
    # The ends of the ranges: brightness shifts by [-0.5, 0.5) (saturation and contrast keep the image's mean),
    # contrast scales the deviations from the mean by [0.5, 1.5).
    for b, s, c in ((0.0, 0.5, 0.0), (0.999, 0.5, 0.999)):
        out = np.asarray(augment.adjust_color(x[:1], np.array([[b, s, c]], "float32")))
        assert out.mean() == pytest.approx(x[:1].mean() + b - 0.5, abs=1e-5)
        np.testing.assert_allclose(out - out.mean(), (x[:1] - x[:1].mean()) * (c + 0.5), atol=1e-5)
    gates = [np.array([0, 1, 0, 1], "float32"), np.array([1, 0, 0, 1], "float32"), np.zeros(4, "float32")]
    gated = np.asarray(augment.adjust_color(x, magnitudes, gates))
    neutral = np.where(np.stack(gates, axis=1) > 0, magnitudes, 0.5)  # 0.5: the identity of each of the three
    np.testing.assert_allclose(gated, color_reference(x, neutral), atol=2e-6)


def test_draws_stay_in_their_ranges_and_follow_the_seed():
    policy = augment.parse_policy("color,translation,cutout")
    params = augment.draw_parameters(4096, 32, policy, keras.random.SeedGenerator(1))
    color, shifts, centres = (np.asarray(params[name]) for name in ("color", "translation", "cutout"))
    assert color.shape == (4096, 3) and color.min() >= 0 and color.max() < 1 and abs(color.mean() - 0.5) < 0.02
    assert sorted(np.unique(shifts)) == list(range(-4, 5))  # 32 / 8, both ends included
    assert sorted(np.unique(centres)) == list(range(0, 33))  # side 16 (even): 0 ... 32
    assert "gates" not in params
    again = augment.draw_parameters(4096, 32, policy, keras.random.SeedGenerator(1))
    np.testing.assert_array_equal(np.asarray(again["translation"]), shifts)
    # Odd cutout sides (image 18, side 9): centres 0 ... 17, as DiffAugment draws them.
    odd = augment.draw_parameters(2048, 18, ("cutout",), keras.random.SeedGenerator(2))
    assert sorted(np.unique(np.asarray(odd["cutout"]))) == list(range(0, 18)) and set(odd) == {"cutout"}
    # ADA: one gate per op and image, on with probability p.
    for p in (0.0, 0.3, 1.0):
        gates = np.asarray(augment.draw_parameters(4096, 32, policy, keras.random.SeedGenerator(3), p)["gates"])
        assert gates.shape == (4096, 5) and set(np.unique(gates)) <= {0.0, 1.0}
        assert abs(gates.mean() - p) < 0.02
    sliced = augment.slice_parameters(params, 10, 3)
    np.testing.assert_array_equal(np.asarray(sliced["translation"]), shifts[10:13])


def test_apply_runs_the_policy_in_order_and_gates_of_zero_change_nothing():
    x = images(batch=4, size=16)
    policy = ("translation", "cutout", "color")
    params = augment.draw_parameters(4, 16, policy, keras.random.SeedGenerator(5))
    expected = color_reference(cutout_reference(translate_reference(x, np.asarray(params["translation"])),
                                                np.asarray(params["cutout"])), np.asarray(params["color"]))
    np.testing.assert_allclose(augment.apply(x, params, policy), expected, atol=2e-6)
    closed = dict(params, gates=np.zeros((4, 5), "float32"))
    np.testing.assert_array_equal(augment.apply(x, closed, policy), x)  # bit for bit: ADA at p = 0 is no augmentation


def test_gradients_flow_through_the_ops_exactly():
    """d/dx sum(w * T(x)) is T's adjoint applied to w: the shifted-back weights, zero under the cutout square."""
    x = tf.constant(images(batch=2))
    w = images(batch=2, seed=1)
    shifts, centres = np.array([[1, -2], [-3, 0]], "int32"), np.array([[4, 9], [12, 2]], "int32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(w * augment.cut_out(augment.translate(x, shifts), centres))
    gradient = tape.gradient(total, x).numpy()
    masked = cutout_reference(w, centres)
    adjoint = translate_reference(masked, -shifts)
    np.testing.assert_array_equal(gradient, adjoint)
    # Through the colour op too (a linear map of x for fixed magnitudes): d/dx sum(w * C(x)) = C's adjoint of w.
    magnitudes = np.array([[0.2, 0.7, 0.9], [0.6, 0.1, 0.4]], "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(w * augment.adjust_color(x, magnitudes))
    gradient = tape.gradient(total, x).numpy()
    s, c = magnitudes[:, 1].reshape(-1, 1, 1, 1) * 2, magnitudes[:, 2].reshape(-1, 1, 1, 1) + 0.5
    centred = lambda v, axes: v - v.mean(axis=axes, keepdims=True)  # noqa: E731 (self-adjoint)
    expected = w.astype(np.float64)
    expected = centred(expected, (1, 2, 3)) * c + expected.mean(axis=(1, 2, 3), keepdims=True)
    expected = centred(expected, 3) * s + expected.mean(axis=3, keepdims=True)
    np.testing.assert_allclose(gradient, expected, atol=1e-5)


@pytest.mark.parametrize("policy", ["", "color,rotate", "cutout,cutout", ","])
def test_bad_policies_are_refused(policy):
    with pytest.raises(ValueError, match="augment_policy must be a comma-separated list of color, translation, "
                                         "cutout, each at most once"):
        augment.parse_policy(policy)


def test_parse_policy_keeps_the_order():
    assert augment.parse_policy(" cutout, color") == ("cutout", "color")
    assert augment.gated_ops(("cutout", "color")) == ("cutout", "brightness", "saturation", "contrast")


def value(variable):
    return float(np.asarray(variable))


def test_ada_p_rises_when_the_discriminator_overfits_and_falls_otherwise():
    # The paper's speed: every 4 steps of 64 real images p moves by 256 / 500,000.
    ada = augment.AdaptiveAugment(target=0.6, interval=4, kimg=500)
    step = 4 * 64 / 500_000
    for i in range(1, 13):
        ada.observe(64.0, 64)  # D(x) > 0 on every real image: r_t = 1 > 0.6 (D separates real from fake)
        ada.adjust(64)
        assert value(ada.p) == pytest.approx(step * (i // 4), abs=1e-7), i  # only every 4 steps
    assert value(ada.rt) == 1.0 and value(ada.seen) == 0.0
    high = value(ada.p)
    for _ in range(4):
        ada.observe(0.2 * 64, 64)  # r_t = 0.2 < 0.6
        ada.adjust(64)
    assert value(ada.p) == pytest.approx(high - step, abs=1e-7) and value(ada.rt) == pytest.approx(0.2)
    # Clipped to [0, 1].
    fast = augment.AdaptiveAugment(target=0.6, interval=1, kimg=0.1)  # 100 images from 0 to 1
    fast.observe(-64.0, 64)
    fast.adjust(64)
    assert value(fast.p) == 0.0
    for _ in range(3):
        fast.observe(64.0, 64)
        fast.adjust(64)
    assert value(fast.p) == 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(target=1.0), r"ada_target must be in \(0, 1\)"),
    (dict(target=0.0), r"ada_target must be in \(0, 1\)"),
    (dict(interval=0), "ada_interval must be an integer >= 1"),
    (dict(kimg=0), "ada_kimg must be > 0"),
])
def test_bad_ada_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        augment.AdaptiveAugment(**kwargs)
