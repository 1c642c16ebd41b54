"""The synthetic dataset: determinism, splits, balance, range and the long-range structure of each class."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from sagan_tf import data
from sagan_tf.data import synthetic


def _generate(n, size=32, split="test", start=0, **kwargs):
    images, labels = synthetic.generate(tf.range(start, start + n, dtype=tf.int64), size, split, **kwargs)
    return images.numpy(), labels.numpy()


def _by_class(n=96, size=32):
    images, labels = _generate(n, size)
    return {k: images[labels == k] for k in range(synthetic.NUM_CLASSES)}


def _colors(image):
    """Distinct colours of an image and the (h, w) map of each pixel's colour index, background first."""
    colors, inverse, counts = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True)
    index = inverse.reshape(image.shape[:2])
    # The corners are background in the shape classes.
    order = np.argsort(-counts)
    background = index[0, 0]
    order = [background] + [c for c in order if c != background]
    remap = np.empty(len(colors), int)
    remap[order] = np.arange(len(colors))
    return colors[order], remap[index]


def test_constants():
    assert synthetic.NUM_CLASSES == 4 and len(synthetic.CLASS_NAMES) == 4
    info = data.get_info("synthetic")
    assert info.num_classes == 4 and info.conditional and info.class_names == synthetic.CLASS_NAMES


@pytest.mark.parametrize("size", [16, 32, 64])
def test_range_dtype_and_static_shape(size):
    dataset = data.load("synthetic", image_size=size, batch_size=8)
    assert dataset.element_spec[0].shape == (8, size, size, 3)
    assert dataset.element_spec[1].shape == (8,)
    images, labels = next(iter(dataset))
    assert images.dtype == tf.float32 and labels.dtype == tf.int32
    assert np.all(images.numpy() >= -1.0) and np.all(images.numpy() <= 1.0)
    assert images.numpy().min() < -0.5 and images.numpy().max() > 0.5  # uses the range, not a sliver
    assert set(labels.numpy()) <= {0, 1, 2, 3}


def test_deterministic_and_independent_of_batch_size():
    first = [b[0] for b in data.load("synthetic", batch_size=4).take(4).as_numpy_iterator()]
    again = [b[0] for b in data.load("synthetic", batch_size=4).take(4).as_numpy_iterator()]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    big = next(data.load("synthetic", batch_size=16).as_numpy_iterator())[0]
    np.testing.assert_array_equal(np.concatenate(first), big)


def test_splits_and_seeds_differ():
    train, _ = _generate(32, split="train")
    test, _ = _generate(32, split="test")
    assert np.mean(np.abs(train - test) > 1e-3) > 0.5
    seed0 = next(data.load("synthetic", batch_size=8, seed=0).as_numpy_iterator())[0]
    seed1 = next(data.load("synthetic", batch_size=8, seed=1).as_numpy_iterator())[0]
    np.testing.assert_array_equal(seed0, train[:8])  # seed None or 0: the stream from index 0
    assert np.mean(np.abs(seed0 - seed1) > 1e-3) > 0.5
    test_a = next(data.load("synthetic", "test", batch_size=8, seed=0).as_numpy_iterator())[0]
    test_b = next(data.load("synthetic", "test", batch_size=8, seed=5).as_numpy_iterator())[0]
    np.testing.assert_array_equal(test_a, test_b)  # the test set is fixed


