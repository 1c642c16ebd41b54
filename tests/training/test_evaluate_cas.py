"""`python -m training.evaluate --cas` (`training.evaluate_cas`): the record beside the eval records, its provenance
and TensorBoard scalars, and the refusals (an unconditional run, flags that do not go with --cas)."""

import json
import pathlib
import shutil

import numpy as np
import pytest
from absl import flags as absl_flags

from sagan_tf.evaluation.classifiers import train, training_data
from tests.tiny import event_scalars, tiny_config
from training import evaluate as evaluate_cli

LEGACY_RUN = pathlib.Path(__file__).resolve().parents[1] / "legacy" / "run_2663ad6"  # conditional, 16x16, synthetic


def evaluate(*args):
    values = absl_flags.FlagValues()
    evaluate_cli.define_flags(values)
    values(["evaluate", *args])
    return evaluate_cli.main(["evaluate"], values)


def test_cas_writes_its_record_beside_the_eval_records(tmp_path, monkeypatch, capsys):
    model_dir = tmp_path / "run"
    shutil.copytree(LEGACY_RUN, model_dir)  # a trained conditional run (step 2), without training one here
    monkeypatch.setattr(train, "default_steps", lambda num_train, batch_size: 20)
    monkeypatch.setattr(training_data, "MAX_HELDOUT", 500)
    latest = (model_dir / "eval" / "latest.json").read_text()
    assert evaluate(f"--model_dir={model_dir}", "--cas", "--cas_samples_per_class=8", "--seed=5") == 0
    summary, printed = capsys.readouterr().out.strip().splitlines()[-2:]
    record = json.loads((model_dir / "eval" / "cas_step_00000002.json").read_text())
    assert json.loads(printed) == record
    assert (model_dir / "eval" / "latest.json").read_text() == latest  # latest.json stays FID's
    figures, provenance = record["figures"], record["provenance"]
    assert set(figures) == {"cas/top1", "cas/top5", "cas/real_top1", "cas/real_top5", "cas/ratio_top1",
                            "cas/ratio_top5", "cas/chance_top1"}
    assert 0 <= figures["cas/top1"] <= 1 and 0 < figures["cas/real_top1"] <= 1
    assert figures["cas/ratio_top1"] == pytest.approx(figures["cas/top1"] / figures["cas/real_top1"])
    assert summary.startswith(f"CAS top-1 {figures['cas/top1']:.4f} (real {figures['cas/real_top1']:.4f}, ratio ")
    assert (record["step"], record["ema"], record["dataset"], record["seed"]) == (2, True, "synthetic", 5)
    assert (provenance["step"], provenance["generator"], provenance["seed"]) == (2, "ema", 5)
    assert provenance["generated_per_class"] == provenance["real_per_class"] == [8] * 4
    assert provenance["samples_per_class"] == 8 and provenance["num_heldout"] == 500
    training = provenance["training"]
    assert (training["steps"], training["batch_size"], training["epochs"]) == (20, 32, 20.0)  # 32 images: batch 32
    assert provenance["checkpoint"].endswith("ckpt-2") and record["seconds"] > 0
    assert record["images"] == 2 * (32 + 500)
    scalars = event_scalars(model_dir / "eval")
    np.testing.assert_allclose(scalars["eval/cas/top1"][2], figures["cas/top1"], rtol=1e-6)
    assert json.loads(scalars["eval/cas/provenance"][2]) == provenance


def test_cas_refuses_an_unconditional_run_and_flags_it_does_not_take(tmp_path, capsys):
    unconditional = tmp_path / "unconditional"
    unconditional.mkdir()
    (unconditional / "config.json").write_text(tiny_config(num_classes=0).to_json())
    for args, message in [
        ([f"--model_dir={unconditional}", "--cas"],
         f"Error: --cas measures a class-conditional generator: it trains a classifier on images generated for each "
         f"class and tests it on real images of those classes, and the run in {unconditional} is unconditional "
         "(num_classes=0; dataset synthetic), so its images have no class to be tested against. Leave out --cas "
         "(FID, IS, KID and precision/recall measure an unconditional generator)."),
        ([f"--model_dir={LEGACY_RUN}", "--cas", "--truncation=0.5"],
         "Error: --cas does not take --truncation (it evaluates the untruncated generator); drop --truncation, or run "
         "that evaluation without --cas. Received: truncation=['0.5']"),
        ([f"--model_dir={LEGACY_RUN}", "--cas", "--cas_samples_per_class=0"],
         "Error: --cas_samples_per_class must be at least 1 (leave it out: as many as the real training split holds "
         "of each class). Received: 0"),
        ([f"--model_dir={LEGACY_RUN}", "--cas_samples_per_class=8"],
         "Error: --cas_samples_per_class sets the generated images of --cas; add --cas, or drop it."),
    ]:
        assert evaluate(*args) == 2, args
        assert capsys.readouterr().err.strip().splitlines()[-1] == message
