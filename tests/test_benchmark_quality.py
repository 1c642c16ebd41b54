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


def test_small_data_variants_train_on_a_seeded_share_of_each_class_with_their_options(tmp_path):
    folder = tiny_image_folder(tmp_path / "images", classes=("blue", "green", "red"), per_class=10, size=8)
    spec = dict(preset="synthetic32", image_size=32, dataset=f"folder:{folder}", steps=7, attention="on",
                augment="ada", ada_kimg=50.0, lecam_weight=0.3, orthogonal_reg=1e-4, data_fraction=0.2,
                subset_seed=0, mixed_precision="float32", seed=1)
    training = quality.experiment(spec).training
    assert (training.augment, training.ada_kimg, training.lecam_weight, training.orthogonal_reg) == (
        "ada", 50.0, 0.3, 1e-4)
    assert training.dataset == f"folder:{folder}"  # evaluation compares with the whole folder
    subset = quality.training_dataset(spec)
    assert subset.num_images == 6 and sorted(subset.folder_scan.labels) == [0, 0, 1, 1, 2, 2]
    assert quality.training_dataset(dict(spec, seed=2)).folder_scan.files == subset.folder_scan.files
    assert quality.training_dataset(dict(spec, subset_seed=1)).folder_scan.files != subset.folder_scan.files
    assert quality.training_dataset(dict(spec, data_fraction=1.0)).num_images == 30
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        subset.class_subset(0.0)
    assert quality.variant_name(spec) == (
        "float32-attention_on-data_fraction_0.2-augment_ada-lecam_weight_0.3-orthogonal_reg_0.0001-seed1")
    assert quality.group_name(spec) == ("float32, attention on, data_fraction 0.2, augment ada, lecam_weight 0.3, "
                                        "orthogonal_reg 0.0001")
    # The paper's recipe keeps the names of the records written before these options.
    assert quality.variant_name(dict(mixed_precision="float32", attention="on", seed=0)) == "float32-attention_on-seed0"


def test_the_variants_are_the_product_of_the_flags():
    args = quality.parse_args(["--data_fraction=0.1,1", "--augment=none,ada", "--lecam_weight=0,0.3",
                               "--seeds=0,1"])
    variants = quality.variant_specs(args)
    assert len(variants) == 16 and variants[0] == dict(
        mixed_precision="float32", attention="on", data_fraction=0.1, augment="none", lecam_weight=0.0,
        orthogonal_reg=0.0, seed=0)
    for flags, message in ((["--augment=rotate"], "--augment takes a comma-separated subset of none,diffaugment,ada"),
                           (["--data_fraction=1.5"], r"--data_fraction takes fractions in \(0, 1\]"),
                           (["--lecam_weight=-1"], "take weights >= 0"),
                           (["--orthogonal_reg=big"], "--orthogonal_reg takes a comma-separated list")):
        with pytest.raises(SystemExit, match=message):
            quality.variant_specs(quality.parse_args(flags))


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
