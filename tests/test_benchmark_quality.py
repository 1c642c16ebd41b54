"""benchmarks/quality.py: the variants' configs, the summaries over seeds and the plot (its training runs are not
tests: the benchmark runs them)."""

import numpy as np
import pytest
from PIL import Image

from benchmarks import quality
from tests.tiny import tiny_image_folder


def record(seed, step, fid, attention="on", precision="float32"):
    return {"kind": "evaluation", "mixed_precision": precision, "attention": attention, "seed": seed, "step": step,
            "images_seen": step * 32, "fid": fid, "kid": fid / 100, "inception_score": 2.0, "precision": 0.5,
            "recall": 0.1 * seed, "density": 1.0, "coverage": 0.3}


def test_variants_are_the_preset_on_the_folder_with_or_without_attention(tmp_path):
    folder = tiny_image_folder(tmp_path / "images", classes=("blue", "green", "red"), per_class=2, size=8)
    spec = dict(preset="synthetic32", image_size=32, dataset=f"folder:{folder}", steps=7, attention="on")
    with_attention = quality.experiment(spec)
    assert (with_attention.model.num_classes, with_attention.training.train_steps) == (3, 7)
    assert with_attention.training.dataset == f"folder:{folder}" and with_attention.model.g_attention_resolutions
    without = quality.experiment({**spec, "attention": "off"})
    assert without.model.g_attention_resolutions == () == without.model.d_attention_resolutions
    assert without.model.g_channels == with_attention.model.g_channels  # nothing else changes
    with pytest.raises(SystemExit, match="makes 32x32 images, not --image_size=64"):
        quality.experiment({**spec, "image_size": 64})


def test_summaries_take_the_last_evaluation_of_each_seed():
    records = [record(0, 10, 50.0), record(0, 20, 10.0), record(1, 20, 14.0), record(2, 20, 12.0),
               record(0, 20, 30.0, attention="off"), {"kind": "variant"}]
    summaries = {s["group"]: s for s in quality.summaries(records)}
    on = summaries["float32, attention on"]
    assert on["seeds"] == [0, 1, 2] and on["fid_mean"] == 12.0 and on["fid_std"] == pytest.approx(2.0)
    assert on["recall_mean"] == pytest.approx(0.1) and on["recall_std"] == pytest.approx(0.1)
    off = summaries["float32, attention off"]
    assert off["fid_mean"] == 30.0 and off["fid_std"] is None


def test_plot_draws_every_group(tmp_path):
    records = [record(s, step, 100.0 / (step + 1) + s) for s in (0, 1) for step in (0, 10, 20)]
    records += [record(0, step, 50.0, precision="mixed_bfloat16") for step in (0, 10, 20)]
    path = quality.plot(records, str(tmp_path / "curves.png"), "test")
    image = np.asarray(Image.open(path))
    assert image.shape[0] > 500 and image.shape[1] > 1000 and image.std() > 10  # a drawn figure, not blank
