"""Evaluating a generator: FID, Inception Score, KID, precision/recall and density/coverage against cached real data.

    from sagan_tf.evaluation import evaluator as evaluation
    config = evaluation.EvalConfig(num_samples=10_000, compute_kid=True)
    evaluator = evaluation.Evaluator.create("synthetic", image_size=32, config=config)
    evaluator(generator)   # {"fid", "inception_score", "kid", "precision", "recall", "density", "coverage",
                           #  ("class_accuracy", "class_accuracy_top5", "chance": conditional generators),
                           #  "num_samples", "seconds", "provenance": {...}}

The pieces, usable on their own:

- `load_classifier_for(dataset, spec, image_size=...)`: the classifier of the metrics; by default the shipped domain
  classifier for the embedded `synthetic` dataset and TF-GAN's Inception (TF-Hub) for every other dataset;
  "domain" is the dataset's own domain classifier (`sagan_tf.evaluation.classifiers`), found in its cache.
- `real_statistics(...)`: streams `num_real` real images (no shuffling, no flips; from an image folder larger than
  that, a seeded uniform subset of its files) through the classifier into a `metrics.RealStatistics`, computed once
  and cached on disk (`cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS)`).
- `evaluate_generator(generator, classifier, real_stats, config)`: generates `config.num_samples` images in batches
  from a fixed seed (uniform class labels for conditional models) and streams them through the classifier into a
  `metrics.MetricAccumulator`: memory does not grow with `num_samples`. With `config.truncation` the latents are
  truncated (the truncation trick, BigGAN sec. 3.1) exactly as an export's `generate` draws them. For a
  conditional generator whose classifier's logits are the dataset's classes (`class_logits.class_logits`: the
  synthetic classifier on `synthetic`, a domain classifier of the dataset's labels, Inception on imagenet2012), the
  same pass also counts the images whose generating label is the classifier's top-1 (and top-5, with more than 5
  classes): "class_accuracy", "class_accuracy_top5", beside "chance" (1 / classes).

FID (Heusel et al. 2017, eq. 6), IS (Salimans et al. 2016), KID (Binkowski et al. 2018), improved precision and
recall (Kynkaenniemi et al. 2019) and density and coverage (Naeem et al. 2020) are computed by
`sagan_tf.evaluation.metrics`: FID, KID and the k-NN figures from the classifier's features, IS from its logits. KID and
the k-NN figures use uniformly sampled subsets of at most `KID_SUBSET_SIZE` real and generated features (reservoirs), so
their memory is bounded whatever `num_samples` is. The SAGAN paper reports FID and IS over 50,000 samples with
Inception.

Every result carries its provenance (`Evaluator.provenance`): the classifier's name, content hash and tag, the resize
method, the sample counts, the real split. Figures of different classifiers are kept apart by the classifier's tag
(`qualified_figures`: "<tag>/fid", e.g. "domain-1a2b3c4d/fid").
"""

import copy
import dataclasses
import os
import time
from typing import Optional

import keras
import numpy as np

from sagan_tf import data, errors
from sagan_tf.sampling import latents
from sagan_tf.evaluation import cache_dirs, classifiers, metrics
from sagan_tf.evaluation.class_logits import class_logits
from sagan_tf.evaluation.metrics import per_class
from sagan_tf.evaluation.classifiers import cache as classifier_cache
from sagan_tf.evaluation.classifiers import card as classifier_card
from sagan_tf.evaluation.classifiers import classifier as classifier_module

#: Real activations kept in the cached statistics, and generated activations kept per evaluation, for KID and the
#: k-NN figures (real ones are kept whether they are asked for or not, so that one cache entry serves all).
KID_SUBSET_SIZE = 10_000
#: The largest block of TF-GAN's KID estimator.
KID_MAX_BLOCK_SIZE = 1024
#: Every figure an evaluation can report, in display order ("chance", 1 / classes, is the reference of the class
#: accuracies, reported with them).
FIGURES = ("fid", "inception_score", "kid", "precision", "recall", "density", "coverage", "class_accuracy",
           "class_accuracy_top5", "chance")
