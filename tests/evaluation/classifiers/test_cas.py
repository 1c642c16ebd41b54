"""The Classification Accuracy Score (`sagan_tf.evaluation.classifiers.cas`) on cases whose answer is known:
"generated" images that are real images of the asked class (CAS = the real reference, within noise) and of random
classes (chance)."""

import numpy as np
import pytest

from sagan_tf import data
from sagan_tf.evaluation.classifiers import cas, training_data
from sagan_tf.data import Dataset, DatasetInfo, synthetic
from sagan_tf.errors import UsageError

IMAGE_SIZE = 16
PER_CLASS = 100
CONFIG = cas.CASConfig(samples_per_class=PER_CLASS, steps=150, batch_size=32, seed=3)


def real_image_sampler(random_classes):
    """`sample(labels, rng)` returning real synthetic images from a part of the training stream that the real
    reference does not read (indices from 10**9): of the asked classes, or of random classes (labels shuffled)."""
    images, labels = synthetic.generate(np.arange(10**9, 10**9 + 4 * 2 * PER_CLASS), IMAGE_SIZE, "train")
    images, labels = images.numpy(), labels.numpy()
    unused = {label: list(np.flatnonzero(labels == label)) for label in range(synthetic.NUM_CLASSES)}

    def sample(asked, rng):
        classes = rng.integers(0, synthetic.NUM_CLASSES, len(asked)) if random_classes else asked
        return images[[unused[label].pop() for label in classes]]

    return sample


@pytest.fixture(autouse=True, scope="module")
def _fewer_heldout_images():
    """500 held-out test images (2 batches of 250) instead of 5,000: a binomial spread of 0.02 at chance."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training_data, "MAX_HELDOUT", 500)
        yield


@pytest.fixture(scope="module")
def real_as_generated():
    return cas.classification_accuracy_score(real_image_sampler(False), data.resolve("synthetic"), IMAGE_SIZE, CONFIG,
                                             print_fn=None)


def test_real_images_as_generated_ones_score_the_real_reference(real_as_generated):
    figures, provenance = real_as_generated["figures"], real_as_generated["provenance"]
    # Both classifiers learn from 400 real images: the same initial weights, steps and seeds, other images.
    assert figures["cas/real_top1"] > 0.8
    assert figures["cas/top1"] == pytest.approx(figures["cas/real_top1"], abs=0.05)
    assert figures["cas/ratio_top1"] == figures["cas/top1"] / figures["cas/real_top1"]
    assert figures["cas/top5"] is figures["cas/real_top5"] is figures["cas/ratio_top5"] is None  # 4 classes
    assert figures["cas/chance_top1"] == 0.25
    assert provenance["generated_per_class"] == provenance["real_per_class"] == [PER_CLASS] * 4
    assert provenance["num_heldout"] == 500 and "first 500 images of the 'test' split" in provenance["heldout_split"]
    assert provenance["heldout_seen_by_generator"] is False
    assert (provenance["seed"], provenance["training"]["steps"], provenance["training"]["epochs"]) == (3, 150, 12.0)
    assert provenance["classes"] == list(synthetic.CLASS_NAMES)
    assert provenance["classifier"]["widths"] == [32, 64]
    seconds = provenance["seconds"]
    assert 0 < seconds["generated_classifier"] and 0 < seconds["real_classifier"] < seconds["total"]
    assert real_as_generated["images"] == 2 * (4 * PER_CLASS + 500)


def test_images_whose_labels_are_shuffled_score_chance():
    measured = cas.classification_accuracy_score(
        real_image_sampler(True), data.resolve("synthetic"), IMAGE_SIZE,
        cas.CASConfig(samples_per_class=PER_CLASS, steps=150, batch_size=32, seed=3, real_reference=False),
        print_fn=None)
    figures = measured["figures"]
    assert figures["cas/top1"] == pytest.approx(0.25, abs=0.06)  # the held-out split is balanced
    assert figures["cas/real_top1"] is figures["cas/ratio_top1"] is None
    assert measured["provenance"]["real_per_class"] is None


def test_topk_accuracies_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 9)).astype("float32")
    labels = rng.integers(0, 9, 300)
    batches = [(logits[i:i + 64], labels[i:i + 64]) for i in range(0, 300, 64)]
    ranked = np.argsort(-logits, axis=1)
    top1, top5 = cas.topk_accuracies(lambda x, training: (None, x), batches, 9)
    assert top1 == np.mean(ranked[:, 0] == labels)
    assert top5 == np.mean([label in row[:5] for row, label in zip(ranked, labels)])
    assert cas.topk_accuracies(lambda x, training: (None, x[:, :5]), batches, 5)[1] is None


def test_a_dataset_without_a_held_out_split_is_refused():
    info = DatasetInfo(name="lsun/bedroom", num_classes=3, conditional=True, default_image_size=64, splits=("train",))
    with pytest.raises(UsageError, match=r"lsun/bedroom has no held-out split \(no 'test' or 'validation'"):
        cas.check_heldout_split(Dataset(info))
    cas.check_heldout_split(Dataset(DatasetInfo(name="x", num_classes=3, conditional=True, default_image_size=64,
                                                splits=("train", "test"))))


def test_generated_images_are_seeded_and_as_many_per_class_as_asked():
    def sample(labels, rng):
        return np.tanh(rng.normal(size=(len(labels), 4, 4, 3))) * 0 + (labels[:, None, None, None] / 2.0 - 1.0)

    images, labels = cas.generated_images(sample, [3, 1, 2], 4, seed=1, batch_size=2)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(images[:, 0, 0, 0], np.round((labels / 2.0) * 127.5).astype(np.uint8))
    with pytest.raises(UsageError, match="--cas_samples_per_class"):
        cas.generated_images(sample, [2**30], 16)
