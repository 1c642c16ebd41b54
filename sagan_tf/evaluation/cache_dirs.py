"""Where evaluation caches what it computes once: `$SAGAN_TF_CACHE` (default `~/.cache/sagan_tf`), with

    real_stats/            the statistics of the real images (`sagan_tf.evaluation.metrics.StatisticsCache`)
    domain_classifiers/    the trained domain classifiers and their cards (`sagan_tf.evaluation.classifiers.cache`)
"""

import os

#: Environment variable naming the cache root.
CACHE_ENV = "SAGAN_TF_CACHE"
REAL_STATISTICS = "real_stats"
DOMAIN_CLASSIFIERS = "domain_classifiers"


def cache_dir(kind):
    """`$SAGAN_TF_CACHE/<kind>`, else `~/.cache/sagan_tf/<kind>`.

    Args:
      kind: `REAL_STATISTICS` or `DOMAIN_CLASSIFIERS`.
    """
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "sagan_tf")
    return os.path.join(root, kind)


__all__ = ["CACHE_ENV", "REAL_STATISTICS", "DOMAIN_CLASSIFIERS", "cache_dir"]
