"""benchmarks/serving_latency.py and benchmarks/serving_memory.py measure exports and report consistent figures."""

import json

import pytest

from benchmarks import serving_latency


def test_measure_reports_consistent_figures(exported):
    _, config, path, _ = exported
    record = serving_latency.measure(path, iterations=4, batch64_iterations=1, warmup=1)
    assert record["conditional"] == config.conditional
    assert (record["image_size"], record["latent_dim"]) == (32, config.latent_dim)
    assert 0 < record["batch1_p50_ms"] <= record["batch1_p99_ms"]
    assert abs(record["batch64_images_per_s"] * record["batch64_s"] / 64 - 1) < 0.01  # both rounded
    assert record["generate_batch1_p50_ms"] > 0


def test_memory_benchmark_measures_one_request_in_a_fresh_process(capped):
    # benchmarks/serving_memory.py: one generate request of the given size, in its own process, and its growth.
    from benchmarks import serving_memory

    config, path, _ = capped
    if not config.conditional:
        pytest.skip("one export is enough: each measurement starts a process")
    figures = serving_memory._measure(path, 2)
    assert set(figures) == {"rss_after_load_mib", "growth_mib", "seconds"}
    assert figures["rss_after_load_mib"] > 100 and figures["seconds"] > 0
    # The request grows the process (its first call allocates feature maps, images and PNGs), and by less than
    # TensorFlow and the model took to load: growth read in the wrong unit (ru_maxrss is KiB) or of the wrong
    # samples (zero) fails one side.
    assert 0 < figures["growth_mib"] < figures["rss_after_load_mib"], figures


def test_memory_benchmark_measures_one_unknown_class_name(capsys):
    # The child's measurement, in this process (the fresh process around it is the one _measure starts).
    from benchmarks import serving_memory

    serving_memory._unknown_name_child(100, num_classes=4, class_name_bytes=8)
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(figures) == {"growth_mib", "seconds", "refused"}
    assert figures["refused"].startswith("assertion failed: [Class name too long: the name at position 0 of the "
                                         "request has 100 bytes, and the longest class name of this export has 8")
    assert figures["growth_mib"] >= 0 and figures["seconds"] > 0
