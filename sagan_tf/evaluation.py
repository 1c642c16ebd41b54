"""Evaluating a generator: FID, Inception Score and (optionally) KID against cached real-data statistics.

    from sagan_tf import evaluation
    config = evaluation.EvalConfig(num_samples=10_000)
    evaluator = evaluation.Evaluator.create("synthetic", image_size=32, config=config)
    evaluator(generator)   # {"fid": ..., "inception_score": ..., "kid": None, "num_samples": 10000, "seconds": ...}

The pieces, usable on their own:

- `load_classifier_for(dataset, spec)`: the classifier of the metrics; by default the shipped domain classifier
  for the embedded `synthetic` dataset and TF-GAN's Inception (TF-Hub) for every other dataset.
- `real_statistics(...)`: streams `num_real` real images (no shuffling, no flips) through the classifier into a
  `metrics.RealStatistics`, computed once and cached on disk (`default_cache_dir()`).
- `evaluate_generator(generator, classifier, real_stats, config)`: generates `config.num_samples` images in batches
  from a fixed seed (uniform class labels for conditional models) and streams them through the classifier into a
  `metrics.MetricAccumulator`: memory does not grow with `num_samples`.

FID (Heusel et al. 2017, eq. 6), IS (Salimans et al. 2016) and KID (Binkowski et al. 2018) are computed by
`sagan_tf.metrics`. The SAGAN paper reports FID and IS over 50,000 samples with Inception.
"""

import dataclasses
import os
import time
from typing import Optional

import keras
import numpy as np

from sagan_tf import data, errors, metrics

