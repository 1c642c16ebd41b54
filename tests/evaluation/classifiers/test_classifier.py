"""Classifiers load through `load_classifier` like TF-GAN's Inception would, and give the right numbers."""

import hashlib
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.evaluation import classifiers
from sagan_tf.errors import ClassifierUnavailableError

SIZE, FEATURES, CLASSES = 8, 6, 5


def make_weights():
    rng = np.random.default_rng(0)
    w1 = rng.normal(scale=0.2, size=(SIZE * SIZE * 3, FEATURES)).astype(np.float32)
    w2 = rng.normal(size=(FEATURES, CLASSES)).astype(np.float32)
    return w1, w2


def reference_outputs(images):
    """NumPy version of the fake Inception: pool_3 = tanh(flatten(x) W1), logits = pool_3 W2."""
    w1, w2 = make_weights()
    pool = np.tanh(images.reshape(len(images), -1).astype(np.float64) @ w1)
    return pool, pool @ w2


class FakeInception(tf.Module):
    """A tiny stand-in with TF-GAN Inception's interface: images in [-1, 1] -> {'pool_3', 'logits'}."""

    def __init__(self):
        super().__init__()
        w1, w2 = make_weights()
        self.w1, self.w2 = tf.Variable(w1), tf.Variable(w2)

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
    def serve(self, images):
        pool = tf.tanh(tf.reshape(images, [-1, SIZE * SIZE * 3]) @ self.w1)
        return {"pool_3": tf.reshape(pool, [-1, 1, 1, FEATURES]), "logits": pool @ self.w2}


def save_fake_inception(path, callable_module=False):
    module = FakeInception()
    if callable_module:
        module.__call__ = module.serve  # Called directly, as TF-GAN calls the real Inception module.
        tf.saved_model.save(module, str(path))
    else:
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


def save_fake_keras(path):
    w1, w2 = make_weights()
    images = keras.Input((SIZE, SIZE, 3))
    pool = keras.layers.Dense(FEATURES, activation="tanh", use_bias=False, name="pool_3")(
        keras.layers.Flatten()(images)
    )
    logits = keras.layers.Dense(CLASSES, use_bias=False, name="logits")(pool)
    model = keras.Model(images, [pool, logits])
    model.get_layer("pool_3").set_weights([w1])
    model.get_layer("logits").set_weights([w2])
    model.save(str(path))
    return str(path)


def numpy_resize_bilinear(images, size):
    """Bilinear resize with half-pixel centers (tf.image.resize's convention), separable."""

    def weights(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), lo] += 1 - (src - lo)
        m[np.arange(n_out), hi] += src - lo
        return m

    rows, cols = weights(images.shape[1], size), weights(images.shape[2], size)
    return np.einsum("ph,nhwc,qw->npqc", rows, images.astype(np.float64), cols)


@pytest.fixture
def images():
    return np.random.default_rng(1).uniform(-1, 1, size=(5, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("callable_module", [False, True])
def test_saved_model_loads_and_matches_reference(tmp_path, images, callable_module):
    path = save_fake_inception(tmp_path / "inception", callable_module)
    classifier = classifiers.load_classifier(path, batch_size=2)
    assert classifier.image_size == (SIZE, SIZE)  # Read from the input signature.
    assert classifier.classifier_id.startswith("savedmodel:")
    features, logits = classifier(images)
    pool, expected_logits = reference_outputs(images)
    assert features.shape == (5, FEATURES) and logits.shape == (5, CLASSES)
    np.testing.assert_allclose(features, pool, atol=1e-5)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5)


def test_saved_model_loads_without_tensorflow_hub(tmp_path, monkeypatch, images):
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # `import tensorflow_hub` now fails.
    classifier = classifiers.load_classifier(save_fake_inception(tmp_path / "inception"))
    np.testing.assert_allclose(classifier(images)[1], reference_outputs(images)[1], atol=1e-5)


def test_images_are_resized_bilinearly(tmp_path):
    classifier = classifiers.load_classifier(save_fake_inception(tmp_path / "inception"))
    small = np.random.default_rng(2).uniform(-1, 1, size=(3, 5, 6, 3)).astype(np.float32)
    features, logits = classifier(small)
    pool, expected_logits = reference_outputs(numpy_resize_bilinear(small, SIZE))
    np.testing.assert_allclose(features, pool, atol=1e-5)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5)


def test_keras_file_loads_and_matches_reference(tmp_path, images):
    path = save_fake_keras(tmp_path / "classifier.keras")
    classifier = classifiers.load_classifier(path)
    assert classifier.image_size == (SIZE, SIZE)
    assert classifier.classifier_id.startswith("keras:")
    features, logits = classifier(images)
    pool, expected_logits = reference_outputs(images)
    np.testing.assert_allclose(features, pool, atol=1e-5)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5)


def test_default_handle_loads_from_the_tfhub_cache(tmp_path, monkeypatch, images):
    # What a user without network does: put the downloaded module where TF-Hub caches the handle.
    pytest.importorskip("tensorflow_hub")
    cache = tmp_path / "tfhub_cache"
    name = hashlib.sha1(classifiers.INCEPTION_HANDLE.encode("utf-8")).hexdigest()
    shutil.copytree(save_fake_inception(tmp_path / "inception", callable_module=True), cache / name)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    classifier = classifiers.load_classifier()
    assert classifier.classifier_id == classifiers.INCEPTION_HANDLE
    np.testing.assert_allclose(classifier(images)[1], reference_outputs(images)[1], atol=1e-5)


def test_unreachable_handle_explains_how_to_work_offline(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_hub")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))
    with pytest.raises(ClassifierUnavailableError, match="without network access") as info:
        classifiers.load_classifier("https://tfhub.invalid/tensorflow/tfgan/eval/inception/1")
    assert "hub.resolve" in str(info.value) and "TFHUB_CACHE_DIR" in str(info.value)


@pytest.mark.parametrize("name", ["missing_dir", "missing.keras"])
def test_missing_local_classifier_gives_a_clear_error(tmp_path, name):
    with pytest.raises(ClassifierUnavailableError, match="No (SavedModel directory|such .keras)"):
        classifiers.load_classifier(str(tmp_path / name))


def test_wrong_output_keys_and_sizes_are_reported(tmp_path, images):
    path = save_fake_inception(tmp_path / "inception")
    with pytest.raises(ValueError, match="takes 8x8 images"):
        classifiers.load_classifier(path, image_size=299)
    classifier = classifiers.load_classifier(path, feature_key="pool")
    with pytest.raises(ValueError, match="without \\['pool'\\]"):
        classifier(images)


def test_images_outside_minus_one_one_are_rejected(tmp_path, images):
    classifier = classifiers.load_classifier(save_fake_inception(tmp_path / "inception"))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        classifier(images * 127.5 + 127.5)