def test_test_split_is_finite_and_exactly_balanced():
    labels = np.concatenate([b[1] for b in data.load("synthetic", "test", image_size=16, batch_size=512)])
    assert labels.shape == (synthetic.TEST_SIZE,)
    np.testing.assert_array_equal(np.bincount(labels), [synthetic.TEST_SIZE // 4] * 4)
    blocks = labels.reshape(-1, 4)
    np.testing.assert_array_equal(np.sort(blocks, axis=1), np.tile(np.arange(4), (len(blocks), 1)))
    # ...in a random order inside each block, not a fixed cycle.
    assert len({tuple(b) for b in blocks[:200]}) > 12


def test_train_labels_are_balanced():
    _, labels = synthetic.generate(tf.range(4000, dtype=tf.int64) * 3 + 11, 16, "train")
    counts = np.bincount(labels.numpy(), minlength=4)
    chi2 = np.sum((counts - 1000) ** 2 / 1000)
    assert chi2 < 16.3, counts  # p = 0.001 for 3 degrees of freedom


def test_mirror_pair_is_exactly_symmetric_and_other_classes_are_not():
    classes = _by_class()
    pairs = classes[0]
    assert len(pairs) > 10
    np.testing.assert_array_equal(pairs, pairs[:, :, ::-1])
    _, index = _colors(pairs[0])
    assert index.max() == 1
    assert ndimage.label(index == 1)[1] == 2  # two separate shapes of one colour
    for k in (1, 2, 3):
        asymmetry = np.abs(classes[k] - classes[k][:, :, ::-1]).mean(axis=(1, 2, 3))
        assert np.mean(asymmetry > 0.01) > 0.9


def test_bar_ends_carry_two_matching_markers():
    for image in _by_class(size=64)[1]:
        colors, index = _colors(image)
        assert len(colors) == 3  # background, bar, markers
        components = {c: ndimage.label(index == c) for c in (1, 2)}
        # One colour forms a single bar, the other exactly two separate markers.
        assert sorted(n for _, n in components.values()) == [1, 2]
        marker_labels = next(labels for labels, n in components.values() if n == 2)
        ends = np.array(ndimage.center_of_mass(marker_labels > 0, marker_labels, [1, 2]))
        # The markers sit at the two extreme ends of the object along its main axis.
        points = np.argwhere(index > 0).astype(float)
        center = points.mean(axis=0)
        axis = np.linalg.svd(points - center, full_matrices=False)[2][0]
        projections = (points - center) @ axis
        marker_projections = np.sort((ends - center) @ axis)
        radius = np.sqrt(np.sum(marker_labels == 1) / np.pi)
        assert marker_projections[0] - projections.min() == pytest.approx(radius, abs=1.5)
        assert projections.max() - marker_projections[1] == pytest.approx(radius, abs=1.5)
        np.testing.assert_allclose(ends.mean(axis=0), center, atol=1.0)


def test_ring_centre_is_marked_with_the_ring_colour():
    for image in _by_class(size=64)[2]:
        colors, index = _colors(image)
        assert len(colors) == 2  # background and one object colour shared by ring and dot
        parts, count = ndimage.label(index == 1)
        assert count == 2
        sizes = ndimage.sum(index == 1, parts, [1, 2])
        ring, dot = (1, 2) if sizes[0] > sizes[1] else (2, 1)
        ring_center = ndimage.center_of_mass(parts == ring)
        dot_center = ndimage.center_of_mass(parts == dot)
        np.testing.assert_allclose(dot_center, ring_center, atol=0.75)


def _orientation(mask):
    """Dominant gradient orientation (radians mod pi) and coherence of a binary image (structure tensor)."""
    gy, gx = np.gradient(mask.astype(float))
    jxx, jyy, jxy = np.sum(gx * gx), np.sum(gy * gy), np.sum(gx * gy)
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)
    coherence = np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy + 1e-12)
    return angle, coherence


def test_stripes_have_one_orientation_everywhere():
    for image in _by_class(size=64)[3]:
        colors, index = _colors(image)
        assert len(colors) == 2
        stripe = index == 1
        quarters = [stripe[:32, :32], stripe[:32, 32:], stripe[32:, :32], stripe[32:, 32:]]
        angles = []
        for quarter in quarters:
            angle, coherence = _orientation(quarter)
            assert coherence > 0.6
            angles.append(angle)
        differences = np.abs(np.angle(np.exp(2j * (np.array(angles) - angles[0])))) / 2
        assert np.degrees(differences).max() < 12
    # The measure can fail: rings have no single orientation.
    ring = _colors(_by_class(size=64)[2][0])[1] == 1
    assert _orientation(ring)[1] < 0.5


def test_random_flip_is_deterministic_and_flips_some_images():
    plain, labels = _generate(64, split="train")
    flipped, _ = _generate(64, split="train", random_flip=True)
    np.testing.assert_array_equal(flipped, _generate(64, split="train", random_flip=True)[0])
    is_flipped = np.all(flipped == plain[:, :, ::-1], axis=(1, 2, 3))
    unchanged = np.all(flipped == plain, axis=(1, 2, 3))
    assert np.all(is_flipped | unchanged)
    asymmetric = labels != 0
    assert 0.2 < np.mean(is_flipped[asymmetric]) < 0.8


def test_pipeline_runs_without_the_autotuning_thread():
    # With autotuning on, destroying the iterator at the end of `fit` can wait up to 60 s for tf.data's autotuning
    # thread (see synthetic.load); the pipeline keeps it off, also when sharded across input pipelines.
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    for dataset in (data.load("synthetic", batch_size=4), data.load("synthetic", batch_size=4, input_context=context),
                    data.load("synthetic", "test", batch_size=4)):
        assert dataset.options().autotune.enabled is False
        images, labels = next(iter(dataset))
        assert images.shape[0] == labels.shape[0] > 0


@pytest.mark.parametrize("pipeline_id", [None, 1])
def test_a_pipeline_started_at_a_position_continues_the_stream(pipeline_id):
    context = None if pipeline_id is None else tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)

    def images_of(dataset, batches):
        return [b[0] for b in dataset.take(batches).as_numpy_iterator()]

    straight = images_of(data.load("synthetic", image_size=16, batch_size=4, seed=3, input_context=context), 5)
    resumed = images_of(data.load("synthetic", image_size=16, batch_size=4, seed=3, input_context=context,
                                   position=6), 2)
    per_batch = len(straight[0])
    flat = np.concatenate(straight)
    np.testing.assert_array_equal(np.concatenate(resumed), flat[6:6 + 2 * per_batch])
    # Pipeline k of n reads indices k, k+n, ...: position p is index seed * 2**32 + k + n * p.
    k, n = (0, 1) if context is None else (pipeline_id, 2)
    expected, _ = synthetic.generate(3 * synthetic.TRAIN_STREAM_SIZE + k + n * np.arange(6, 6 + per_batch), 16)
    np.testing.assert_array_equal(resumed[0], expected.numpy())
