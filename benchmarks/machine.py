"""What the benchmarks measure about the machine and process they run on: the CPU, the fastest of repeated calls, the
resident memory (Linux /proc: the current RSS and a peak sampler)."""

import os
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_description():
    """The CPU's model name and core count (Linux /proc/cpuinfo)."""
    model = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model} ({os.cpu_count()} cores)"


def fastest_call(call, repeats):
    """The shortest of `repeats` timed calls of `call` (which must block until its work is done), after one
    untimed call (tracing, compilation)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


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
