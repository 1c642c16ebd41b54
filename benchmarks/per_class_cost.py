"""What `training.evaluate --per_class` costs per class: prints one JSON line.

Usage:
  python benchmarks/per_class_cost.py                    # d = 128 and 2048, 500 images per class
  python benchmarks/per_class_cost.py --no-imagenet      # without the imagenet128 generator and Inception timing

Measured on this machine, each the median of --repeats runs after a warm-up:

  sqrt_seconds_d<d>         one FID matrix square root term (TF-GAN's trace_sqrt_product through
                            `metrics.frechet_distance_from_statistics`) at feature dimension d: 128 (the domain
                            and synthetic classifiers) and 2048 (Inception's pool_3)
  figures_seconds_d<d>      all the figures of one class (`metrics.per_class.per_class_figures`: covariances, FID,
                            KID, precision and recall) of --per_class_samples generated against as many real features
  synthetic32_images_per_s  generation (synthetic32 generator, random weights) + classification (the synthetic
                            classifier) at batch 250: the per-class images of the embedded dataset
  imagenet128_generator_images_per_s, inception_v3_images_per_s   the imagenet128 generator (random weights) and
                            Keras's InceptionV3 with weights=None at 299x299 (TF-GAN's Inception is an Inception-v3
                            of the same shape; its weights cannot be had offline, and its cost does not depend on
                            them), at batch --imagenet_batch

and, computed from those figures (not measured): computed_imagenet_1000_classes_hours, the hours that 1,000 classes of
--per_class_samples images each would take on this machine (generation, Inception, the per-class figures at d=2048).
load_average_1min says how busy the machine was. Timings never go into tests.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from sagan_tf.evaluation import classifiers, metrics  # noqa: E402
from sagan_tf.evaluation.metrics import per_class  # noqa: E402
from sagan_tf.config.presets import get_preset  # noqa: E402
from sagan_tf.run.restore import build_generator  # noqa: E402


def median_seconds(function, repeats):
    function()  # warm-up: tracing, first allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def features(rng, count, dim):
    """Features with a full-rank, correlated covariance (as pooled activations are)."""
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return np.maximum(rng.normal(size=(count, dim)) @ mixing, 0)


def images_per_second(function, batch, repeats):
    return batch / median_seconds(function, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="128,2048")
    parser.add_argument("--per_class_samples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--imagenet", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--imagenet_batch", type=int, default=8)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "per_class_samples": args.per_class_samples}
    for dim in (int(d) for d in args.dims.split(",")):
        real, fake = features(rng, 2 * dim, dim), features(rng, 2 * dim, dim)
        c1, c2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
        m1, m2 = real.mean(0), fake.mean(0)
        result[f"sqrt_seconds_d{dim}"] = median_seconds(
            lambda: metrics.frechet_distance_from_statistics(m1, c1, m2, c2), args.repeats)
        real, fake = features(rng, args.per_class_samples, dim), features(rng, args.per_class_samples, dim)
        result[f"figures_seconds_d{dim}"] = median_seconds(lambda: per_class.per_class_figures(real, fake),
                                                           args.repeats)

    keras.utils.set_random_seed(0)
    config = get_preset("synthetic32").model
    generator = build_generator(config)
    classifier = classifiers.load_classifier(classifiers.SYNTHETIC_CLASSIFIER)
    z = rng.standard_normal((250, config.latent_dim)).astype("float32")
    labels = np.zeros(250, "int32")
    result["synthetic32_images_per_s"] = images_per_second(
        lambda: classifier(generator(z, labels, training=False)), 250, args.repeats)

    if args.imagenet:
        batch = args.imagenet_batch
        config = get_preset("imagenet128").model
        generator = build_generator(config)
        z = rng.standard_normal((batch, config.latent_dim)).astype("float32")
        labels = np.zeros(batch, "int32")
        result["imagenet128_generator_images_per_s"] = images_per_second(
            lambda: np.asarray(generator(z, labels, training=False)), batch, args.repeats)
        inception = keras.applications.InceptionV3(weights=None, include_top=True)
        pixels = rng.uniform(-1, 1, (batch, 299, 299, 3)).astype("float32")
        result["inception_v3_images_per_s"] = images_per_second(
            lambda: np.asarray(inception(pixels, training=False)), batch, args.repeats)
        images = 1000 * args.per_class_samples
        seconds = (images / result["imagenet128_generator_images_per_s"] + images / result["inception_v3_images_per_s"]
                   + 1000 * result["figures_seconds_d2048"] if "figures_seconds_d2048" in result else None)
        result["computed_imagenet_1000_classes_hours"] = None if seconds is None else seconds / 3600
    result["load_average_1min"] = os.getloadavg()[0]  # other work on the machine slows every figure
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