#: The class accuracies (`evaluate_generator`'s `to_class_logits`) and their reference.
CLASS_ACCURACY_FIGURES = ("class_accuracy", "class_accuracy_top5", "chance")
#: The figures of `metrics.precision_recall_density_coverage`.
NEAREST_NEIGHBOUR_FIGURES = ("precision", "recall", "density", "coverage")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How to evaluate a generator.

    Attributes:
      num_samples: generated images per evaluation (the SAGAN paper: 50,000).
      batch_size: images generated and classified per batch.
      classifier: what `load_classifier_for` loads: None (the dataset's default: "synthetic" for the synthetic
        dataset, "inception" otherwise), "domain" (the dataset's cached domain classifier), "inception",
        "synthetic", a TF-Hub handle, a SavedModel directory or a `.keras` file.
      split: the dataset split of the real images.
      num_real: real images in the statistics (fewer if the split is smaller); None: the whole split.
      real_seed: seed of the uniform subset of `num_real` images drawn from an image folder that has more (see
        `real_statistics`); it is part of the statistics' cache key and of the provenance's real split.
      compute_kid: also compute the Kernel Inception Distance (on by default, as `--kid` of the commands).
      compute_precision_recall: also compute precision, recall, density and coverage (on by default: the figures of
        fidelity and variety behind a bad FID; they compare the same bounded reservoirs KID uses).
      nearest_k: k of the k-NN balls of precision/recall and density/coverage.
      num_splits: Inception Score splits (1: TF-GAN's definition; papers average 10 splits).
      seed: seed of the latents and labels; the same seed gives the same figures.
      truncation: None (z ~ N(0, I) from NumPy) or a number t > 0: z drawn from the normal truncated at |z| <= t
        by `sagan_tf.sampling.latents` (BigGAN's truncation trick; `math.inf` draws an untruncated normal from the same
        uniforms; see `generator_inputs`).
      cache_dir: directory of the cached real statistics; None: `cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS)`.
      classifier_dir: where "domain" classifiers are cached; None: the default cache.
      log_every: batches between progress lines (0: none).
    """

    num_samples: int = 10_000
    batch_size: int = 250
    classifier: Optional[str] = None
    split: str = "train"
    num_real: Optional[int] = 10_000
    real_seed: int = 0
    compute_kid: bool = True
    compute_precision_recall: bool = True
    nearest_k: int = 3
    num_splits: int = 1
    seed: int = 0
    truncation: Optional[float] = None
    cache_dir: Optional[str] = None
    classifier_dir: Optional[str] = None
    log_every: int = 20

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Checks the fields.

        Raises:
          UsageError: naming the field and its value.
        """
        def fail(message):
            raise errors.UsageError(f"Invalid evaluation settings: {message}")

        def is_int(value):
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if not is_int(self.num_samples) or self.num_samples < 2:
            fail(f"num_samples must be an integer >= 2. Received: num_samples={self.num_samples!r}")
        if not is_int(self.batch_size) or self.batch_size < 1:
            fail(f"batch_size must be a positive integer. Received: batch_size={self.batch_size!r}")
        if self.num_real is not None and (not is_int(self.num_real) or self.num_real < 2):
            fail(f"num_real must be an integer >= 2, or None for the whole split. Received: num_real={self.num_real!r}")
        if not is_int(self.num_splits) or not 1 <= self.num_splits <= self.num_samples:
            fail("num_splits must be an integer between 1 and num_samples. "
                 f"Received: num_splits={self.num_splits!r}, num_samples={self.num_samples!r}")
        for name in ("seed", "real_seed"):
            if not is_int(getattr(self, name)) or not 0 <= getattr(self, name) < 2**31:
                fail(f"{name} must be an integer in [0, 2**31). Received: {name}={getattr(self, name)!r}")
        if not is_int(self.log_every) or self.log_every < 0:
            fail(f"log_every must be an integer >= 0. Received: log_every={self.log_every!r}")
        if not is_int(self.nearest_k) or self.nearest_k < 1:
            fail(f"nearest_k must be a positive integer. Received: nearest_k={self.nearest_k!r}")
        if not isinstance(self.split, str) or not self.split:
            fail(f"split must be a dataset split name such as 'train'. Received: split={self.split!r}")
        if self.truncation is not None and (
                isinstance(self.truncation, bool) or not isinstance(self.truncation, (int, float, np.number))
                or not np.float32(self.truncation) > 0):
            fail(f"truncation must be None or a number > 0. Received: truncation={self.truncation!r}")


def _check_kid_sizes(num_real, num_samples):
    """Refuses, before any image is generated, a KID that TF-GAN's block estimator cannot compute: it splits both
    sets into as many blocks as the larger needs and wants 2 samples of each set per block.

    Raises:
      UsageError: naming the number of generated images needed.
    """
    fake = min(num_samples, KID_SUBSET_SIZE)
    blocks = -(-max(num_real, fake) // KID_MAX_BLOCK_SIZE)
    if fake < 2 * blocks:
        raise errors.UsageError(
            f"KID compares {num_real} real images in {blocks} block(s) of at most {KID_MAX_BLOCK_SIZE} and needs at "
            f"least 2 generated images per block: at least {2 * blocks} generated images (--eval_samples, "
            f"--num_samples), or no KID (--nokid). Received: {num_samples} generated images.")


def default_classifier(dataset):
    """The classifier spec used for `dataset` when none is given.

    Returns:
      `classifiers.SYNTHETIC_CLASSIFIER` ("synthetic") for the embedded synthetic dataset, else
      `classifiers.INCEPTION_CLASSIFIER` ("inception").
    """
    return classifiers.SYNTHETIC_CLASSIFIER if dataset == "synthetic" else classifiers.INCEPTION_CLASSIFIER


def _offline_note():
    return ("Offline, --classifier=domain measures quality with a small classifier trained on the dataset's own "
            "images instead: it is trained once per dataset and image size (about 1-2 minutes per thousand images "
            "on 2 CPU cores, at most 3000 steps) and cached in "
            f"{cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS)}; its figures compare runs measured with the same "
            "domain classifier, not published Inception figures.")


def load_classifier_for(dataset, spec=None, batch_size=None, image_size=None, data_dir=None, classifier_dir=None):
    """Loads the classifier of the metrics for `dataset` (see `classifiers.load_classifier`).

    A domain classifier (spec "domain", or a `.keras` file with a card) is checked against the dataset: its card
    must name the same images (`sagan_tf.evaluation.classifiers.fingerprint`) and image size.

    Args:
      dataset: the dataset name or `sagan_tf.data.Dataset` (chooses the default classifier; a `Dataset` gives the
        fingerprint without scanning a folder again).
      spec: None (the default of `dataset`, see `default_classifier`), "domain" (the dataset's domain classifier at
        `image_size`, from `classifier_dir`), or anything `classifiers.load_classifier` takes.
      batch_size: largest number of images per classifier call.
      image_size: the size of the images to evaluate; required for "domain" and to check a domain classifier.
      data_dir: TFDS data directory (or the base of relative "folder:" paths), to fingerprint the dataset.
      classifier_dir: directory of the cached domain classifiers; None: the default cache
        (`cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS)`).

    Returns:
      A `classifiers.Classifier`.

    Raises:
      ClassifierUnavailableError: (a `UsageError`) the classifier is not available here (for "domain": not trained
        yet); the message says how to supply it.
      ClassifierCardError: a domain classifier of other images or another image size, or one that does not match
        its card.
    """
    name = data.name_of(dataset)
    if spec is None or spec == "":
        spec = default_classifier(name)
    asked_for_domain = spec == classifiers.DOMAIN_CLASSIFIER
    if asked_for_domain:
        if image_size is None:
            raise errors.UsageError("The domain classifier depends on the image size; pass image_size=.")
        dataset = data.resolve(dataset, data_dir)
        directory = classifier_dir or cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS)
        path = classifier_cache.cache_path(directory, name, image_size, dataset.fingerprint())
        if not os.path.exists(path):
            raise errors.ClassifierUnavailableError(
                f"No domain classifier of {name} at {image_size}x{image_size} is cached (expected {path}). Train "
                f"it with `python -m training.train_classifier --dataset={name} --image_size={image_size}`, or "
                "pass --classifier=domain to training.run or training.evaluate, which train it when it is missing.")
        spec = path
    # The classifier's layers stay float32 whatever global mixed-precision policy the caller trains with.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        classifier = classifiers.load_classifier(spec, batch_size=batch_size)
    except errors.ClassifierUnavailableError as error:
        raise errors.ClassifierUnavailableError(
            f"The classifier for FID/IS ({spec!r}) is not available: {error} Pass another one with --classifier "
            "(a SavedModel directory, a TF-Hub handle or a .keras file returning (features, logits))."
            f"{'' if asked_for_domain else ' ' + _offline_note()}") from None
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if classifier.card is not None and image_size is not None:
        classifier_card.check_card(classifier.card, data.resolve(dataset, data_dir).fingerprint(), image_size,
                                   repr(spec))
    return classifier


def _say(print_fn, line):
    if print_fn is not None:
        print_fn(line)


def real_statistics(dataset, classifier, image_size, split="train", num_real=10_000, cache_dir=None, data_dir=None,
                    batch_size=250, log_every=20, print_fn=print, seed=0):
    """The statistics of real images of `dataset` seen by `classifier`, computed once and then read from disk.

    Real images come from `sagan_tf.data.load` without shuffling or flips: `num_real` of `split` (fewer when the
    split is smaller). Which ones:

    - an image folder with more than `num_real` images: a uniformly random subset of its files drawn with `seed`
      (`sagan_tf.data.Dataset.subset`). Its files are listed class by class, so the first `num_real` would be the
      first classes only (statistics of a 1,000-class folder's first ~8 classes). The cache key's split names the
      count, the folder's size and the seed, e.g. "train[10000 of 12000, seed 0]@3f2a9c1b04de";
    - a smaller folder: all of its images, "train[:2318]@3f2a9c1b04de". The 12 hex digits are those of the folder's
      fingerprint (its file list and sizes), so statistics of a folder whose images changed are not reused. A
      folder is read whole, last partial batch included (so a folder smaller than `batch_size` works);
    - a TFDS split: its first `num_real` examples, "train[:10000]" (TFDS shuffles a dataset's examples when it
      prepares it, so a prefix is a uniform sample); the synthetic stream: its first `num_real` independent draws.

    The cache key is (dataset, that split, image size, `classifier.classifier_id`).

    Args:
      dataset: a `sagan_tf.data` name or `Dataset` (whose folder scan is reused).
      classifier: a `classifiers.Classifier`.
      image_size: the size the images are loaded at (the generator's output size).
      split: dataset split.
      num_real: number of real images; None: the whole split (which must be finite).
      cache_dir: cache directory; None: `cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS)`.
      data_dir: TFDS data directory (or the base of relative "folder:" paths).
      batch_size: images per batch.
      log_every: batches between progress lines (0: none).
      print_fn: where progress lines go (None: silent).
      seed: seed of a folder's uniform subset.

    Returns:
      A `metrics.RealStatistics` (with `KID_SUBSET_SIZE` real activations for KID).

    Raises:
      DatasetError: the data cannot be loaded.
    """
    cache = metrics.StatisticsCache(cache_dir or cache_dirs.cache_dir(cache_dirs.REAL_STATISTICS))
    dataset = data.resolve(dataset, data_dir)
    repeat = False
    if dataset.source == "folder":
        # The loader drops a last partial batch; read the folder's images cyclically and stop after the last one.
        available, repeat = dataset.num_images, True
        images_key = f"@{dataset.fingerprint()['sha256'][:12]}"
        if num_real is not None and num_real < available:
            split_key = f"{split}[{num_real} of {available}, seed {seed}]{images_key}"
            dataset = dataset.subset(num_real, seed)
        else:
            num_real = available
            split_key = f"{split}[:{available}]{images_key}"
    else:
        split_key = split if num_real is None else f"{split}[:{num_real}]"

    def compute():
        start = time.perf_counter()
        _say(print_fn, f"Computing real statistics of {dataset.name} {split_key} at {image_size}x{image_size} with "
                       f"{classifier.classifier_id} (once; cached in {cache.directory}).")
        images = data.load(dataset, split, image_size=image_size, batch_size=batch_size, shuffle=False,
                           random_flip=False, repeat=repeat)

        def features():
            seen = 0
            for batch, (real, _) in enumerate(images, 1):
                if num_real is not None:
                    real = real[:num_real - seen]
                seen += int(real.shape[0])
                yield classifier(real)[0]
                if log_every and batch % log_every == 0:
                    _say(print_fn, f"  real statistics: {seen} images ({time.perf_counter() - start:.1f} s)")
                if num_real is not None and seen >= num_real:
                    break

        statistics = metrics.RealStatistics.from_feature_batches(
            features(), kid_subset_size=KID_SUBSET_SIZE, metadata={"num_real": num_real})
        _say(print_fn, f"Real statistics of {statistics.count} images in {time.perf_counter() - start:.1f} s.")
        return statistics

    return cache.get_or_compute(dataset.name, split_key, image_size, classifier.classifier_id, compute)


def inference_sampler(generator, latent_dim):
    """A function (z, labels) -> images of `generator` in inference mode; a `tf.function` on TensorFlow."""
    def sample(z, labels):
        return generator(z, labels, training=False)

    if keras.backend.backend() != "tensorflow":
        return sample
    import tensorflow as tf

    return tf.function(sample, autograph=False,
                       input_signature=[tf.TensorSpec([None, latent_dim], tf.float32),
                                        tf.TensorSpec([None], tf.int32)])


def recorded_truncation(truncation):
    """The truncation as a record names it: None for no truncation (None or infinity, which JSON cannot hold), else
    a float."""
    if truncation is None or np.isinf(truncation):
        return None
    return float(truncation)


def generator_inputs(latent_dim, num_classes, num_samples, batch_size, seed=0, truncation=None,
                     label_frequencies=None):
    """Yields the (z, labels) batches `evaluate_generator` uses: labels uniform in [0, num_classes) (or drawn with
    `label_frequencies`), z ~ N(0, I) or, with `truncation`, z from the standard normal truncated at |z| <=
    truncation (BigGAN sec. 3.1).

    The batches are drawn one after the other from `numpy.random.default_rng(seed)`, so the same arguments give
    the same inputs. Labels are all zeros for unconditional models (`num_classes` 0), which ignore them.

    With a truncation t, each batch draws its labels and then an int64 batch seed from that generator, and its z is
    `latents.truncated_latents(n, latent_dim, batch_seed, t)`: the latents an export's `generate` signature draws
    for that seed and truncation. The labels and batch seeds do not depend on t, and `truncated_normal` maps the
    same uniforms to smaller |z| as t shrinks, so a truncation sweep with one seed evaluates the same labels and the
    same draws at every t (common random numbers: the differences between truncations are not sampling noise);
    t = `math.inf` draws the untruncated normal from those same uniforms, the reference point of a sweep.

    Args:
      latent_dim: size of z.
      num_classes: number of classes (0: unconditional).
      num_samples: images in all.
      batch_size: images per batch (the last batch may be smaller).
      seed: seed of the NumPy generator.
      truncation: None, or a number t > 0.
      label_frequencies: None (uniform labels), or one non-negative weight per class (normalized here): the labels
        of a run trained with `fake_labels="data"`, whose real statistics follow the data's class frequencies.

    Yields:
      (z float32 [n, latent_dim], labels int32 [n]) as NumPy arrays.
    """
    probabilities = label_probabilities(label_frequencies, num_classes)
    rng = np.random.default_rng(seed)
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        if truncation is None:
            z = rng.standard_normal((n, latent_dim)).astype("float32")
        if not num_classes:
            labels = np.zeros(n, "int32")
        elif probabilities is None:
            labels = rng.integers(0, num_classes, n).astype("int32")
        else:
            labels = rng.choice(num_classes, n, p=probabilities).astype("int32")
        if truncation is not None:
            batch_seed = int(rng.integers(0, 2**63 - 1))
            z = latents.truncated_latents(n, latent_dim, batch_seed, truncation).numpy()
        yield z, labels


def label_probabilities(label_frequencies, num_classes):
    """`label_frequencies` normalized to sum to 1 (float64), or None for uniform labels (None given).

    Raises:
      ValueError: not one finite, non-negative weight per class, or all zero.
    """
    if label_frequencies is None:
        return None
    weights = np.asarray(label_frequencies, dtype=np.float64)
    if (weights.shape != (num_classes,) or not num_classes or not np.all(np.isfinite(weights)) or np.any(weights < 0)
            or not weights.sum() > 0):
        raise ValueError(f"label_frequencies must hold one finite weight >= 0 per class ({num_classes}), not all "
                         f"zero. Received: label_frequencies={label_frequencies!r}")
    return weights / weights.sum()


def _dimensions(generator, latent_dim, num_classes):
    config = getattr(generator, "config", None)
    if latent_dim is None:
        latent_dim = getattr(config, "latent_dim", None)
    if num_classes is None:
        num_classes = getattr(config, "num_classes", None)
    if latent_dim is None or num_classes is None:
        raise ValueError("Pass latent_dim and num_classes for a generator without a SAGANConfig `config`. "
                         f"Received: latent_dim={latent_dim}, num_classes={num_classes}")
    return int(latent_dim), int(num_classes)


def evaluate_generator(generator, classifier, real_stats, config=None, latent_dim=None, num_classes=None,
                       print_fn=print, real_radii=None, label_frequencies=None, to_class_logits=None):
    """FID, Inception Score and optionally KID, precision, recall, density and coverage of `config.num_samples`
    images of `generator`.

    Images are generated in batches of `config.batch_size` from `generator_inputs(..., config.seed, config.truncation)`
    with `training=False` and streamed through `classifier` into a `metrics.MetricAccumulator`; no list of images is
    kept, so memory does not grow with `num_samples`: FID keeps a d x d sum, IS per-class sums, and KID and the k-NN
    figures a reservoir of at most `KID_SUBSET_SIZE` generated features, compared with the at most `KID_SUBSET_SIZE`
    real ones of `real_stats.kid_subset` (with 50,000 samples: 10,000 of each, uniformly sampled; see `metrics.manifold`
    for the blocked distances). Of `config`, this reads `num_samples`, `batch_size`, `seed`, `compute_kid`,
    `compute_precision_recall`, `nearest_k`, `num_splits` (Inception Score splits), `log_every` and `truncation`; its
    other fields say how `Evaluator.create` loads `classifier` and `real_stats`.

    Args:
      generator: a callable `(z, labels, training=False) -> images in [-1, 1]`, e.g. a `Generator` or a SAGAN's
        `sampling_generator`.
      classifier: a `classifiers.Classifier`.
      real_stats: the `metrics.RealStatistics` to compare with (see `real_statistics`).
      config: an `EvalConfig`; None: `EvalConfig()`.
      latent_dim: size of z; None reads `generator.config.latent_dim`.
      num_classes: number of classes (0: unconditional); None reads `generator.config.num_classes`.
      print_fn: where progress lines go (None: silent).
      real_radii: the k-NN radii of `real_stats.kid_subset` for `config.nearest_k`, when already computed.
      label_frequencies: the class weights the labels are drawn with (None: uniform; see `generator_inputs`).
      to_class_logits: for a conditional generator, a function of the classifier's logits returning [n,
        num_classes] logits in label order (`class_logits.class_logits`), or None: no class accuracy.

    Returns:
      {"fid": float, "inception_score": float, "kid": float (only with `config.compute_kid`), "precision",
      "recall", "density", "coverage": floats (only with `config.compute_precision_recall`; None when a feature set
      has `nearest_k` rows or fewer), "class_accuracy", "class_accuracy_top5", "chance": the share of images whose
      generating label is the classifier's top-1 (top-5: among its 5 largest class logits, only with more than 5
      classes, else None) and 1 / num_classes (only with `to_class_logits` and num_classes > 0), "num_samples":
      int, "seconds": float (wall time of this evaluation)}.

    Raises:
      ValueError: `config` is not an `EvalConfig`; the generator's dimensions are unknown; KID or precision/recall
        was asked for and `real_stats` holds no real activations.
    """
    config = EvalConfig() if config is None else config
    if not isinstance(config, EvalConfig):
        raise ValueError(f"`config` must be an EvalConfig or None. Received: config={config!r}")
    num_samples, batch_size, seed = config.num_samples, config.batch_size, config.seed
    latent_dim, num_classes = _dimensions(generator, latent_dim, num_classes)
    if (config.compute_kid or config.compute_precision_recall) and not real_stats.kid_subset.shape[0]:
        raise ValueError("KID and precision/recall need real activations, and these real statistics hold none "
                         "(kid_subset is empty).")
    if config.compute_kid:
        _check_kid_sizes(real_stats.kid_subset.shape[0], num_samples)
    start = time.perf_counter()
    sample = inference_sampler(generator, latent_dim)
    subset = KID_SUBSET_SIZE if (config.compute_kid or config.compute_precision_recall) else 0
    accumulator = metrics.MetricAccumulator(
        num_splits=config.num_splits, num_samples=num_samples, kid_capacity=subset, seed=seed,
        kid_max_block_size=KID_MAX_BLOCK_SIZE,
        nearest_k=config.nearest_k if config.compute_precision_recall else None)
    total_batches = -(-num_samples // batch_size)
    inputs = generator_inputs(latent_dim, num_classes, num_samples, batch_size, seed, config.truncation,
                              label_frequencies)
    accuracy = to_class_logits is not None and num_classes > 0
    correct = {1: 0, 5: 0}  # images whose label is among the top-k class logits
    for batch, (z, labels) in enumerate(inputs, 1):
        images = sample(z, labels)
        features, logits = classifier(images)
        accumulator.update(features, logits)
        if accuracy:
            logits = to_class_logits(logits)
            for k in (1, 5) if num_classes > 5 else (1,):
                correct[k] += int(np.sum(per_class.top_k_correct(logits, labels, k)))
        if config.log_every and batch % config.log_every == 0 and batch < total_batches:
            _say(print_fn, f"  evaluation: {accumulator.frechet.count}/{num_samples} samples "
                           f"({time.perf_counter() - start:.1f} s)")
    result = accumulator.result(real_stats, real_radii=real_radii)
    figures = {"fid": result["fid"], "inception_score": result["inception_score"]}
    if config.compute_kid:
        figures["kid"] = result["kid"]
    if config.compute_precision_recall:
        figures.update({name: result[name] for name in NEAREST_NEIGHBOUR_FIGURES})
    if accuracy:
        figures.update({"class_accuracy": correct[1] / num_samples,
                        "class_accuracy_top5": correct[5] / num_samples if num_classes > 5 else None,
                        "chance": 1.0 / num_classes})
    figures["num_samples"] = int(num_samples)
    figures["seconds"] = time.perf_counter() - start
    return figures


def qualified_figures(figures, tag):
    """{"<tag>/<figure>": value} of the figures in `FIGURES` that are present and not None.

    The classifier's tag is part of every name (e.g. "domain-1a2b3c4d/fid"), so figures of different classifiers
    never share a TensorBoard tag or a JSON field.
    """
    return {f"{tag}/{name}": figures[name] for name in FIGURES if figures.get(name) is not None}


def describe_resize(image_size, classifier):
    """How images of `image_size` reach `classifier`'s input: "none (...)" or the resize method and sizes."""
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if tuple(size) == tuple(classifier.image_size):
        return f"none: {size[0]}x{size[1]} is the classifier's input size"
    return (f"{classifier_module.RESIZE_METHOD} from {size[0]}x{size[1]} to "
            f"{classifier.image_size[0]}x{classifier.image_size[1]}")


class Evaluator:
    """A classifier, real statistics and an `EvalConfig`: `evaluator(generator)` returns the figures.

    Build it with `Evaluator.create`, which loads the classifier and the (cached) real statistics at once, so that
    a missing classifier or dataset fails before any training. `setup_seconds` is the time that took. The k-NN radii
    of the real features are computed at the first evaluation that needs them and kept.

    Args:
      classifier: a `classifiers.Classifier`.
      real_stats: a `metrics.RealStatistics`.
      config: an `EvalConfig`.
      print_fn: where progress lines go (None: silent).
      setup_seconds: time spent loading the classifier and the real statistics.
      dataset: the dataset the real statistics come from (for the provenance).
      image_size: the size of the evaluated images (for the provenance's resize method).
      real_split: the real split and count, e.g. "train[:10000]" (for the provenance).
      class_names: the dataset's class names (Inception's class accuracy on imagenet2012 maps them to its logits).

    A conditional generator's evaluation also reports its class accuracy when the classifier's logits are the
    dataset's classes (`class_logits.class_logits`); the provenance's "class_logits" says how the logits were read,
    or why there is no class accuracy.
    """

    def __init__(self, classifier, real_stats, config, print_fn=print, setup_seconds=0.0, dataset=None,
                 image_size=None, real_split=None, class_names=None):
        if not isinstance(config, EvalConfig):
            raise ValueError(f"`config` must be an EvalConfig. Received: config={config!r}")
        self.classifier = classifier
        self.real_stats = real_stats
        self.config = config
        self.print_fn = print_fn
        self.setup_seconds = setup_seconds
        self.dataset = dataset
        self.image_size = image_size
        self.real_split = real_split
        self.class_names = class_names
        self._class_logits = {}  # num_classes -> (function or None, mapping or why none)
        self.label_frequencies = None  # uniform labels; see `with_label_frequencies`
        self._real_radii = {}  # k -> radii; shared by the copies `with_truncation` makes

    @classmethod
    def create(cls, dataset, image_size, config=None, data_dir=None, print_fn=print):
        """Loads the classifier for `dataset` (a name or `sagan_tf.data.Dataset`) and the real statistics of
        `config.split` at `image_size`.

        Raises:
          ClassifierUnavailableError: the classifier is not available.
          ClassifierCardError: a domain classifier of other images or another image size.
          DatasetError: the real images cannot be loaded.
        """
        config = config or EvalConfig()
        start = time.perf_counter()
        # One Dataset: a folder is scanned once for the classifier's card check and the statistics.
        dataset = data.resolve(dataset, data_dir)
        classifier = load_classifier_for(dataset, config.classifier, config.batch_size, image_size=image_size,
                                         classifier_dir=config.classifier_dir)
        stats = real_statistics(dataset, classifier, image_size, config.split, config.num_real, config.cache_dir,
                                batch_size=config.batch_size, log_every=config.log_every, print_fn=print_fn,
                                seed=config.real_seed)
        split = stats.metadata.get("cache_key", {}).get("split")  # e.g. "train[:10000]": what was read
        return cls(classifier, stats, config, print_fn, time.perf_counter() - start, dataset.name, image_size, split,
                   dataset.info.class_names)

    @property
    def tag(self):
        """The classifier's tag, e.g. "domain-1a2b3c4d" (see `qualified_figures`)."""
        return self.classifier.tag

    def with_truncation(self, truncation):
        """This evaluator with `config.truncation` set to `truncation` (None or a number > 0), sharing the
        classifier, the real statistics and their k-NN radii: a truncation sweep loads and computes them once.

        Raises:
          UsageError: `truncation` is not None or a number > 0.
        """
        other = copy.copy(self)
        other.config = dataclasses.replace(self.config, truncation=truncation)
        return other

    def with_label_frequencies(self, label_frequencies):
        """This evaluator drawing the generated images' labels with `label_frequencies` (one weight per class; None:
        uniform), sharing everything else: a run trained with `fake_labels="data"` is measured on labels drawn as it
        trained, against real statistics that follow the data's class frequencies (uniform labels would count the
        class mismatch against it). The provenance records the labels.
        """
        other = copy.copy(self)
        other.label_frequencies = None if label_frequencies is None else [float(w) for w in label_frequencies]
        return other

    def real_radii(self):
        """The k-NN radii (k = `config.nearest_k`) of the real features of precision/recall, computed once."""
        k = self.config.nearest_k
        if k not in self._real_radii:
            self._real_radii[k] = metrics.nearest_neighbour_radii(self.real_stats.kid_subset, k)
        return self._real_radii[k]

    def provenance(self):
        """Where the figures come from, as a JSON-able dict: the classifier (name, content hash, tag, id, input
        size, card), the resize method, the dataset and real split, the numbers of generated and real samples (and
        of the subsets KID and precision/recall compare), k, the seed, the truncation and the labels ("uniform", or
        the class frequencies they were drawn with). The caller adds the step and which generator (EMA or raw) it
        evaluated."""
        config = self.config
        subset = config.compute_kid or config.compute_precision_recall
        return {
            "classifier": self.classifier.describe(),
            "resize": describe_resize(self.image_size, self.classifier) if self.image_size is not None else None,
            "dataset": self.dataset,
            "real_split": self.real_split or config.split,
            "num_real": self.real_stats.count,
            "num_generated": config.num_samples,
            "subset_real": int(self.real_stats.kid_subset.shape[0]) if subset else None,
            "subset_generated": min(config.num_samples, KID_SUBSET_SIZE) if subset else None,
            "nearest_k": config.nearest_k if config.compute_precision_recall else None,
            "seed": config.seed,
            "truncation": recorded_truncation(config.truncation),
            "labels": ("uniform" if self.label_frequencies is None else
                       {"frequencies": [round(float(p), 6) for p in
                                        label_probabilities(self.label_frequencies, len(self.label_frequencies))]}),
        }

    def class_logits(self, num_classes):
        """(function of the classifier's logits -> [n, num_classes] class logits, or None; how the logits are read,
        or why there are none) for a generator of `num_classes` classes (0: unconditional, (None, None))."""
        if not num_classes:
            return None, None
        if num_classes not in self._class_logits:
            self._class_logits[num_classes] = class_logits(self.classifier, self.dataset, self.class_names,
                                                           num_classes)
        return self._class_logits[num_classes]

    def __call__(self, generator, latent_dim=None, num_classes=None):
        """The figures of `generator` (see `evaluate_generator`) and their "provenance" (see `provenance`; with the
        class-logit mapping of a conditional generator as "class_logits", None for an unconditional one)."""
        radii = None
        if self.config.compute_precision_recall and self.real_stats.kid_subset.shape[0] > self.config.nearest_k:
            radii = self.real_radii()
        latent_dim, num_classes = _dimensions(generator, latent_dim, num_classes)
        to_class_logits, mapping = self.class_logits(num_classes)
        figures = evaluate_generator(generator, self.classifier, self.real_stats, self.config, latent_dim,
                                     num_classes, self.print_fn, real_radii=radii,
                                     label_frequencies=self.label_frequencies, to_class_logits=to_class_logits)
        figures["provenance"] = {**self.provenance(), "class_logits": mapping}
        return figures


__all__ = ["EvalConfig", "Evaluator", "default_classifier", "load_classifier_for", "real_statistics",
           "recorded_truncation", "generator_inputs", "label_probabilities", "evaluate_generator", "qualified_figures",
           "describe_resize", "FIGURES", "CLASS_ACCURACY_FIGURES", "KID_SUBSET_SIZE"]
