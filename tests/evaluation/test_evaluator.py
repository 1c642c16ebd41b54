"""sagan_tf.evaluation: streaming FID/IS/KID/precision/recall of a generator against NumPy/SciPy one-shot references,
cached real stats, provenance."""

import math

import numpy as np
import pytest
import scipy.linalg

import keras

from sagan_tf import data
from sagan_tf.evaluation import cache_dirs, classifiers, evaluator as evaluation, metrics
from sagan_tf.errors import ClassifierUnavailableError, UsageError
from sagan_tf.run.restore import build_generator
from tests.tiny import tiny_classifier_file, tiny_model

IMAGE_SIZE = 16


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return classifiers.load_classifier(tiny_classifier_file(tmp_path_factory.mktemp("clf") / "tiny.keras"))


def real_activations(classifier, num_real, batch_size=16):
    """The features of the first `num_real` synthetic training images, read independently of `real_statistics`."""
    images = data.load("synthetic", "train", image_size=IMAGE_SIZE, batch_size=num_real, shuffle=False,
                       random_flip=False, repeat=False)
    batch, _ = next(iter(images))
    return classifier(batch)


def numpy_fid(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def numpy_inception_score(logits):
    logits = np.asarray(logits, np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = p.mean(0)
    return float(np.exp((p * (np.log(p) - np.log(q))).sum(1).mean()))


def numpy_kid(real, fake):
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def nearest_neighbour_reference(real, fake, k):
    """Precision, recall, density, coverage from the full distance matrices (Kynkaenniemi et al. 2019 eq. 1-3;
    Naeem et al. 2020 eq. 3-4)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    distance = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    real_radii = np.sort(distance(real, real), axis=1)[:, k]
    fake_radii = np.sort(distance(fake, fake), axis=1)[:, k]
    cross = distance(fake, real)  # [fake, real]
    inside = cross <= real_radii[None]
    return {"precision": inside.any(1).mean(), "recall": (cross <= fake_radii[:, None]).any(0).mean(),
            "density": inside.sum() / (k * len(fake)), "coverage": inside.any(0).mean()}


def one_shot_outputs(generator, classifier, latent_dim, num_classes, num_samples, batch_size, seed):
    z, labels = zip(*evaluation.generator_inputs(latent_dim, num_classes, num_samples, batch_size, seed))
    images = generator(np.concatenate(z), np.concatenate(labels), training=False)
    return classifier(keras.ops.convert_to_numpy(images))


@pytest.mark.parametrize("num_classes", [4, 0])
def test_figures_equal_a_one_shot_numpy_computation(tmp_path, classifier, num_classes):
    generator = build_generator(tiny_model(IMAGE_SIZE, num_classes))
    real_features, _ = real_activations(classifier, 100)
    stats = evaluation.real_statistics("synthetic", classifier, IMAGE_SIZE, num_real=100, cache_dir=tmp_path,
                                       batch_size=16, print_fn=None)
    np.testing.assert_allclose(stats.mean, real_features.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.covariance, np.cov(real_features.astype(np.float64), rowvar=False),
                               rtol=1e-4, atol=1e-7)

    config = evaluation.EvalConfig(num_samples=70, batch_size=16, seed=3, compute_kid=True)
    figures = evaluation.evaluate_generator(generator, classifier, stats, config, print_fn=None)
    features, logits = one_shot_outputs(generator, classifier, 8, num_classes, 70, 16, 3)
    assert figures["num_samples"] == 70 and figures["seconds"] > 0
    np.testing.assert_allclose(figures["fid"], numpy_fid(real_features, features), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(figures["inception_score"], numpy_inception_score(logits), rtol=1e-5)
    np.testing.assert_allclose(figures["kid"], numpy_kid(real_features, features), rtol=1e-3, atol=1e-7)
    assert figures["fid"] > 1e-3 and figures["inception_score"] > 1.01  # not trivially zero / one
    # Every sample is kept (fewer than KID_SUBSET_SIZE): the k-NN figures are those of the whole sets (whose order
    # does not matter). A sample lying exactly on a ball's boundary could flip with float32 rounding: 1 in 70.
    expected = nearest_neighbour_reference(real_features, features, 3)
    for name in evaluation.NEAREST_NEIGHBOUR_FIGURES:
        assert figures[name] == pytest.approx(expected[name], abs=1.5 / 70), name
    assert 0 < figures["precision"] < 1 or 0 < figures["coverage"] < 1  # not at a limit, so the check can fail


def test_the_same_seed_gives_the_same_figures_and_another_seed_others(tmp_path, classifier):
    generator = build_generator(tiny_model(IMAGE_SIZE))
    stats = evaluation.real_statistics("synthetic", classifier, IMAGE_SIZE, num_real=64, cache_dir=tmp_path,
                                       print_fn=None)
    run = lambda seed: evaluation.evaluate_generator(  # noqa: E731
        generator, classifier, stats, evaluation.EvalConfig(num_samples=48, batch_size=16, seed=seed), print_fn=None)
    first, again, other = run(5), run(5), run(6)
    assert "kid" in first and "precision" in first  # defaults: KID and precision/recall on, as the commands' flags
    assert (first["fid"], first["inception_score"], first["kid"]) == (again["fid"], again["inception_score"],
                                                                     again["kid"])
    assert first["fid"] != other["fid"]


def test_conditional_labels_are_uniform_and_reproducible():
    batches = list(evaluation.generator_inputs(8, 4, 4000, 1000, seed=1))
    labels = np.concatenate([b[1] for b in batches])
    z = np.concatenate([b[0] for b in batches])
    assert [len(b[0]) for b in batches] == [1000] * 4 and z.dtype == np.float32 and labels.dtype == np.int32
    counts = np.bincount(labels, minlength=4)
    assert counts.min() > 900 and counts.max() < 1100  # 1000 each, +- 3 standard deviations
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    again = np.concatenate([b[1] for b in evaluation.generator_inputs(8, 4, 4000, 1000, seed=1)])
    np.testing.assert_array_equal(labels, again)
    assert np.all(np.concatenate([b[1] for b in evaluation.generator_inputs(8, 0, 10, 4)]) == 0)


def test_truncated_inputs_share_labels_and_draws_across_truncations():
    """A sweep's inputs: per batch, the labels and then an int64 seed from default_rng(seed), and the z that
    `latents.truncated_latents` draws for that seed (what an export's `generate` draws)."""
    from sagan_tf.sampling import latents

    def inputs(truncation):
        batches = list(evaluation.generator_inputs(6, 5, 70, 32, seed=3, truncation=truncation))
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])

    rng = np.random.default_rng(3)
    expected_labels, expected_z = [], {}
    for n in (32, 32, 6):
        expected_labels.append(rng.integers(0, 5, n))
        batch_seed = int(rng.integers(0, 2**63 - 1))
        for t in (2.0, 0.5):
            expected_z.setdefault(t, []).append(latents.truncated_latents(n, 6, batch_seed, t).numpy())
    z_wide, labels_wide = inputs(2.0)
    z_narrow, labels_narrow = inputs(0.5)
    np.testing.assert_array_equal(labels_wide, np.concatenate(expected_labels))
    np.testing.assert_array_equal(labels_narrow, labels_wide)
    np.testing.assert_array_equal(z_wide, np.concatenate(expected_z[2.0]))
    np.testing.assert_array_equal(z_narrow, np.concatenate(expected_z[0.5]))
    assert z_wide.dtype == np.float32 and z_wide.shape == (70, 6)
    assert np.abs(z_wide).max() <= 2.0 and np.abs(z_narrow).max() <= 0.5 and np.abs(z_wide).max() > 1.5
    # The same uniforms at every truncation: the same signs, and |z| shrinks monotonically with t.
    np.testing.assert_array_equal(np.sign(z_narrow), np.sign(z_wide))
    order = np.argsort(np.abs(z_wide), axis=None)
    assert np.all(np.diff(np.abs(z_narrow).ravel()[order]) >= 0)
    # t = infinity: the same labels and uniforms without a bound (a sweep's untruncated point).
    z_unbounded, labels_unbounded = inputs(math.inf)
    np.testing.assert_array_equal(labels_unbounded, labels_wide)
    np.testing.assert_array_equal(np.sign(z_unbounded), np.sign(z_wide))
    assert np.all(np.abs(z_unbounded) >= np.abs(z_wide)) and np.abs(z_unbounded).max() > 2.0
    assert evaluation.recorded_truncation(math.inf) is None and evaluation.recorded_truncation(0.5) == 0.5
    # Untruncated inputs are unchanged by the option (what every evaluation before it drew).
    untruncated = np.random.default_rng(3)
    z = untruncated.standard_normal((32, 6)).astype("float32")
    first = next(evaluation.generator_inputs(6, 5, 70, 32, seed=3))
    np.testing.assert_array_equal(first[0], z)
    np.testing.assert_array_equal(first[1], untruncated.integers(0, 5, 32))


def test_evaluation_streams_batches_through_the_classifier(tmp_path, classifier):
    generator = build_generator(tiny_model(IMAGE_SIZE))
    stats = evaluation.real_statistics("synthetic", classifier, IMAGE_SIZE, num_real=32, cache_dir=tmp_path,
                                       print_fn=None)
    sizes = []

    def fn(images):
        sizes.append(int(images.shape[0]))
        return classifier.fn(images)

    counting = classifiers.Classifier(fn, classifier.image_size, classifier.classifier_id)
    lines = []
    config = evaluation.EvalConfig(num_samples=45, batch_size=10, log_every=2)
    evaluation.evaluate_generator(generator, counting, stats, config, print_fn=lines.append)
    assert sizes == [10, 10, 10, 10, 5]
    assert len(lines) == 2 and "20/45 samples" in lines[0] and "40/45 samples" in lines[1]


def test_real_statistics_are_cached(tmp_path, classifier, monkeypatch):
    calls = []
    load = data.load

    def counting_load(*args, **kwargs):
        calls.append((args, kwargs))
        return load(*args, **kwargs)

    monkeypatch.setattr(data, "load", counting_load)
    first = evaluation.real_statistics("synthetic", classifier, IMAGE_SIZE, num_real=50, cache_dir=tmp_path,
                                       batch_size=16, print_fn=None)
    assert len(calls) == 1 and first.count == 50
    assert calls[0][1]["shuffle"] is False and calls[0][1]["random_flip"] is False
    second = evaluation.real_statistics("synthetic", classifier, IMAGE_SIZE, num_real=50, cache_dir=tmp_path,
                                        batch_size=16, print_fn=None)
    assert len(calls) == 1  # read from the cache, not the dataset
    np.testing.assert_array_equal(first.mean, second.mean)
    np.testing.assert_array_equal(first.covariance, second.covariance)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    evaluation.real_statistics("synthetic", classifier, IMAGE_SIZE, num_real=40, cache_dir=tmp_path,
                               batch_size=16, print_fn=None)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2  # another count is another entry


def test_default_cache_dir_and_classifier(monkeypatch, tmp_path):
    monkeypatch.setenv(cache_dirs.CACHE_ENV, str(tmp_path))
    assert cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS) == str(tmp_path / "real_stats")
    monkeypatch.delenv(cache_dirs.CACHE_ENV)
    assert cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS).endswith("/.cache/sagan_tf/real_stats")
    assert evaluation.default_classifier("synthetic") == "synthetic"
    assert evaluation.default_classifier("cifar10") == "inception"


