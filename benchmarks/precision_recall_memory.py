"""Memory and time of precision/recall/density/coverage for a large evaluation: prints one JSON line.

Usage:
  python benchmarks/precision_recall_memory.py                          # 50,000 samples of 2,048 features
  python benchmarks/precision_recall_memory.py --num_samples=20000      # compare: the memory should be the same

Streams `--num_samples` random generated feature rows (Inception's dimension by default) in batches of 500 through
the 10,000-row reservoir that `sagan_tf.evaluation` keeps (`metrics.ActivationReservoir`), then computes the four
figures against 10,000 real rows with `metrics.precision_recall_density_coverage` (k = 3, blocks of 1,024 rows).
The figures of random features mean nothing; the cost does not depend on them. Reported: resident set size before,
its peak while streaming and while computing (sampled every 20 ms), the growth over the stored float32 rows, and
the wall time of the computation.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.machine import PeakSampler, rss_mib  # noqa: E402
from sagan_tf.evaluation import metrics  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_samples", type=int, default=50_000)
    parser.add_argument("--feature_dim", type=int, default=2048)
    parser.add_argument("--subset", type=int, default=10_000, help="Reservoir size (evaluation.KID_SUBSET_SIZE).")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    real = rng.standard_normal((args.subset, args.feature_dim), dtype=np.float32)
    reservoir = metrics.ActivationReservoir(args.subset, seed=0)
    before = rss_mib()
    sampler = PeakSampler()
    sampler.start()
    for start in range(0, args.num_samples, 500):
        reservoir.update(rng.standard_normal((min(500, args.num_samples - start), args.feature_dim),
                                             dtype=np.float32) + 0.1)
    streaming_peak = sampler.stop()
    fake = reservoir.samples()
    stored = rss_mib()
    sampler = PeakSampler()
    sampler.start()
    began = time.perf_counter()
    figures = metrics.precision_recall_density_coverage(real, fake, k=args.k)
    seconds = time.perf_counter() - began
    peak = sampler.stop()
    print(json.dumps({
        "num_samples": args.num_samples, "feature_dim": args.feature_dim, "subset": args.subset, "k": args.k,
        "stored_rows_mib": round((real.nbytes + fake.nbytes + reservoir._buffer.nbytes) / 2**20, 1),
        "rss_before_mib": round(before, 1), "streaming_peak_rss_mib": round(streaming_peak, 1),
        "rss_before_figures_mib": round(stored, 1), "figures_peak_rss_mib": round(peak, 1),
        "figures_growth_mib": round(peak - stored, 1), "figures_seconds": round(seconds, 1),
        "load_avg_1min": os.getloadavg()[0], **{name: round(value, 4) for name, value in figures.items()}}))


if __name__ == "__main__":
    main()
