"""Domain classifiers: the network, the card that ties a file to its dataset, the cache path, the loader's checks."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from sagan_tf.evaluation import cache_dirs, classifiers
from sagan_tf.errors import ClassifierCardError, ClassifierUnavailableError
from sagan_tf.evaluation.classifiers import cache, fingerprint, network, synthetic, train
from sagan_tf.evaluation.classifiers import card as card_module
from tests.tiny import tiny_image_folder


@pytest.mark.parametrize("size,widths", [(8, (32,)), (12, (32,)), (16, (32, 64)), (32, (32, 64, 128)),
                                         (64, (32, 64, 128, 128)), (48, (32, 64, 128)),
                                         (1024, (32, 64, 128, 128, 128, 128))])
def test_default_widths_bring_the_image_down_to_8x8(size, widths):
    assert network.default_widths(size) == widths


def test_network_outputs_pooled_features_and_logits():
    model = network.build_domain_classifier(16, 3)
    images = np.random.default_rng(0).uniform(-1, 1, (5, 16, 16, 3)).astype("float32")
    features, logits = (keras.ops.convert_to_numpy(x) for x in model(images, training=False))
    assert features.shape == (5, 64) and logits.shape == (5, 3) and features.min() >= 0.0  # pooled ReLUs
    kernel, bias = model.get_layer("logits").get_weights()
    np.testing.assert_allclose(features @ kernel + bias, logits, rtol=1e-5, atol=1e-5)


def test_the_synthetic_builder_still_makes_the_shipped_architecture():
    shipped = keras.saving.load_model(synthetic.SYNTHETIC_CLASSIFIER_PATH, compile=False)
    built = synthetic.build_synthetic_classifier()
    assert built.name == shipped.name == "synthetic_classifier"
    assert [(layer.name, [w.shape for w in layer.weights]) for layer in built.layers] == [
        (layer.name, [w.shape for w in layer.weights]) for layer in shipped.layers]


@pytest.fixture
def carded(tmp_path):
    """A tiny domain classifier file with a card naming a folder dataset: (path, card, folder name)."""
    folder = tiny_image_folder(tmp_path / "images", per_class=3, size=8)
    path = str(tmp_path / "domain.keras")
    network.build_domain_classifier(8, 2).save(path)
    dataset = f"folder:{folder}"
    card = card_module.new_card(dataset, fingerprint.dataset_fingerprint(dataset), "labels", ("blue", "red"), 8,
                                      "test", {}, {}, 4, 2, 1.0, 0.5, 1.5)
    return path, card_module.write_card(path, card), dataset


def test_a_carded_file_loads_as_a_domain_classifier(carded):
    path, card, _ = carded
    digest = card_module.file_sha256(path)
    assert card["classifier_sha256"] == digest and card["format"] == card_module.CARD_FORMAT
    assert json.load(open(card_module.card_path(path))) == card
    classifier = classifiers.load_classifier(path)
    assert (classifier.name, classifier.content_hash, classifier.card) == ("domain", digest, card)
    assert classifier.tag == f"domain-{digest[:8]}" and classifier.classifier_id == f"domain:{digest[:16]}"
    assert classifier.describe()["card"] == card and classifier.describe()["input_size"] == [8, 8]
    # The same network without a card is a plain .keras classifier with its own tag.
    os.remove(card_module.card_path(path))
    plain = classifiers.load_classifier(path)
    assert (plain.name, plain.card, plain.tag) == ("keras", None, f"keras-{digest[:8]}")


def test_a_file_that_does_not_match_its_card_is_refused(carded, tmp_path):
    path, _, _ = carded
    other = str(tmp_path / "other.keras")
    network.build_domain_classifier(8, 2, widths=(16,)).save(other)
    shutil.copyfile(other, path)  # replaced behind the card's back
    with pytest.raises(ClassifierCardError, match=r"does not match its card .* corrupt or was replaced"):
        classifiers.load_classifier(path)


def test_corrupt_files_and_cards_are_clear_errors(carded, tmp_path):
    path, _, _ = carded
    with open(card_module.card_path(path), "w") as handle:
        handle.write("{not json")
    with pytest.raises(ClassifierCardError, match=r"card .* cannot be read"):
        classifiers.load_classifier(path)
    with open(card_module.card_path(path), "w") as handle:
        json.dump({"format": "something else"}, handle)
    with pytest.raises(ClassifierCardError, match="not a domain classifier card"):
        classifiers.load_classifier(path)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ClassifierUnavailableError, match="cannot be loaded: it is corrupt"):
        classifiers.load_classifier(str(garbage))


def test_a_card_must_name_the_evaluated_images_and_size(carded, tmp_path):
    _, card, dataset = carded
    card_module.check_card(card, fingerprint.dataset_fingerprint(dataset), 8, "x")  # matches: no error
    with pytest.raises(ClassifierCardError, match=r"trained on 8x8 images, not on the 16x16"):
        card_module.check_card(card, fingerprint.dataset_fingerprint(dataset), 16, "x")
    other = tiny_image_folder(tmp_path / "other", per_class=4, size=8)
    with pytest.raises(ClassifierCardError, match="trained on other images"):
        card_module.check_card(card, fingerprint.dataset_fingerprint(f"folder:{other}"), 8, "x")
    with pytest.raises(ClassifierCardError, match="trained on other images"):
        card_module.check_card(card, fingerprint.dataset_fingerprint("synthetic"), 8, "x")


def test_the_cache_path_follows_the_images_and_size_not_the_folder_path(tmp_path):
    first = tiny_image_folder(tmp_path / "a" / "icons", per_class=3, size=8)
    moved = shutil.copytree(first, tmp_path / "b" / "icons")
    prints = {name: fingerprint.dataset_fingerprint(f"folder:{name}") for name in (first, moved)}
    path = lambda name, size=32: cache.cache_path("/cache", f"folder:{name}", size, prints[name])  # noqa
    assert path(first) == path(moved) and path(first).startswith("/cache/icons-32-")
    assert path(first) != path(first, 64)
    os.remove(os.path.join(moved, "red", "image_000.png"))
    changed = fingerprint.dataset_fingerprint(f"folder:{moved}")
    # Same dataset name and size: only the fingerprint of the images differs.
    assert cache.cache_path("/cache", f"folder:{moved}", 32, changed) != path(moved)


def test_default_steps():
    assert train.default_steps(2000, 64) == 938  # 30 epochs
    assert train.default_steps(24, 64) == 300 and train.default_steps(10**6, 64) == 3000
    assert train.default_steps(None, 64) == 3000


def test_the_cache_sits_beside_the_real_statistics(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGAN_TF_CACHE", str(tmp_path))
    assert cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS) == str(tmp_path / "domain_classifiers")
    assert cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS) == str(tmp_path / "real_stats")


def test_a_cache_written_by_the_old_layout_is_found_and_loads(tmp_path, monkeypatch):
    """A classifier cached before the classifiers had their own package (their modules were in metrics/ and
    training/): same file name, a card naming the old builder's module; it is reused, not trained again."""
    import hashlib

    from sagan_tf import data
    from sagan_tf.evaluation import evaluator as evaluation

    dataset = data.resolve(f"folder:{tiny_image_folder(tmp_path / 'icons', per_class=3, size=8)}")
    images = dataset.fingerprint()
    # The old layout's file name: <dataset>-<size>-<16 hex digits of the key>, the key written out as it was.
    key = json.dumps({"fingerprint": {"kind": "folder", "sha256": images["sha256"]}, "image_size": 8,
                      "format": "sagan_tf.domain_classifier/1"}, sort_keys=True)
    old_path = tmp_path / "cache" / f"icons-8-{hashlib.sha256(key.encode()).hexdigest()[:16]}.keras"
    old_path.parent.mkdir()
    network.build_domain_classifier(8, 2).save(str(old_path))
    old_card = {
        "architecture": {"builder": "sagan_tf.metrics.domain_classifier.build_domain_classifier",
                         "convs_per_stage": 2, "feature_dim": 32, "widths": [32]},
        "classes": ["blue", "red"], "classifier_sha256": hashlib.sha256(old_path.read_bytes()).hexdigest(),
        "created": "2026-12-06T20:33:21+00:00", "dataset": dataset.name, "fingerprint": images,
        "format": "sagan_tf.domain_classifier/1", "heldout_accuracy": 1.0, "image_size": 8, "majority_accuracy": 0.5,
        "num_heldout": 4, "num_train": 2, "preprocessing": "... resized bilinearly by sagan_tf.metrics.Classifier",
        "task": "labels", "training": {"batch_size": 8, "steps": 40, "seed": 0}, "training_seconds": 7.3}
    (tmp_path / "cache" / old_path.name.replace(".keras", ".card.json")).write_text(json.dumps(old_card, indent=1))
    monkeypatch.setattr(train, "train_domain_classifier", lambda *args, **kwargs: pytest.fail("trained again"))
    config = evaluation.EvalConfig(classifier="domain", classifier_dir=str(tmp_path / "cache"))
    assert cache.ensure_domain_classifier(dataset, 8, config) == str(old_path)
    classifier = evaluation.load_classifier_for(dataset, "domain", image_size=8, classifier_dir=str(tmp_path / "cache"))
    assert (classifier.name, classifier.card, classifier.image_size) == ("domain", old_card, (8, 8))
    features, logits = classifier(np.zeros((2, 8, 8, 3), "float32"))
    assert features.shape == (2, 32) and logits.shape == (2, 2)