def test_an_unavailable_classifier_is_a_usage_error(tmp_path):
    with pytest.raises(ClassifierUnavailableError, match="--classifier") as info:
        evaluation.load_classifier_for("cifar10", str(tmp_path / "missing.keras"))
    assert isinstance(info.value, UsageError)
    assert "No such .keras classifier file" in str(info.value)  # the loader's reason, then the flag to use
    assert "--classifier=domain" in str(info.value)  # and the offline alternative, with its cost


def test_domain_needs_an_image_size():
    with pytest.raises(UsageError, match="depends on the image size"):
        evaluation.load_classifier_for("synthetic", "domain")


def test_evaluator_loads_classifier_and_statistics_once(tmp_path, classifier):
    config = evaluation.EvalConfig(num_samples=20, batch_size=10, classifier=classifier, num_real=30,
                                   cache_dir=str(tmp_path))
    evaluator = evaluation.Evaluator.create("synthetic", IMAGE_SIZE, config, print_fn=None)
    assert evaluator.real_stats.count == 30 and evaluator.setup_seconds > 0
    generator = build_generator(tiny_model(IMAGE_SIZE))
    direct = evaluation.evaluate_generator(generator, classifier, evaluator.real_stats,
                                           evaluation.EvalConfig(num_samples=20, batch_size=10), print_fn=None)
    assert evaluator(generator)["fid"] == direct["fid"]


