"""Training a domain classifier on a tiny image folder: held-out split, rotation pretext, card, cache, evaluation."""

import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import data
from sagan_tf.evaluation import cache_dirs, classifiers, evaluator as evaluation
from sagan_tf.errors import ClassifierCardError, ClassifierUnavailableError, DatasetError
from sagan_tf.evaluation.classifiers import cache, fingerprint, train, training_data
from sagan_tf.evaluation.classifiers import card as card_module
from tests.tiny import tiny_image_folder

SIZE = 16


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A two-class folder, its domain classifier trained into a cache directory: (dataset, cache dir, path, card)."""
    base = tmp_path_factory.mktemp("domain")
    dataset = f"folder:{tiny_image_folder(base / 'images', per_class=12, size=SIZE)}"
    cache_dir = str(base / "classifiers")
    lines = []
    output = cache.cache_path(cache_dir, dataset, SIZE, fingerprint.dataset_fingerprint(dataset))
    path, card = train.train_domain_classifier(data.resolve(dataset), SIZE, output, steps=40, batch_size=8,
                                               log_every=20, log_fn=lines.append)
    return dataset, cache_dir, path, card, lines


def test_the_trained_classifier_has_a_true_card(labelled):
    dataset, cache_dir, path, card, lines = labelled
    assert path == cache.cache_path(cache_dir, dataset, SIZE, fingerprint.dataset_fingerprint(dataset))
    assert card == card_module.read_card(path)
    assert card["classifier_sha256"] == card_module.file_sha256(path)
    assert (card["task"], card["classes"], card["image_size"], card["dataset"]) == ("labels", ["blue", "red"], SIZE,
                                                                                     dataset)
    assert card["fingerprint"] == fingerprint.dataset_fingerprint(dataset)
    # round(0.15 * 12) = 2 of each class held out; the rest trained on.
    assert (card["num_train"], card["num_heldout"], card["majority_accuracy"]) == (20, 4, 0.5)
    assert card["heldout_accuracy"] == 1.0  # two colours: told apart exactly
    assert card["training"]["steps"] == 40 and card["training_seconds"] > 0
    assert card["architecture"]["widths"] == [32, 64] and card["architecture"]["feature_dim"] == 64
    assert any(line.startswith("step 20/40") for line in lines)
    assert any("held-out accuracy 1.0000 on 4 images" in line for line in lines)


def test_evaluation_finds_checks_and_describes_it(labelled, tmp_path):
    dataset, cache_dir, path, card, _ = labelled
    config = evaluation.EvalConfig(num_samples=8, batch_size=8, classifier="domain", classifier_dir=cache_dir,
                                   cache_dir=str(tmp_path / "stats"), compute_kid=True)
    evaluator = evaluation.Evaluator.create(dataset, SIZE, config, print_fn=None)
    assert evaluator.classifier.card == card and evaluator.tag == f"domain-{card['classifier_sha256'][:8]}"
    provenance = evaluator.provenance()
    assert provenance["classifier"]["content_hash"] == card["classifier_sha256"]
    assert provenance["resize"] == "none: 16x16 is the classifier's input size"
    # The whole folder (fewer than a batch of 250: the last partial batch counts), named by its fingerprint.
    folder_print = fingerprint.dataset_fingerprint(dataset)
    assert (provenance["num_real"], provenance["real_split"], provenance["num_generated"]) == (
        24, f"train[:24]@{folder_print['sha256'][:12]}", 8)
    # The statistics of a moved copy are the same images' (reused); once an image changes they are not.
    copy = shutil.copytree(dataset.split(":", 1)[1], tmp_path / "copy")
    split_of = lambda: evaluation.real_statistics(  # noqa: E731
        f"folder:{copy}", evaluator.classifier, SIZE, num_real=24, cache_dir=str(tmp_path / "stats"),
        print_fn=None).metadata["cache_key"]["split"]
    assert split_of() == provenance["real_split"]
    with open(sorted(glob.glob(os.path.join(copy, "*", "*.png")))[0], "ab") as f:
        f.write(b"\0")  # one byte more: another file size, the same picture
    assert split_of() != provenance["real_split"]
    # Checked against the dataset being evaluated: another size, or other images, are refused.
    with pytest.raises(ClassifierCardError, match="trained on 16x16 images, not on the 32x32"):
        evaluation.load_classifier_for(dataset, path, image_size=32)
    other = f"folder:{tiny_image_folder(tmp_path / 'other', per_class=10, size=SIZE, seed=1)}"
    with pytest.raises(ClassifierCardError, match="trained on other images"):
        evaluation.load_classifier_for(other, path, image_size=SIZE)
    with pytest.raises(ClassifierUnavailableError,
                       match="No domain classifier of .* is cached .*training.train_classifier"):
        evaluation.load_classifier_for(other, "domain", image_size=SIZE, classifier_dir=cache_dir)


def test_ensure_trains_once_and_then_reuses(labelled, monkeypatch):
    dataset, cache_dir, path, _, _ = labelled
    config = evaluation.EvalConfig(classifier="domain", classifier_dir=cache_dir)
    monkeypatch.setattr(train, "train_domain_classifier",
                        lambda *args, **kwargs: pytest.fail("the cached classifier was trained again"))
    assert cache.ensure_domain_classifier(data.resolve(dataset), SIZE, config) == path
    assert cache.ensure_domain_classifier(data.resolve(dataset), SIZE, evaluation.EvalConfig()) is None


def test_ensure_trains_a_missing_one(tmp_path, monkeypatch):
    dataset = f"folder:{tiny_image_folder(tmp_path / 'images', per_class=10, size=SIZE)}"
    calls = []

    def fake_train(*args, **kwargs):
        calls.append(args)
        os.makedirs(os.path.dirname(args[2]), exist_ok=True)
        open(args[2], "w").close()

    monkeypatch.setattr(train, "train_domain_classifier", fake_train)
    config = evaluation.EvalConfig(classifier="domain", classifier_dir=str(tmp_path / "cache"))
    lines = []
    resolved = data.resolve(dataset)
    path = cache.ensure_domain_classifier(resolved, SIZE, config, print_fn=lines.append)
    # It hands on the resolved dataset, so training reuses its scan.
    assert [(c[0], c[1], c[2]) for c in calls] == [(resolved, SIZE, path)] and os.path.exists(path)
    assert "training one" in lines[0]
    cache.ensure_domain_classifier(resolved, SIZE, config, print_fn=lines.append)
    assert len(calls) == 1


def test_too_small_folders_are_refused_with_the_minimum(tmp_path):
    small = tiny_image_folder(tmp_path / "small", per_class=12, size=SIZE)
    for name in sorted(os.listdir(os.path.join(small, "red")))[9:]:
        os.remove(os.path.join(small, "red", name))
    with pytest.raises(DatasetError,
                       match=r"too small .* red \(9\) hold fewer than the minimum of 10 images per class"):
        train.train_domain_classifier(data.resolve(f"folder:{small}"), SIZE, str(tmp_path / "c.keras"), steps=1)
    unlabelled = tiny_image_folder(tmp_path / "unlabelled", classes=(), per_class=39, size=SIZE)
    with pytest.raises(DatasetError, match="holds 39 images and the minimum for an unlabelled folder .* is 40"):
        train.train_domain_classifier(data.resolve(f"folder:{unlabelled}"), SIZE, str(tmp_path / "c.keras"), steps=1)
    assert not os.path.exists(tmp_path / "c.keras")


def test_a_classifier_below_the_required_accuracy_is_not_written(tmp_path):
    from sagan_tf.errors import InsufficientAccuracyError

    dataset = f"folder:{tiny_image_folder(tmp_path / 'images', per_class=10, size=SIZE)}"
    with pytest.raises(InsufficientAccuracyError, match="reached 1.0000 held-out accuracy, below the required 1.01 "):
        train.train_domain_classifier(data.resolve(dataset), SIZE, str(tmp_path / "c.keras"), steps=1,
                                      min_accuracy=1.01)
    assert not os.path.exists(tmp_path / "c.keras")


def test_unlabelled_folders_learn_the_rotation_pretext(tmp_path):
    dataset = f"folder:{tiny_image_folder(tmp_path / 'images', classes=(), per_class=40, size=SIZE)}"
    dataset = data.resolve(dataset)
    images = training_data.classifier_data(dataset, SIZE, batch_size=8)
    assert (images.task, images.classes, images.num_train, images.num_heldout) == (
        "rotation", training_data.ROTATIONS, 34, 24)  # 6 held out, each at 4 rotations
    assert images.majority_accuracy == 0.25
    batch_images, batch_labels = next(iter(images.heldout))
    assert sorted(np.bincount(batch_labels.numpy())) == [6, 6, 6, 6]
    # The held-out set is each image at 0, 90, 180, 270 degrees, in that order.
    for k in range(1, 4):
        np.testing.assert_array_equal(batch_images[6 * k:6 * k + 6], np.rot90(batch_images[:6], k, axes=(1, 2)))
    path, card = train.train_domain_classifier(dataset, SIZE, str(tmp_path / "rot.keras"), steps=60,
                                               batch_size=16, learning_rate=3e-3)
    assert card["task"] == "rotation" and card["classes"] == ["0", "90", "180", "270"]
    assert card["heldout_accuracy"] > 0.25
    assert classifiers.load_classifier(path)(batch_images)[1].shape == (24, 4)


def test_the_held_out_split_depends_only_on_file_names(tmp_path):
    files = [f"/d/{c}/{i}.png" for c in "ab" for i in range(20)]
    labels = [0] * 20 + [1] * 20
    trained, heldout = training_data.split_folder(files, labels, "/d")
    assert len(heldout) == 6 and sorted({l for _, l in heldout}) == [0, 1]
    assert not set(trained) & set(heldout) and len(trained) + len(heldout) == 40
    # Adding images to class b keeps class a's held-out images.
    more_train, more_heldout = training_data.split_folder(files + ["/d/b/new.png"], labels + [1], "/d")
    assert [p for p in more_heldout if p[1] == 0] == [p for p in heldout if p[1] == 0]


def test_rotation_and_augmentation_keep_the_pixels():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (5, 8, 8, 3)).astype("float32"))
    turns = tf.constant([0, 1, 2, 3, 1])
    rotated = training_data._rotate(images, turns).numpy()
    for i, k in enumerate(turns.numpy()):
        np.testing.assert_array_equal(rotated[i], np.rot90(images[i].numpy(), k))
    augmented, labels = training_data._augment(images, tf.zeros(5, tf.int32), tf.constant([1, 2], tf.int64), 8,
                                               rotation=False)
    assert augmented.shape == images.shape and np.all(labels.numpy() == 0)
    # A translation by at most one pixel (8 // 8) with reflect padding, after an optional flip: every output row
    # of the interior appears in the (possibly flipped) input.
    for i in range(5):
        source = images[i].numpy()
        candidates = [source, source[:, ::-1]]
        inner = augmented[i].numpy()[2:6, 2:6]
        assert any(np.array_equal(inner, c[2 + dy:6 + dy, 2 + dx:6 + dx]) for c in candidates
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def test_the_command_trains_a_domain_classifier_for_other_datasets(tmp_path, monkeypatch, capsys):
    from absl import flags

    from training import train_classifier

    calls = []

    def fake_train(dataset, image_size, output, **kwargs):
        calls.append((dataset.name, image_size, output, kwargs["steps"], kwargs["min_accuracy"]))
        return "/cache/x.keras", {"heldout_accuracy": 0.75, "task": "labels", "classes": ["a", "b"],
                                  "num_heldout": 8}

    monkeypatch.setattr(train, "train_domain_classifier", fake_train)
    monkeypatch.setenv(cache_dirs.CACHE_ENV, str(tmp_path / "home"))
    folder = tiny_image_folder(tmp_path / "images", per_class=2, size=8)
    # Without --output: the cache that --classifier=domain reads.
    cached = cache.cache_path(cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS), f"folder:{folder}", 64,
                              fingerprint.dataset_fingerprint(f"folder:{folder}"))
    for argv, expected in [([f"--dataset=folder:{folder}"], (f"folder:{folder}", 64, cached, None, None)),
                           (["--dataset=synthetic", "--image_size=16", "--steps=5", "--output=/o.keras"],
                            ("synthetic", 16, "/o.keras", 5, None))]:
        values = flags.FlagValues()
        train_classifier.define_flags(values)
        values(["train_classifier", *argv])
        assert train_classifier.main(["train_classifier"], values) == 0
        assert calls[-1] == expected  # a folder's default size is the folder loader's 64
    assert "held-out accuracy: 0.7500 (labels, 2 classes, 8 held-out images); wrote /cache/x.keras" in (
        capsys.readouterr().out)


def test_a_training_run_with_evaluation_scans_its_folder_once(labelled, tmp_path, monkeypatch):
    """The input pipeline, the domain-classifier cache, its card check and the real statistics share one scan."""
    from sagan_tf.data import folder
    from tests.tiny import tiny_config, train_options
    from training import train_lib

    dataset, cache_dir, _, _, _ = labelled
    scans = []
    real_scan = folder.scan
    monkeypatch.setattr(folder, "scan", lambda path: scans.append(path) or real_scan(path))
    config = tiny_config(num_classes=2, dataset=dataset, train_steps=1)
    evaluation_config = evaluation.EvalConfig(num_samples=8, batch_size=8, classifier="domain",
                                              classifier_dir=cache_dir, cache_dir=str(tmp_path / "stats"))
    result = train_lib.run(config, train_options(tmp_path / "run", evaluation=evaluation_config))
    assert result.step == 1 and sorted(result.evaluations) == [0, 1]
    assert len(scans) == 1
