"""Per-class FID, KID, precision/recall and class accuracy (`sagan_tf.evaluation.metrics.per_class`) against
NumPy/SciPy."""

import numpy as np
import pytest
import scipy.linalg

from sagan_tf.evaluation.metrics import per_class


def reference_fid(real, fake):
    """Heusel et al. 2017, eq. 6, with SciPy's matrix square root."""
    m1, m2 = real.mean(0), fake.mean(0)
    c1, c2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * root))


def reference_kid(real, fake):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018), one block."""
    d = real.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((real, real), (fake, fake), (real, fake)))
    m, n = len(real), len(fake)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def reference_precision_recall(real, fake, k=3):
    """Kynkaenniemi et al. 2019 by brute force: a sample is not its own neighbour."""
    def radii(x):
        distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(distances, axis=1)[:, k]

    cross = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # [fake, real]
    precision = np.mean((cross <= radii(real)[None]).any(axis=1))
    recall = np.mean((cross <= radii(fake)[:, None]).any(axis=0))
    return precision, recall


def test_per_class_fid_kid_precision_recall_match_references_and_flag_small_classes():
    rng = np.random.default_rng(0)
    d = 6
    # Class 0: 40 images of each side (covariance full rank); class 1: 5 real images (rank 4 < 6), 30 generated.
    real = {0: rng.normal(size=(40, d)), 1: rng.normal(1.0, 2.0, size=(5, d))}
    fake = {0: rng.normal(0.3, 1.1, size=(40, d)), 1: rng.normal(size=(30, d))}
    for c in (0, 1):
        figures = per_class.per_class_figures(real[c], fake[c])
        assert figures["fid"] == pytest.approx(reference_fid(real[c], fake[c]), rel=1e-6)
        assert figures["kid"] == pytest.approx(reference_kid(real[c], fake[c]), rel=1e-9, abs=1e-12)
        precision, recall = reference_precision_recall(real[c], fake[c])
        assert (figures["precision"], figures["recall"]) == pytest.approx((precision, recall))
        assert (figures["count_real"], figures["count_generated"]) == (len(real[c]), len(fake[c]))
        assert figures["rank_deficient"] == (c == 1)
    # The mean intra-class FID is the plain mean of the classes' FIDs.
    fids = [per_class.per_class_figures(real[c], fake[c])["fid"] for c in (0, 1)]
    assert per_class.mean_over_classes(fids + [None]) == pytest.approx(np.mean(fids))


def test_counts_too_small_leave_figures_out():
    rng = np.random.default_rng(1)
    figures = per_class.per_class_figures(rng.normal(size=(3, 4)), rng.normal(size=(10, 4)))
    assert figures["fid"] is not None and figures["kid"] is not None  # 2 of each side are enough
    assert figures["precision"] is None and figures["recall"] is None  # k + 1 = 4 real images are not there
    one = per_class.per_class_figures(rng.normal(size=(1, 4)), rng.normal(size=(10, 4)))
    assert one["fid"] is None and one["kid"] is None and one["rank_deficient"]
    assert per_class.knn_allowed(4, 4) and not per_class.knn_allowed(3, 100)
    assert per_class.rank_deficient(128, 128) and not per_class.rank_deficient(129, 128)


def test_class_accuracy_top1_top5_per_class_on_a_hand_built_case():
    logits = np.zeros((4, 7))
    # Row 0, label 2: its logit is the largest -> top-1 and top-5.
    logits[0] = [0, 1, 9, 2, 3, 4, 5]
    # Row 1, label 2: 4 logits are larger (rank 5) -> top-5 only.
    logits[1] = [8, 7, 3, 6, 5, 1, 0]
    # Row 2, label 0: 5 logits are larger (rank 6) -> neither.
    logits[2] = [1, 2, 3, 4, 5, 6, 0]
    # Row 3, label 5: tied for the largest -> counts for the label (top-1).
    logits[3] = [0, 0, 0, 0, 0, 4, 4]
    labels = np.array([2, 2, 0, 5])
    result = per_class.class_accuracy(logits, labels, classes=[0, 2, 5, 6])
    assert (result["top1"], result["top5"], result["chance"], result["count"]) == (0.5, 0.75, 1 / 7, 4)
    assert result["per_class"] == {0: {"count": 1, "top1": 0.0, "top5": 0.0},
                                   2: {"count": 2, "top1": 0.5, "top5": 1.0},
                                   5: {"count": 1, "top1": 1.0, "top5": 1.0},
                                   6: {"count": 0, "top1": None, "top5": None}}
    # Five classes or fewer: no top-5 (it would be 1 whatever the images).
    assert per_class.class_accuracy(logits[:, :5], np.array([2, 2, 0, 4]))["top5"] is None
    with pytest.raises(ValueError, match="Labels must be in"):
        per_class.class_accuracy(logits, np.array([0, 1, 2, 7]))


def test_inception_logits_are_mapped_to_the_dataset_labels_by_synset():
    label_map = per_class.inception_label_map()
    # The shipped map: 1000 synsets onto 1..1000, not in synset order (tench, TFDS label 0, is Inception's 449).
    assert len(label_map) == 1000 and sorted(label_map.values()) == list(range(1, 1001))
    assert (label_map["n01440764"], label_map["n01443537"], label_map["n01484850"]) == (449, 450, 442)
    synsets = sorted(label_map)  # TFDS imagenet2012's label order
    indices = per_class.inception_logit_indices(synsets, label_map)
    # Hand-built logits: image i puts its largest logit on the column of label (3 * i) % 1000, and a larger one
    # still on the background (0) and an unused column (1005), which a prediction must never be.
    labels = np.array([0, 1, 2, 999])
    logits = np.zeros((4, per_class.INCEPTION_NUM_LOGITS))
    for row, label in enumerate(labels):
        logits[row, label_map[synsets[(3 * label) % 1000]]] = 5.0
        logits[row, [0, 1005]] = 9.0
    mapped = per_class.inception_imagenet_logits(logits, indices)
    assert mapped.shape == (4, 1000)
    np.testing.assert_array_equal(mapped.argmax(axis=1), (3 * labels) % 1000)
    assert per_class.class_accuracy(mapped, (3 * labels) % 1000)["top1"] == 1.0
    assert per_class.class_accuracy(mapped, labels)["top1"] == 0.25  # only label 0 maps onto itself
    with pytest.raises(ValueError, match="no logit for"):
        per_class.inception_logit_indices(["cat"], label_map)
    with pytest.raises(ValueError, match="1008 logits"):
        per_class.inception_imagenet_logits(np.zeros((1, 1001)), indices)


def test_class_accuracy_is_computed_only_with_logits_that_are_the_dataset_classes():
    from sagan_tf.evaluation import class_logits, per_class_evaluator
    from sagan_tf.evaluation.classifiers import Classifier

    def classifier(name, card=None):
        return Classifier(lambda x: (np.zeros((len(x), 2)), np.zeros((len(x), 5))), 8, name, name=name, card=card)

    synsets = sorted(per_class.inception_label_map())
    to_logits, how = class_logits.class_logits(classifier("inception"), "imagenet2012", synsets, 1000)
    logits = np.zeros((1, per_class.INCEPTION_NUM_LOGITS))
    logits[0, 449] = 1.0  # tench
    assert to_logits(logits).argmax() == 0 and "synset" in how
    for spec, dataset, names, pattern in [
            (classifier("inception"), "cifar10", ["airplane"], "not those of cifar10"),
            (classifier("inception"), "imagenet2012", ["tench"], "no logit for"),
            (classifier("keras"), "synthetic", None, "not known to be the classes of synthetic"),
            (classifier("domain", {"task": "rotation", "classes": ["0", "90", "180", "270"]}), "folder:x", None,
             "not known")]:
        to_logits, why = class_logits.class_logits(spec, dataset, names, 4)
        assert to_logits is None and pattern in why, why
    to_logits, _ = class_logits.class_logits(classifier("domain", {"task": "labels", "classes": list("abcd")}),
                                            "folder:x", None, 4)
    np.testing.assert_array_equal(to_logits(np.arange(10.0).reshape(2, 5)), [[0, 1, 2, 3], [5, 6, 7, 8]])
    assert list(per_class_evaluator.choose_classes(4)) == [0, 1, 2, 3]
    assert list(per_class_evaluator.choose_classes(1000, 3, seed=7)) == sorted(
        np.random.default_rng(7).choice(1000, 3, replace=False))