#: Environment variable naming the cache directory (real statistics go to `$SAGAN_TF_CACHE/real_stats`).
CACHE_ENV = "SAGAN_TF_CACHE"
#: Real activations kept for KID in the cached statistics (they are kept whether KID is asked for or not, so that
#: one cache entry serves both).
KID_SUBSET_SIZE = 10_000


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How to evaluate a generator.

    Attributes:
      num_samples: generated images per evaluation (the SAGAN paper: 50,000).
      batch_size: images generated and classified per batch.
      classifier: what `load_classifier_for` loads: None (the dataset's default: "synthetic" for the synthetic
        dataset, "inception" otherwise), "inception", "synthetic", a TF-Hub handle, a SavedModel directory or a
        `.keras` file.
      split: the dataset split of the real images.
      num_real: real images in the statistics (fewer if the split is smaller); None: the whole split.
      compute_kid: also compute the Kernel Inception Distance.
      num_splits: Inception Score splits (1: TF-GAN's definition; papers average 10 splits).
      seed: seed of the latents and labels; the same seed gives the same figures.
      cache_dir: directory of the cached real statistics; None: `default_cache_dir()`.
      log_every: batches between progress lines (0: none).
    """

    num_samples: int = 10_000
    batch_size: int = 250
    classifier: Optional[str] = None
    split: str = "train"
    num_real: Optional[int] = 10_000
    compute_kid: bool = False
    num_splits: int = 1
    seed: int = 0
    cache_dir: Optional[str] = None
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
        if not is_int(self.seed) or not 0 <= self.seed < 2**31:
            fail(f"seed must be an integer in [0, 2**31). Received: seed={self.seed!r}")
        if not is_int(self.log_every) or self.log_every < 0:
            fail(f"log_every must be an integer >= 0. Received: log_every={self.log_every!r}")
        if not isinstance(self.split, str) or not self.split:
            fail(f"split must be a dataset split name such as 'train'. Received: split={self.split!r}")


def default_cache_dir():
    """Where real statistics are cached: `$SAGAN_TF_CACHE/real_stats`, else `~/.cache/sagan_tf/real_stats`."""
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "sagan_tf")
    return os.path.join(base, "real_stats")


def default_classifier(dataset):
    """The classifier spec used for `dataset` when none is given.

    Returns:
      `metrics.SYNTHETIC_CLASSIFIER` ("synthetic") for the embedded synthetic dataset, else
      `metrics.INCEPTION_CLASSIFIER` ("inception").
    """
    return metrics.SYNTHETIC_CLASSIFIER if dataset == "synthetic" else metrics.INCEPTION_CLASSIFIER


def load_classifier_for(dataset, spec=None, batch_size=None):
    """Loads the classifier of the metrics for `dataset` (see `metrics.load_classifier`).

    Args:
      dataset: the dataset name (chooses the default classifier).
      spec: None (the default of `dataset`, see `default_classifier`) or anything `metrics.load_classifier` takes.
      batch_size: largest number of images per classifier call.

    Returns:
      A `metrics.Classifier`.

    Raises:
      ClassifierUnavailableError: (a `UsageError`) the classifier is not available here; the message says how to
        supply it.
    """
    if spec is None or spec == "":
        spec = default_classifier(dataset)
    # The classifier's layers stay float32 whatever global mixed-precision policy the caller trains with.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return metrics.load_classifier(spec, batch_size=batch_size)
    except errors.ClassifierUnavailableError as error:
        raise errors.ClassifierUnavailableError(
            f"The classifier for FID/IS ({spec!r}) is not available: {error} Pass another one with --classifier "
            "(a SavedModel directory, a TF-Hub handle or a .keras file returning (features, logits)).") from None
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _say(print_fn, line):
    if print_fn is not None:
        print_fn(line)


def real_statistics(dataset, classifier, image_size, split="train", num_real=10_000, cache_dir=None, data_dir=None,
                    batch_size=250, log_every=20, print_fn=print):
    """The statistics of real images of `dataset` seen by `classifier`, computed once and then read from disk.

    Real images come from `sagan_tf.data.load` in dataset order (no shuffling, no flips, no repetition), the
    first `num_real` of `split` (fewer when the split is smaller). The cache key is (dataset, split with the count,
    e.g. "train[:10000]", image size, `classifier.classifier_id`).

    Args:
      dataset: a `sagan_tf.data` name.
      classifier: a `metrics.Classifier`.
      image_size: the size the images are loaded at (the generator's output size).
      split: dataset split.
      num_real: number of real images; None: the whole split (which must be finite).
      cache_dir: cache directory; None: `default_cache_dir()`.
      data_dir: TFDS data directory (or the base of relative "folder:" paths).
      batch_size: images per batch.
      log_every: batches between progress lines (0: none).
      print_fn: where progress lines go (None: silent).

    Returns:
      A `metrics.RealStatistics` (with `KID_SUBSET_SIZE` real activations for KID).

    Raises:
      DatasetError: the data cannot be loaded.
    """
    cache = metrics.StatisticsCache(cache_dir or default_cache_dir())
    split_key = split if num_real is None else f"{split}[:{num_real}]"

    def compute():
        start = time.perf_counter()
        _say(print_fn, f"Computing real statistics of {dataset} {split_key} at {image_size}x{image_size} with "
                       f"{classifier.classifier_id} (once; cached in {cache.directory}).")
        images = data.load(dataset, split, image_size=image_size, batch_size=batch_size, data_dir=data_dir,
                           shuffle=False, random_flip=False, repeat=False)

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

    return cache.get_or_compute(dataset, split_key, image_size, classifier.classifier_id, compute)


def _sampler(generator, latent_dim):
    """A function (z, labels) -> images of `generator` in inference mode; a `tf.function` on TensorFlow."""
    def sample(z, labels):
        return generator(z, labels, training=False)

    if keras.backend.backend() != "tensorflow":
        return sample
    import tensorflow as tf

    return tf.function(sample, autograph=False,
                       input_signature=[tf.TensorSpec([None, latent_dim], tf.float32),
                                        tf.TensorSpec([None], tf.int32)])


def generator_inputs(latent_dim, num_classes, num_samples, batch_size, seed=0):
    """Yields the (z, labels) batches `evaluate_generator` uses: z ~ N(0, I), labels uniform in [0, num_classes).

    The batches are drawn one after the other from `numpy.random.default_rng(seed)`, so the same arguments give
    the same inputs. Labels are all zeros for unconditional models (`num_classes` 0), which ignore them.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        z = rng.standard_normal((n, latent_dim)).astype("float32")
        labels = rng.integers(0, num_classes, n).astype("int32") if num_classes else np.zeros(n, "int32")
        yield z, labels


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
                       print_fn=print):
    """FID, Inception Score and optionally KID of `config.num_samples` images of `generator`.

    Images are generated in batches of `config.batch_size` from `generator_inputs(..., config.seed)` with
    `training=False` and streamed through `classifier` into a `metrics.MetricAccumulator`; no list of images or
    activations is kept, so memory does not grow with `num_samples`. Of `config`, this reads `num_samples`,
    `batch_size`, `seed`, `compute_kid` (KID against `real_stats.kid_subset`), `num_splits` (Inception Score
    splits) and `log_every`; its other fields say how `Evaluator.create` loads `classifier` and `real_stats`.

    Args:
      generator: a callable `(z, labels, training=False) -> images in [-1, 1]`, e.g. a `Generator` or a SAGAN's
        `sampling_generator`.
      classifier: a `metrics.Classifier`.
      real_stats: the `metrics.RealStatistics` to compare with (see `real_statistics`).
      config: an `EvalConfig`; None: `EvalConfig()`.
      latent_dim: size of z; None reads `generator.config.latent_dim`.
      num_classes: number of classes (0: unconditional); None reads `generator.config.num_classes`.
      print_fn: where progress lines go (None: silent).

    Returns:
      {"fid": float, "inception_score": float, "kid": float (only with `config.compute_kid`), "num_samples": int,
      "seconds": float (wall time of this evaluation)}.

    Raises:
      ValueError: `config` is not an `EvalConfig`; the generator's dimensions are unknown; KID was asked for and
        `real_stats` holds no real activations.
    """
    config = EvalConfig() if config is None else config
    if not isinstance(config, EvalConfig):
        raise ValueError(f"`config` must be an EvalConfig or None. Received: config={config!r}")
    num_samples, batch_size, seed = config.num_samples, config.batch_size, config.seed
    latent_dim, num_classes = _dimensions(generator, latent_dim, num_classes)
    start = time.perf_counter()
    sample = _sampler(generator, latent_dim)
    accumulator = metrics.MetricAccumulator(num_splits=config.num_splits, num_samples=num_samples,
                                            kid_capacity=KID_SUBSET_SIZE if config.compute_kid else 0, seed=seed)
    total_batches = -(-num_samples // batch_size)
    for batch, (z, labels) in enumerate(generator_inputs(latent_dim, num_classes, num_samples, batch_size, seed), 1):
        images = sample(z, labels)
        accumulator.update(*classifier(images))
        if config.log_every and batch % config.log_every == 0 and batch < total_batches:
            _say(print_fn, f"  evaluation: {accumulator.frechet.count}/{num_samples} samples "
                           f"({time.perf_counter() - start:.1f} s)")
    result = accumulator.result(real_stats)
    figures = {"fid": result["fid"], "inception_score": result["inception_score"]}
    if config.compute_kid:
        if result["kid"] is None:
            raise ValueError("KID needs real activations, and these real statistics hold none (kid_subset is empty).")
        figures["kid"] = result["kid"]
    figures["num_samples"] = int(num_samples)
    figures["seconds"] = time.perf_counter() - start
    return figures


class Evaluator:
    """A classifier, real statistics and an `EvalConfig`: `evaluator(generator)` returns the figures.

    Build it with `Evaluator.create`, which loads the classifier and the (cached) real statistics at once, so that
    a missing classifier or dataset fails before any training. `setup_seconds` is the time that took.

    Args:
      classifier: a `metrics.Classifier`.
      real_stats: a `metrics.RealStatistics`.
      config: an `EvalConfig`.
      print_fn: where progress lines go (None: silent).
      setup_seconds: time spent loading the classifier and the real statistics.
    """

    def __init__(self, classifier, real_stats, config, print_fn=print, setup_seconds=0.0):
        if not isinstance(config, EvalConfig):
            raise ValueError(f"`config` must be an EvalConfig. Received: config={config!r}")
        self.classifier = classifier
        self.real_stats = real_stats
        self.config = config
        self.print_fn = print_fn
        self.setup_seconds = setup_seconds

    @classmethod
    def create(cls, dataset, image_size, config=None, data_dir=None, print_fn=print):
        """Loads the classifier for `dataset` and the real statistics of `config.split` at `image_size`.

        Raises:
          ClassifierUnavailableError: the classifier is not available.
          DatasetError: the real images cannot be loaded.
        """
        config = config or EvalConfig()
        start = time.perf_counter()
        classifier = load_classifier_for(dataset, config.classifier, config.batch_size)
        stats = real_statistics(dataset, classifier, image_size, config.split, config.num_real, config.cache_dir,
                                data_dir, config.batch_size, config.log_every, print_fn)
        return cls(classifier, stats, config, print_fn, time.perf_counter() - start)

    def __call__(self, generator, latent_dim=None, num_classes=None):
        """The figures of `generator` (see `evaluate_generator`)."""
        return evaluate_generator(generator, self.classifier, self.real_stats, self.config, latent_dim, num_classes,
                                  self.print_fn)


__all__ = ["EvalConfig", "Evaluator", "default_cache_dir", "default_classifier", "load_classifier_for",
           "real_statistics", "generator_inputs", "evaluate_generator"]
