"""Resident memory of this process for the memory benchmarks (Linux /proc): the current RSS and a peak sampler."""

import os
import threading

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib():
    """The current resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


class PeakSampler(threading.Thread):
    """Samples `rss_mib()` every `interval` seconds until stopped; keeps the maximum in `peak`.

    Args:
      interval: seconds between samples.
    """

    def __init__(self, interval=0.02):
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, rss_mib(), threading.Event()

    def run(self):
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, rss_mib())

    def stop(self):
        """Stops sampling; returns the peak RSS in MiB, the current RSS included."""
        self._done.set()
        self.join()
        self.peak = max(self.peak, rss_mib())
        return self.peak
