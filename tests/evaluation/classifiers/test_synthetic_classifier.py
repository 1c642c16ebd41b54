"""The shipped synthetic-domain classifier: present, small, accurate, and its features make FID/IS meaningful."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from sagan_tf.evaluation import classifiers, metrics
from sagan_tf.data import synthetic
from sagan_tf.errors import ClassifierUnavailableError
from sagan_tf.evaluation.classifiers import synthetic as synthetic_classifier
from sagan_tf.evaluation.classifiers import train
from tests.tiny import ROOT
from training import train_classifier

REPO_ROOT = str(ROOT)
NUM_TEST = 1024


@pytest.fixture(scope="module")
def classifier():
    return classifiers.load_classifier("synthetic", batch_size=256)


@pytest.fixture(scope="module")
def test_data():
    images, labels = synthetic.generate(np.arange(NUM_TEST), 32, "test")
    return images.numpy(), labels.numpy()


@pytest.fixture(scope="module")
def outputs(classifier, test_data):
    return classifier(test_data[0])


def test_shipped_file_is_in_the_package_and_under_2_mb():
    path = classifiers.SYNTHETIC_CLASSIFIER_PATH
    assert os.path.isfile(path)
    assert os.path.dirname(os.path.dirname(path)) == os.path.dirname(os.path.abspath(synthetic_classifier.__file__))
    assert os.path.getsize(path) < 2 * 1024 * 1024


def test_loads_with_a_content_id(classifier):
    with open(classifiers.SYNTHETIC_CLASSIFIER_PATH, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    assert classifier.classifier_id == f"synthetic-classifier:{digest}"
    assert classifier.image_size == (32, 32)
    assert classifiers.load_classifier("synthetic", classifier_id="mine").classifier_id == "mine"


def test_classifies_held_out_images(outputs, test_data):
    features, logits = outputs
    labels = test_data[1][:512]
    assert features.shape == (NUM_TEST, classifiers.SYNTHETIC_FEATURE_DIM) == (NUM_TEST, 128)
    assert logits.shape == (NUM_TEST, synthetic.NUM_CLASSES)
    accuracy = np.mean(np.argmax(logits[:512], axis=-1) == labels)
    assert accuracy >= 0.95, accuracy


def test_logits_are_a_linear_function_of_the_features(outputs):
    """The features are exactly what the logit layer sees (pooled ReLU activations, so non-negative)."""
    import keras

    features, logits = outputs
    model = keras.saving.load_model(classifiers.SYNTHETIC_CLASSIFIER_PATH, compile=False)
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("logits").get_weights())
    np.testing.assert_allclose(features.astype(np.float64) @ kernel + bias, logits, atol=1e-3, rtol=1e-4)
    assert features.min() >= 0.0
    # A rich representation: many feature dimensions vary across real images.
    assert np.sum(features.std(axis=0) > 1e-3 * features.std()) >= 64


def test_fid_separates_real_images_from_broken_ones(classifier, outputs, test_data):
    features = outputs[0]
    images = test_data[0][:512]
    rng = np.random.default_rng(0)
    flat = images.reshape(len(images), -1, 3)
    shuffled = np.stack([f[rng.permutation(f.shape[0])] for f in flat]).reshape(images.shape)
    flat_colour = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)

    real_vs_real = metrics.frechet_distance(features[:512], features[512:])
    real_vs_shuffled = metrics.frechet_distance(features[512:], classifier(shuffled)[0])
    real_vs_flat = metrics.frechet_distance(features[512:], classifier(flat_colour)[0])
    assert real_vs_shuffled > 100 * real_vs_real, (real_vs_real, real_vs_shuffled)
    assert real_vs_flat > 100 * real_vs_real, (real_vs_real, real_vs_flat)


def test_inception_score_of_real_images_is_close_to_the_number_of_classes(outputs):
    score = metrics.inception_score(outputs[1])
    assert 3.9 < score <= 4.0 + 1e-6, score  # IS <= number of classes; measured 3.997.


def test_missing_asset_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_classifier, "SYNTHETIC_CLASSIFIER_PATH", str(tmp_path / "missing.keras"))
    with pytest.raises(ClassifierUnavailableError, match="python -m training.train_classifier"):
        classifiers.load_classifier("synthetic")


def test_build_validates_arguments():
    with pytest.raises(ValueError, match="Received: image_size=30"):
        classifiers.build_synthetic_classifier(image_size=30)
    with pytest.raises(ValueError, match="Received: widths=()"):
        classifiers.build_synthetic_classifier(widths=())


def test_train_saves_a_loadable_classifier_and_reports_its_accuracy(tmp_path):
    path = str(tmp_path / "sub" / "tiny.keras")
    lines = []
    accuracy = train.train_synthetic_classifier(
        path, steps=3, batch_size=8, seed=1, widths=(8, 16), eval_examples=32, log_every=2,
        log_fn=lines.append)
    assert [line.split(":")[0] for line in lines[:2]] == ["step 2/3", "step 3/3"]
    loaded = classifiers.load_classifier(path)
    images, labels = synthetic.generate(np.arange(32), 32, "test")
    features, logits = loaded(images)
    assert features.shape == (32, 16) and logits.shape == (32, 4)
    assert accuracy == np.mean(np.argmax(logits, axis=-1) == labels.numpy())


def test_command_refuses_to_write_below_min_accuracy(tmp_path):
    output = tmp_path / "refused.keras"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "training.train_classifier", f"--output={output}", "--steps=2",
         "--batch_size=8", "--eval_examples=16", "--min_accuracy=1.01"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "below the required 1.01" in result.stderr and "not written" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()
    assert not list(tmp_path.iterdir())  # No temporary file left behind either.


def test_command_defines_its_flags_only_when_run():
    code = ("from absl import flags; import training.train_classifier; "
            "print([n for n in ('output', 'steps', 'min_accuracy', 'eval_examples') if n in flags.FLAGS])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
    values = flags.FlagValues()
    train_classifier.define_flags(values)
    values(["train_classifier", "--steps=7"])
    assert (values.dataset, values.steps, values.batch_size, values.eval_examples) == ("synthetic", 7, 64, None)


def test_the_default_command_remakes_the_shipped_classifier(monkeypatch, capsys):
    """No flags: the synthetic recipe, written to the shipped file, refused below 95% accuracy."""
    calls = []
    monkeypatch.setattr(train, "train_synthetic_classifier",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or 0.99)
    monkeypatch.setattr(train, "train_domain_classifier",
                        lambda *args, **kwargs: pytest.fail("the shipped classifier is not a domain classifier"))
    values = flags.FlagValues()
    train_classifier.define_flags(values)
    values(["train_classifier"])
    assert train_classifier.main(["train_classifier"], values) == 0
    (args, kwargs), = calls
    assert args[:4] == (classifiers.SYNTHETIC_CLASSIFIER_PATH, 2000, 64, 0) and kwargs["min_accuracy"] == 0.95
    assert "held-out accuracy: 0.9900" in capsys.readouterr().out
