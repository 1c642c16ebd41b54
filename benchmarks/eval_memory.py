"""Memory and speed of a streaming FID/IS evaluation: prints one JSON line.

Usage:
  python benchmarks/eval_memory.py                       # 50,000 samples
  python benchmarks/eval_memory.py --num_samples=5000    # compare: the memory figures should be the same

Evaluates the synthetic32 generator (random weights: the cost does not depend on them) with
`sagan_tf.evaluation.evaluate_generator` and the classifier `--classifier` (default: the shipped synthetic
classifier; an untrained network of the same architecture when it is not installed) against the cached real
statistics of `--num_real` synthetic training images (computed first if not cached yet; not measured). A warm-up
evaluation of two batches runs first, so tracing and allocator warm-up are not counted as growth. Reported:

  rss_before_mib        resident set size after the warm-up, before the measured evaluation
  peak_rss_mib          highest RSS seen during the measured evaluation (sampled every 20 ms)
  rss_growth_mib        peak_rss_mib - rss_before_mib
  rss_at_10pct_mib, rss_at_end_mib   RSS after 10% of the samples and after the last: memory does not grow with
                        the sample count when these two are equal
  max_rss_mib           the process's getrusage high-water mark (setup included)
  seconds, images_per_s wall time of the measured evaluation (generation + classification + metrics)
"""

import argparse
import dataclasses
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from benchmarks.machine import PeakSampler, rss_mib  # noqa: E402
from sagan_tf import errors  # noqa: E402
from sagan_tf.evaluation import classifiers, evaluator as evaluation  # noqa: E402
from sagan_tf.config.presets import get_preset  # noqa: E402
from sagan_tf.run.restore import build_generator  # noqa: E402


def load_classifier(spec):
    try:
        return evaluation.load_classifier_for("synthetic", spec), spec
    except errors.ClassifierUnavailableError:
        if spec != classifiers.SYNTHETIC_CLASSIFIER:
            raise
        from sagan_tf.evaluation.classifiers.synthetic import build_synthetic_classifier

        return classifiers.load_classifier(build_synthetic_classifier()), "synthetic (untrained stand-in)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_samples", type=int, default=50_000)
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--classifier", default=classifiers.SYNTHETIC_CLASSIFIER)
    parser.add_argument("--num_real", type=int, default=10_000)
    parser.add_argument("--cache_dir", default=None, help="real-statistics cache (default: the library's)")
    parser.add_argument("--kid", action="store_true", help="also compute KID")
    parser.add_argument("--precision_recall", action="store_true",
                        help="also compute precision/recall/density/coverage (off: the streaming FID/IS figures "
                             "earlier runs of this benchmark measured; benchmarks/precision_recall_memory.py measures "
                             "the k-NN pass)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    config = get_preset("synthetic32").model
    generator = build_generator(config)
    classifier, classifier_name = load_classifier(args.classifier)
    real = evaluation.real_statistics("synthetic", classifier, config.image_size, num_real=args.num_real,
                                      cache_dir=args.cache_dir, print_fn=lambda line: print(line, file=sys.stderr))
    total_batches = -(-args.num_samples // args.batch_size)
    tenth = max(1, total_batches // 10)
    eval_config = evaluation.EvalConfig(num_samples=args.num_samples, batch_size=args.batch_size, seed=args.seed,
                                        compute_kid=args.kid, compute_precision_recall=args.precision_recall,
                                        log_every=tenth)
    warm_up = dataclasses.replace(eval_config, num_samples=2 * args.batch_size)
    evaluation.evaluate_generator(generator, classifier, real, warm_up, print_fn=None)  # warm-up

    marks = {}

    def progress(line):
        samples = int(line.split(":", 1)[1].split("/", 1)[0])
        marks[samples] = rss_mib()

    rss_before = rss_mib()
    sampler = PeakSampler()
    sampler.start()
    figures = evaluation.evaluate_generator(generator, classifier, real, eval_config, print_fn=progress)
    peak = sampler.stop()
    rss_end = rss_mib()
    first_mark = marks[min(marks)] if marks else rss_end
    print(json.dumps({
        "benchmark": "eval_memory",
        "num_samples": args.num_samples,
        "batch_size": args.batch_size,
        "classifier": classifier_name,
        "compute_kid": args.kid,
        "compute_precision_recall": args.precision_recall,
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak, 1),
        "rss_growth_mib": round(peak - rss_before, 1),
        "rss_at_10pct_mib": round(first_mark, 1),
        "rss_at_end_mib": round(rss_end, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(figures["seconds"], 2),
        "images_per_s": round(args.num_samples / figures["seconds"], 1),
        "fid": round(figures["fid"], 3),
        "inception_score": round(figures["inception_score"], 4),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
