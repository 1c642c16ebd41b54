"""benchmarks/serving_latency.py measures an export's signatures and reports consistent figures."""

from benchmarks import serving_latency


def test_measure_reports_consistent_figures(exported):
    _, config, path, _ = exported
    record = serving_latency.measure(path, iterations=4, batch64_iterations=1, warmup=1)
    assert record["conditional"] == config.conditional
    assert (record["image_size"], record["latent_dim"]) == (32, config.latent_dim)
    assert 0 < record["batch1_p50_ms"] <= record["batch1_p99_ms"]
    assert abs(record["batch64_images_per_s"] * record["batch64_s"] / 64 - 1) < 0.01  # both rounded
    assert record["generate_batch1_p50_ms"] > 0