def test_evaluator_reports_provenance_and_reuses_the_real_radii(tmp_path, classifier, monkeypatch):
    config = evaluation.EvalConfig(num_samples=20, batch_size=10, classifier=classifier, num_real=30,
                                   cache_dir=str(tmp_path), compute_kid=True, seed=4)
    evaluator = evaluation.Evaluator.create("synthetic", 32, config, print_fn=None)
    calls = []
    radii = metrics.nearest_neighbour_radii
    monkeypatch.setattr(metrics, "nearest_neighbour_radii", lambda *a, **k: calls.append(1) or radii(*a, **k))
    generator = build_generator(tiny_model(32))
    figures, again = evaluator(generator), evaluator(generator)
    assert len(calls) == 1 and figures["recall"] == again["recall"]
    provenance = figures["provenance"]
    assert provenance == {
        "classifier": classifier.describe(), "dataset": "synthetic", "real_split": "train[:30]", "num_real": 30,
        "num_generated": 20, "subset_real": 30, "subset_generated": 20, "nearest_k": 3, "seed": 4,
        "truncation": None, "resize": "bilinear (tf.image.resize, no antialiasing) from 32x32 to 8x8",
        "labels": "uniform",
        "class_logits": f"the logits of the keras classifier ({classifier.tag}) are not known to be the classes of "
                        "synthetic"}
    assert provenance["classifier"]["tag"] == classifier.tag == f"keras-{classifier.content_hash[:8]}"
    tagged = evaluation.qualified_figures(figures, evaluator.tag)
    assert set(tagged) == {f"{classifier.tag}/{name}" for name in evaluation.FIGURES
                           if name not in evaluation.CLASS_ACCURACY_FIGURES}
    assert tagged[f"{classifier.tag}/fid"] == figures["fid"]
    assert evaluation.qualified_figures({"fid": 1.0, "kid": None}, "x") == {"x/fid": 1.0}


