"""`--classifier=domain` as a user runs it, offline: training.run on a labelled image folder reports FID, KID, IS,
precision and recall at the start and the end with no further step; training.evaluate reuses the cached classifier;
a folder too small to train one is a one-paragraph error."""

import json
import re
import types

import pytest
from absl import flags as absl_flags

from sagan_tf.evaluation.classifiers import train
from tests.tiny import start_command, tiny_image_folder
from training import evaluate as evaluate_cli
from training import run as run_cli

FIGURES = (r"FID [\d.]+  IS [\d.]+  KID [-\d.e]+  precision [\d.]+  recall [\d.]+  density [\d.]+  coverage [\d.]+"
           r"  class acc [\d.]+  chance 0.500")  # a domain classifier of the folder's 2 labels: class accuracy too


COMMON = ["--image_size=32", "--batch_size=4", "--train_steps=2", "--eval_samples=16", "--log_every=1",
          "--sample_every=1000", "--classifier=domain"]


def test_a_folder_too_small_for_a_classifier_is_a_one_paragraph_error(tmp_path, monkeypatch, capsys):
    small = tiny_image_folder(tmp_path / "small", per_class=9, size=16)
    monkeypatch.setenv("SAGAN_TF_CACHE", str(tmp_path / "cache"))
    values = absl_flags.FlagValues()
    run_cli.define_flags(values)
    values(["run", f"--dataset=folder:{small}", f"--model_dir={tmp_path / 'refused'}", *COMMON])
    assert run_cli.main(["run"], values) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("Error: ") and "minimum of 10 images per class" in message, message
    assert not (tmp_path / "refused" / "checkpoints").exists()


# Slow: a subprocess trains a domain classifier and a GAN (~3 min on 2 cores). Fast siblings: the test above and
# tests/evaluation/classifiers/test_train_domain_classifier.py (a training run with the domain classifier, in this
# process).
@pytest.mark.slow
def test_run_and_evaluate_with_the_domain_classifier_of_a_folder(tmp_path, monkeypatch):
    folder = tiny_image_folder(tmp_path / "images", per_class=12, size=16)
    cache = tmp_path / "cache"
    run_dir = tmp_path / "run"
    run = start_command("training.run", [f"--dataset=folder:{folder}", f"--model_dir={run_dir}", *COMMON],
                        SAGAN_TF_CACHE=str(cache))
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    assert "Training without FID/IS evaluation" not in output
    assert "training one (once; later runs reuse it)" in output and "held-out accuracy" in output
    tags = re.findall(rf"eval step (\d+) \[(domain-[0-9a-f]{{8}})\]: {FIGURES} \(16 samples", output)
    assert [step for step, _ in tags] == ["0", "2"], output
    tag = tags[0][1]
    assert re.search(r"FID [\d.]+ -> [\d.]+, IS [\d.]+ -> [\d.]+, KID [-\d.e]+ -> [-\d.e]+, precision [\d.]+ -> "
                     r"[\d.]+, recall [\d.]+ -> [\d.]+", output), output
    (card_file,) = (cache / "domain_classifiers").glob("*.card.json")
    card = json.loads(card_file.read_text())
    assert tag == f"domain-{card['classifier_sha256'][:8]}" and card["image_size"] == 32
    assert card["classes"] == ["blue", "red"] and card["heldout_accuracy"] > card["majority_accuracy"]

    # training.evaluate's library function, in this process (one TensorFlow start less): it reuses the classifier.
    monkeypatch.setenv("SAGAN_TF_CACHE", str(cache))
    monkeypatch.setattr(train, "train_domain_classifier",
                        lambda *args, **kwargs: pytest.fail("the cached domain classifier was trained again"))
    config = evaluate_cli.eval_config(types.SimpleNamespace(
        num_samples=16, batch_size=8, classifier="domain", split="train", num_real=10_000, kid=True,
        precision_recall=True, is_splits=1, seed=0, cache_dir=None))
    record = evaluate_cli.evaluate_run(str(run_dir), config, print_fn=lambda line: None)
    assert record["classifier_tag"] == tag and record["provenance"]["classifier"]["card"] == card
    assert record["provenance"]["num_real"] == 24
    assert re.fullmatch(r"train\[:24\]@[0-9a-f]{12}", record["provenance"]["real_split"])
    assert {f"{tag}/{name}" for name in ("fid", "kid", "inception_score", "precision", "recall")} <= set(
        record["figures"])
    assert json.loads((run_dir / "eval" / "step_00000002.json").read_text()) == record
