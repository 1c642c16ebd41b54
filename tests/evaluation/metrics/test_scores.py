"""FID, IS and KID (computed by TF-GAN through the bridge) against independent NumPy/SciPy references."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from sagan_tf.evaluation import metrics
from sagan_tf.evaluation.metrics import tfgan_bridge
from tests.tiny import ROOT


def numpy_fid(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def numpy_mmd2_unbiased(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def numpy_inception_score(logits):
    p = scipy.special.softmax(logits.astype(np.float64), axis=1)
    q = p.mean(0)
    return float(np.exp(np.mean(np.sum(scipy.special.rel_entr(p, q), axis=1))))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_bridge_imports_tfgan_without_its_package_init():
    cm = tfgan_bridge.classifier_metrics()
    assert cm.__name__ == "tensorflow_gan.python.eval.classifier_metrics"
    assert callable(cm.frechet_classifier_distance_from_activations)
    # The placeholders are gone: `tensorflow_gan` itself was never imported.
    assert "tensorflow_gan" not in sys.modules
    assert tfgan_bridge.classifier_metrics() is cm


def test_importing_metrics_package_is_lazy():
    # Only what `import sagan_tf.evaluation.metrics` adds to `import sagan_tf` is checked.
    code = (
        "import sys; import sagan_tf; before = set(sys.modules); import sagan_tf.evaluation.metrics; "
        "heavy = [x for x in ('tensorflow', 'tensorflow_probability', 'tensorflow_hub', "
        "'tensorflow_gan.python.eval.classifier_metrics', 'keras') "
        "if x in sys.modules and x not in before]; "
        "print(heavy); assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_frechet_distance_matches_scipy_sqrtm(rng):
    x = rng.normal(size=(300, 12))
    y = rng.normal(size=(250, 12)) @ rng.normal(scale=0.5, size=(12, 12)) + 0.3
    fid = metrics.frechet_distance(x, y)
    assert isinstance(fid, float)
    np.testing.assert_allclose(fid, numpy_fid(x, y), rtol=1e-6)
    assert fid > 1.0  # The sets differ: a wrong sign or a dropped term would show.


def test_frechet_distance_of_a_set_with_itself_is_zero(rng):
    x = rng.normal(size=(200, 8)).astype(np.float32)
    assert abs(metrics.frechet_distance(x, x)) < 1e-6


def test_frechet_distance_from_statistics_matches_activations(rng):
    x, y = rng.normal(size=(100, 6)), rng.normal(loc=0.5, size=(120, 6))
    from_stats = metrics.frechet_distance_from_statistics(
        x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    )
    np.testing.assert_allclose(from_stats, metrics.frechet_distance(x, y), rtol=1e-9)


def test_inception_score_of_uniform_logits_is_one():
    np.testing.assert_allclose(metrics.inception_score(np.zeros((64, 10))), 1.0, atol=1e-9)


@pytest.mark.parametrize("num_classes", [2, 7, 10])
def test_inception_score_of_confident_balanced_logits_is_num_classes(num_classes):
    labels = np.arange(8 * num_classes) % num_classes
    logits = 100.0 * np.eye(num_classes)[labels]
    np.testing.assert_allclose(metrics.inception_score(logits), num_classes, rtol=1e-9)


def test_inception_score_matches_numpy_with_splits(rng):
    logits = rng.normal(scale=3.0, size=(103, 9))
    expected = [numpy_inception_score(logits[a:b]) for a, b in [(0, 34), (34, 68), (68, 103)]]
    np.testing.assert_allclose(metrics.inception_score_splits(logits, 3), expected, rtol=1e-9)
    np.testing.assert_allclose(metrics.inception_score(logits, 3), np.mean(expected), rtol=1e-9)
    np.testing.assert_allclose(metrics.inception_score(logits), numpy_inception_score(logits), rtol=1e-9)


def test_kernel_distance_matches_numpy_unbiased_mmd(rng):
    x = rng.normal(size=(60, 16))
    y = rng.normal(loc=0.4, size=(45, 16))
    kid = metrics.kernel_distance(x, y)
    np.testing.assert_allclose(kid, numpy_mmd2_unbiased(x, y), rtol=1e-9)
    assert kid > 0.01


def test_kernel_distance_block_estimator_averages_blocks(rng):
    x = rng.normal(size=(50, 4))
    y = rng.normal(loc=0.2, size=(41, 4))
    # ceil(50 / 20) = 3 blocks: real sizes 16, 17, 17; fake sizes 13, 14, 14.
    expected = np.mean(
        [
            numpy_mmd2_unbiased(x[0:16], y[0:13]),
            numpy_mmd2_unbiased(x[16:33], y[13:27]),
            numpy_mmd2_unbiased(x[33:50], y[27:41]),
        ]
    )
    np.testing.assert_allclose(metrics.kernel_distance(x, y, max_block_size=20), expected, rtol=1e-9)


def test_tfgan_map_fn_deprecation_is_dropped_and_other_warnings_kept():
    """TF-GAN's KID calls `tf.map_fn(..., back_prop=False)`: TensorFlow's 7-line deprecation warning about that call
    is dropped (end to end: tests/test_cli.py); the warning about another caller, or another argument, is kept."""
    tfgan_bridge.classifier_metrics()
    message = ("From %s: calling %s (from %s) with %s=%s is deprecated and will be removed %s.\nInstructions for "
               "updating:\n%s")  # as tensorflow/python/util/deprecation.py logs it

    def record(location, argument="back_prop"):
        args = (location, "map_fn_v2", "tensorflow.python.ops.map_fn", argument, False, "in a future version", "...")
        return logging.LogRecord("tensorflow", logging.WARNING, "deprecation.py", 1, message, args, None)

    tfgan = os.path.join(tfgan_bridge._package_root(), "python", "eval", "classifier_metrics.py") + ":1157"
    logger = logging.getLogger("tensorflow")
    assert not logger.filter(record(tfgan))
    assert logger.filter(record("/home/me/train.py:12"))
    assert logger.filter(record(tfgan, argument="infer_shape"))
    assert logger.filter(logging.LogRecord("tensorflow", logging.WARNING, "x.py", 1, "a %s warning", ("real",), None))


def test_kernel_distance_of_same_distribution_is_near_zero(rng):
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    assert abs(metrics.kernel_distance(x, y)) < 0.02


@pytest.mark.parametrize(
    "fn, args, message",
    [
        (metrics.frechet_distance, (np.zeros((5, 3, 1)), np.zeros((5, 3))), "must be 2-D"),
        (metrics.frechet_distance, (np.zeros((5, 3)), np.zeros((5, 4))), "same feature dimension"),
        (metrics.frechet_distance, (np.zeros((1, 3)), np.zeros((5, 3))), "at least 2 samples"),
        (metrics.kernel_distance, (np.zeros((5, 3)), np.zeros((5, 2))), "same feature dimension"),
        (metrics.kernel_distance, (np.zeros((3, 2)), np.zeros((40, 2)), 10), "per block"),
        (metrics.inception_score, (np.zeros((5,)),), "must be 2-D"),
        (metrics.inception_score, (np.zeros((5, 3)), 6), "num_splits"),
        (metrics.inception_score, (np.zeros((5, 3)), 0), "num_splits"),
    ],
)
def test_invalid_inputs_raise_clear_errors(fn, args, message):
    with pytest.raises(ValueError, match=message):
        fn(*args)


def test_bridge_says_what_to_install_when_tfgan_is_missing(monkeypatch):
    monkeypatch.setattr(tfgan_bridge, "_classifier_metrics", None)
    monkeypatch.delitem(sys.modules, tfgan_bridge._MODULE, raising=False)  # imported or not by earlier tests
    monkeypatch.setattr(tfgan_bridge.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install tensorflow-gan==2.1.0"):
        tfgan_bridge.classifier_metrics()