def test_labels_follow_the_frequencies_a_run_trained_with(tmp_path, classifier, monkeypatch):
    # fake_labels=data trains on the data's class frequencies; the real statistics follow them too, so evaluation
    # draws its labels with them (uniform labels used to penalise exactly the runs with the option).
    frequencies = (0.6, 0.3, 0.1, 0.0)
    labels = np.concatenate([b[1] for b in evaluation.generator_inputs(8, 4, 20000, 5000, seed=2,
                                                                       label_frequencies=(6, 3, 1, 0))])
    np.testing.assert_allclose(np.bincount(labels, minlength=4) / labels.size, frequencies, atol=0.012)
    uniform = np.concatenate([b[1] for b in evaluation.generator_inputs(8, 4, 50, 20, seed=2)])
    rng = np.random.default_rng(2)  # the uniform draws are those of before: z, then labels, batch by batch
    expected = []
    for n in (20, 20, 10):
        rng.standard_normal((n, 8))
        expected.append(rng.integers(0, 4, n))
    np.testing.assert_array_equal(uniform, np.concatenate(expected))
    for bad in ((1, 2, 3), (1, -1, 1, 1), (0, 0, 0, 0), (1, np.nan, 1, 1)):
        with pytest.raises(ValueError, match="one finite weight >= 0 per class"):
            next(evaluation.generator_inputs(8, 4, 10, 5, label_frequencies=bad))

    config = evaluation.EvalConfig(num_samples=40, batch_size=20, classifier=classifier, num_real=30,
                                   cache_dir=str(tmp_path), compute_kid=False, compute_precision_recall=False, seed=4)
    uniform_evaluator = evaluation.Evaluator.create("synthetic", 32, config, print_fn=None)
    evaluator = uniform_evaluator.with_label_frequencies(frequencies)
    seen = []

    def generator(z, labels, training=False):
        seen.append(np.asarray(labels))
        return keras.ops.zeros((len(z), 32, 32, 3))

    monkeypatch.setattr(evaluation, "inference_sampler", lambda generator, latent_dim: generator)  # eager: labels readable

    figures = evaluator(generator, latent_dim=8, num_classes=4)
    assert figures["provenance"]["labels"] == {"frequencies": [0.6, 0.3, 0.1, 0.0]}
    drawn = np.concatenate(seen)
    assert drawn.size == 40 and not np.any(drawn == 3)
    np.testing.assert_array_equal(drawn, np.concatenate([b[1] for b in evaluation.generator_inputs(
        8, 4, 40, 20, seed=4, label_frequencies=frequencies)]))
    assert uniform_evaluator(generator, latent_dim=8, num_classes=4)["provenance"]["labels"] == "uniform"


