"""Precision, recall, density and coverage against a brute-force NumPy reference and their known limits."""

import numpy as np
import pytest

from sagan_tf.evaluation import metrics
from sagan_tf.evaluation.metrics import manifold


def reference(real, fake, k):
    """The four figures straight from the papers' definitions, one pair of points at a time (no blocks, no norms)."""
    def radii(points):
        out = []
        for i, p in enumerate(points):
            distances = sorted(np.sqrt(((p - q) ** 2).sum()) for j, q in enumerate(points) if j != i)
            out.append(distances[k - 1])
        return np.array(out)

    def inside(point, centre, radius):
        return np.sqrt(((point - centre) ** 2).sum()) <= radius

    real_r, fake_r = radii(real), radii(fake)
    precision = np.mean([any(inside(y, x, r) for x, r in zip(real, real_r)) for y in fake])
    recall = np.mean([any(inside(x, y, r) for y, r in zip(fake, fake_r)) for x in real])
    density = sum(inside(y, x, r) for y in fake for x, r in zip(real, real_r)) / (k * len(fake))
    coverage = np.mean([any(inside(y, x, r) for y in fake) for x, r in zip(real, real_r)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k,block_size", [(3, 1024), (3, 7), (1, 5), (5, 64)])
def test_matches_the_brute_force_reference(k, block_size):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(60, 4))
    # Shifted, narrower and partly collapsed: every figure is strictly between its limits.
    fake = np.concatenate([rng.normal(0.7, 0.6, size=(35, 4)), rng.normal(3.0, 0.1, size=(15, 4))])
    got = metrics.precision_recall_density_coverage(real, fake, k=k, block_size=block_size)
    expected = reference(real, fake, k)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1 and 0 < got["coverage"] < 1


def test_radii_match_sorted_distances():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(40, 3)) * 100.0 + 1000.0  # large offset: the norm expansion must stay accurate
    full = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    expected = np.sort(full, axis=1)[:, 3]
    np.testing.assert_allclose(manifold.nearest_neighbour_radii(points, 3, block_size=9), expected, rtol=1e-9)


def test_identical_sets_are_perfect():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 8)) + 50.0
    result = metrics.precision_recall_density_coverage(real, real.copy(), k=3, block_size=64)
    # Each ball holds its centre and the centre's k nearest neighbours (no ties in continuous draws), so summed over
    # the balls each sample is counted k + 1 times on average: density (k + 1) / k for a set against itself.
    # (Density is 1 in expectation for two independent samples of one distribution, Naeem et al. 2020.)
    assert result == {"precision": 1.0, "recall": 1.0, "density": pytest.approx(4 / 3, abs=1e-12), "coverage": 1.0}


def test_independent_samples_of_one_distribution_score_near_one():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    result = metrics.precision_recall_density_coverage(real, fake, k=5)
    assert result["precision"] > 0.85 and result["recall"] > 0.85 and result["coverage"] > 0.85
    assert result["density"] == pytest.approx(1.0, abs=0.1)


def test_disjoint_sets_score_zero():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(100, 5))
    fake = rng.normal(size=(80, 5)) + 100.0
    assert metrics.precision_recall_density_coverage(real, fake) == {
        "precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_mode_collapse_keeps_precision_and_loses_recall():
    """Generated samples from one of two real modes: faithful (high precision) but half the modes (low recall)."""
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(20, 1, (150, 2))])
    fake = rng.normal(0, 1, (300, 2))
    result = metrics.precision_recall_density_coverage(real, fake)
    assert result["precision"] > 0.9
    assert 0.35 < result["recall"] < 0.55
    assert 0.35 < result["coverage"] < 0.55


def test_given_real_radii_are_used():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(40, 3))
    radii = manifold.nearest_neighbour_radii(real, 3)
    assert (metrics.precision_recall_density_coverage(real, fake, real_radii=radii)
            == metrics.precision_recall_density_coverage(real, fake))
    # Zero radii: no generated point lies inside a real ball (they are continuous draws).
    zero = metrics.precision_recall_density_coverage(real, fake, real_radii=np.zeros(50))
    assert zero["precision"] == zero["density"] == zero["coverage"] == 0.0


@pytest.mark.parametrize("call,message", [
    (lambda: metrics.precision_recall_density_coverage(np.zeros((10, 3)), np.zeros((10, 4))), "dimension"),
    (lambda: metrics.precision_recall_density_coverage(np.zeros((3, 3)), np.zeros((10, 3))), "at least 4"),
    (lambda: metrics.precision_recall_density_coverage(np.zeros((10, 3)), np.zeros((10, 3)), k=0), "`k`"),
    (lambda: metrics.precision_recall_density_coverage(np.zeros((10, 3)), np.zeros((10, 3)), block_size=0),
     "block_size"),
    (lambda: metrics.precision_recall_density_coverage(np.zeros((10, 3)), np.zeros((10, 3)),
                                                        real_radii=np.zeros(9)), "real_radii"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