def test_evaluate_generator_takes_an_eval_config(classifier):
    generator = build_generator(tiny_model(IMAGE_SIZE))
    with pytest.raises(ValueError, match="must be an EvalConfig or None. Received: config=70"):
        evaluation.evaluate_generator(generator, classifier, None, 70)  # the old positional num_samples


@pytest.mark.parametrize("field, value, message", [
    ("num_samples", 1, "num_samples must be an integer >= 2"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("num_real", 1, "num_real must be an integer >= 2"),
    ("num_splits", 0, "num_splits must be an integer between 1 and num_samples"),
    ("seed", -1, r"seed must be an integer in \[0, 2\*\*31\)"),
    ("nearest_k", 0, "nearest_k must be a positive integer"),
    ("truncation", 0.0, "truncation must be None or a number > 0"),
    ("truncation", -1, "truncation must be None or a number > 0"),
    ("truncation", 1e-50, "truncation must be None or a number > 0"),  # 0 in float32, as `generate` takes it
    ("truncation", "0.5", "truncation must be None or a number > 0"),
    ("truncation", True, "truncation must be None or a number > 0"),
])
def test_eval_config_validates(field, value, message):
    with pytest.raises(UsageError, match=message + ".*Received: "):
        evaluation.EvalConfig(**{field: value})


def mean_colour_classifier(path):
    """A classifier whose features are each image's mean colour (in [-1, 1]): statistics that show which images were
    read."""
    images = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D(name="features")(images)
    logits = keras.layers.Dense(2, name="logits")(features)
    keras.Model(images, [features, logits]).save(str(path))
    return classifiers.load_classifier(str(path))


def test_a_class_ordered_folder_is_measured_on_a_uniform_subset(tmp_path):
    from PIL import Image

    # Listed class by class: 60 dark images, then 60 bright ones. The first 60 would all be dark.
    for name, value in (("a_dark", 30), ("b_bright", 225)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(60):
            Image.fromarray(np.full((8, 8, 3), value + i % 5, np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    folder = data.resolve(f"folder:{tmp_path / 'images'}")
    classifier = mean_colour_classifier(tmp_path / "mean.keras")
    stats = evaluation.real_statistics(folder, classifier, 8, num_real=60, cache_dir=tmp_path / "stats",
                                       batch_size=16, print_fn=None, seed=3)
    # The reference: the seeded subset's files, read with PIL.
    chosen = folder.folder_scan.subset(60, 3).files
    expected = np.mean([np.asarray(Image.open(f), np.float64).mean() / 127.5 - 1 for f in chosen])
    assert stats.count == 60
    np.testing.assert_allclose(stats.mean, expected, atol=1e-4)
    dark = sum("a_dark" in f for f in chosen)
    assert 20 <= dark <= 40 and abs(stats.mean[0]) < 0.3  # both classes, about evenly; not -0.75 (all dark)
    key = stats.metadata["cache_key"]["split"]
    assert key == f"train[60 of 120, seed 3]@{folder.fingerprint()['sha256'][:12]}"
    # Another seed is another subset, cached apart; the same seed is read back from the cache.
    other = evaluation.real_statistics(folder, classifier, 8, num_real=60, cache_dir=tmp_path / "stats",
                                       batch_size=16, print_fn=None, seed=4)
    assert other.metadata["cache_key"]["split"] != key and not np.allclose(other.mean, stats.mean)
    again = evaluation.real_statistics(folder, classifier, 8, num_real=60, cache_dir=tmp_path / "stats",
                                       batch_size=16, print_fn=lambda line: pytest.fail(f"recomputed: {line}"),
                                       seed=3)
    np.testing.assert_array_equal(again.mean, stats.mean)
    # The whole folder when it is not larger than num_real.
    whole = evaluation.real_statistics(folder, classifier, 8, num_real=500, cache_dir=tmp_path / "stats",
                                       batch_size=16, print_fn=None)
    assert whole.count == 120 and whole.metadata["cache_key"]["split"].startswith("train[:120]@")


def test_too_few_generated_images_for_kid_are_refused_before_any_is_generated(classifier):
    """10,000 real activations make 10 blocks of at most 1024, which need 20 generated images."""
    generator = build_generator(tiny_model(IMAGE_SIZE))
    d = classifier(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), "float32"))[0].shape[1]
    rng = np.random.default_rng(0)
    stats = metrics.RealStatistics(np.zeros(d), np.eye(d), 10_000, kid_subset=rng.normal(size=(10_000, d)))
    calls = []
    counting = classifiers.Classifier(lambda images: calls.append(1) or classifier.fn(images), classifier.image_size,
                                  classifier.classifier_id)
    config = evaluation.EvalConfig(num_samples=19, batch_size=19, compute_kid=True)
    with pytest.raises(UsageError, match=r"in 10 block\(s\) of at most 1024 .* at least 20 generated images "
                                         r"\(--eval_samples, --num_samples\), or no KID \(--nokid\)"):
        evaluation.evaluate_generator(generator, counting, stats, config, print_fn=None)
    assert calls == []
    # Fewer real images need fewer blocks: 19 generated images against 1,000 real ones are fine.
    evaluation._check_kid_sizes(1000, 19)
    with pytest.raises(UsageError, match="at least 4 generated images"):
        evaluation._check_kid_sizes(1025, 3)  # 2 blocks


# Class accuracy of a conditional run: a stub generator writes hand-built logits into its images, a stub classifier
# reads them back, so the figure can be checked against NumPy on the very logits the evaluation saw.
CLASSES = 7  # more than 5: top-5 is reported


def _logit_images(z, labels):
    """8x8x3 images in [-1, 1] holding features (pixels 0-3) and 9 logits (pixels 4-12): a background logit, one
    per class (z / 4 with the generating label's raised by 0.15) and an unused one."""
    z, labels = np.asarray(z, np.float32), np.asarray(labels)
    pixels = np.zeros((len(z), 8 * 8 * 3), np.float32)
    pixels[:, :4] = z[:, :4] / 4
    class_logits = z[:, :CLASSES] / 4 + 0.15 * np.eye(CLASSES, dtype=np.float32)[labels]
    pixels[:, 5:5 + CLASSES] = class_logits
    pixels[:, 4], pixels[:, 5 + CLASSES] = 0.9, 0.95  # larger than every class logit: dropped by the mapping
    return np.clip(pixels, -1, 1).reshape(-1, 8, 8, 3)


def _logit_reader():
    return classifiers.Classifier(lambda x: (np.reshape(x, (len(x), -1))[:, :4],
                                             np.reshape(x, (len(x), -1))[:, 4:6 + CLASSES]), 8, "logit-reader")


def _numpy_top_k_accuracy(logits, labels, k):
    """The share of rows whose label is among the k largest logits (argsort; no ties in these logits)."""
    top = np.argsort(-np.asarray(logits, np.float64), axis=1)[:, :k]
    return float(np.mean([label in row for label, row in zip(labels, top)]))


@pytest.fixture(scope="module")
def logit_stats(tmp_path_factory):
    return evaluation.real_statistics("synthetic", _logit_reader(), 16, num_real=64,
                                      cache_dir=tmp_path_factory.mktemp("logit_stats"), print_fn=None)


def test_class_accuracy_streams_top1_and_top5_against_numpy(monkeypatch, logit_stats):
    monkeypatch.setattr(evaluation, "inference_sampler", lambda generator, latent_dim: generator)
    generated = []

    def generator(z, labels, training=False):
        generated.append(np.asarray(labels))
        return _logit_images(z, labels)

    config = evaluation.EvalConfig(num_samples=230, batch_size=50, seed=5, compute_kid=False,
                                   compute_precision_recall=False)
    figures = evaluation.evaluate_generator(generator, _logit_reader(), logit_stats, config, latent_dim=8,
                                            num_classes=CLASSES, print_fn=None,
                                            to_class_logits=lambda logits: logits[:, 1:1 + CLASSES])
    assert len(generated) == 5  # one generation pass, in batches (the last one partial)
    z, labels = (np.concatenate(part) for part in zip(*evaluation.generator_inputs(8, CLASSES, 230, 50, seed=5)))
    logits = np.reshape(_logit_images(z, labels), (230, -1))[:, 5:5 + CLASSES]
    top1, top5 = _numpy_top_k_accuracy(logits, labels, 1), _numpy_top_k_accuracy(logits, labels, 5)
    assert figures["class_accuracy"] == pytest.approx(top1, abs=1e-12)
    assert figures["class_accuracy_top5"] == pytest.approx(top5, abs=1e-12)
    assert figures["chance"] == pytest.approx(1 / CLASSES)
    assert 1 / CLASSES + 0.1 < top1 < 0.9 and top1 < top5 < 1  # informative: neither chance nor perfect
    # 4 classes: no top-5. No mapping or an unconditional generator: no accuracy at all.
    four = evaluation.evaluate_generator(generator, _logit_reader(), logit_stats, config, latent_dim=8,
                                         num_classes=4, print_fn=None, to_class_logits=lambda l: l[:, 1:5])
    assert 0 < four["class_accuracy"] < 1 and four["class_accuracy_top5"] is None and four["chance"] == 0.25
    for num_classes, to_class_logits in ((CLASSES, None), (0, lambda l: l[:, 1:1 + CLASSES])):
        plain = evaluation.evaluate_generator(generator, _logit_reader(), logit_stats, config, latent_dim=8,
                                              num_classes=num_classes, print_fn=None,
                                              to_class_logits=to_class_logits)
        assert not set(plain) & set(evaluation.CLASS_ACCURACY_FIGURES)


def test_evaluator_reports_class_accuracy_with_its_logit_mapping_and_none_for_unconditional_runs(
        monkeypatch, logit_stats):
    monkeypatch.setattr(evaluation, "inference_sampler", lambda generator, latent_dim: generator)
    config = evaluation.EvalConfig(num_samples=40, batch_size=20, compute_kid=False, compute_precision_recall=False)
    # The shipped synthetic classifier's logits are the synthetic dataset's classes (label j is logit j).
    reader = classifiers.Classifier(_logit_reader().fn, 8, "synthetic", name="synthetic")
    evaluator = evaluation.Evaluator(reader, logit_stats, config, print_fn=None, dataset="synthetic", image_size=8)
    conditional = evaluator(lambda z, labels, training=False: _logit_images(z, labels), latent_dim=8, num_classes=4)
    assert conditional["provenance"]["class_logits"] == "logit j is label j (synthetic classifier of synthetic)"
    z, labels = (np.concatenate(part) for part in zip(*evaluation.generator_inputs(8, 4, 40, 20, seed=0)))
    logits = np.reshape(_logit_images(z, labels), (40, -1))[:, 4:8]  # the mapping keeps the first 4 logits
    assert conditional["class_accuracy"] == _numpy_top_k_accuracy(logits, labels, 1)
    assert conditional["chance"] == 0.25
    tagged = evaluation.qualified_figures(conditional, evaluator.tag)
    assert tagged[f"{evaluator.tag}/class_accuracy"] == conditional["class_accuracy"]
    unconditional = evaluator(lambda z, labels, training=False: _logit_images(z, labels), latent_dim=8,
                              num_classes=0)
    assert unconditional["provenance"]["class_logits"] is None
    assert not set(unconditional) & set(evaluation.CLASS_ACCURACY_FIGURES)
    # Logits that are not the dataset's classes (here: a classifier of unknown logits): no figure, no error, and why.
    other = evaluation.Evaluator(_logit_reader(), logit_stats, config, print_fn=None, dataset="synthetic")
    figures = other(lambda z, labels, training=False: _logit_images(z, labels), latent_dim=8, num_classes=4)
    assert "not known to be the classes of synthetic" in figures["provenance"]["class_logits"]
    assert not set(figures) & set(evaluation.CLASS_ACCURACY_FIGURES) and figures["fid"] >= 0
