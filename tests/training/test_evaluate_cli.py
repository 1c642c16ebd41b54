"""Evaluation in `train_lib.run` (start, every n, end) and `python -m training.evaluate` on the run it trained."""

import glob
import json
import logging
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import evaluation
from sagan_tf.errors import ClassifierUnavailableError
from tests.test_evaluation import tiny_classifier_file
from tests.training.test_train_lib import tiny_config
from training import train_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVAL = dict(eval_samples=16, eval_batch_size=8, eval_num_real=32)


def options_for(model_dir, **overrides):
    values = dict(model_dir=str(model_dir), strategy="off", sample_every=0, checkpoint_every=0, log_every=2,
                  handle_signals=False)
    values.update(overrides)
    return train_lib.TrainOptions(**values)


def event_scalars(directory):
    values = {}
    for path in glob.glob(f"{directory}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("eval"):
                    values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step run evaluated every 2 steps with a tiny classifier: (RunResult, classifier path, cache dir)."""
    base = tmp_path_factory.mktemp("evaluated_run")
    classifier = tiny_classifier_file(base / "tiny.keras")
    cache = str(base / "cache")
    result = train_lib.run(tiny_config(train_steps=3), options_for(base / "run", eval_every=2, classifier=classifier,
                                                      eval_cache_dir=cache, **EVAL))
    return result, classifier, cache


def test_run_records_start_every_and_end_figures(trained):
    result, _, _ = trained
    assert sorted(result.evaluations) == [0, 2, 3]
    for figures in result.evaluations.values():
        assert figures["num_samples"] == 16 and np.isfinite(figures["fid"]) and figures["inception_score"] >= 1
    assert result.evaluations[0]["fid"] != result.evaluations[3]["fid"]
    assert 0 < result.eval_seconds < result.seconds
    assert re.fullmatch(r"FID [\d.]+ -> [\d.]+, IS [\d.]+ -> [\d.]+ \(evaluation \d+ s of \d+ s\)",
                        result.evaluation_summary())
    scalars = event_scalars(result.model_dir)
    assert sorted(scalars["eval/fid"]) == [0, 2, 3]
    np.testing.assert_allclose(scalars["eval/fid"][3], result.evaluations[3]["fid"], rtol=1e-6)
    # The last figures are those of the final sampling (EMA) generator.
    evaluator = evaluation.Evaluator.create(
        "synthetic", 16, evaluation.EvalConfig(num_samples=16, batch_size=8, classifier=trained[1], num_real=32,
                                               cache_dir=trained[2]), print_fn=None)
    np.testing.assert_allclose(evaluator(result.model.sampling_generator)["fid"], result.evaluations[3]["fid"],
                               rtol=1e-6)


def test_requested_evaluation_with_a_missing_classifier_fails_before_training(tmp_path):
    with pytest.raises(ClassifierUnavailableError, match="missing.keras"):
        train_lib.run(tiny_config(train_steps=1),
                      options_for(tmp_path, classifier=str(tmp_path / "missing.keras"), **EVAL))
    assert not (tmp_path / "checkpoints").exists()


def test_default_evaluation_without_its_classifier_warns_and_trains(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(evaluation, "default_classifier", lambda dataset: str(tmp_path / "missing.keras"))
    with caplog.at_level(logging.WARNING):
        trainer = train_lib.Trainer(tiny_config(train_steps=1), options_for(tmp_path / "run", **EVAL))
    assert trainer.evaluator is None  # training goes on without the EvaluateEvery callback
    result = trainer._result(stopped=None)
    assert result.evaluations == {} and result.evaluation_summary() is None
    assert any("without FID/IS evaluation" in r.getMessage() and "--classifier" in r.getMessage()
               for r in caplog.records)


def test_eval_options_are_validated(tmp_path):
    with pytest.raises(train_lib.UsageError, match="eval_samples is 0"):
        options_for(tmp_path, eval_every=5).validate()
    with pytest.raises(train_lib.UsageError, match="eval_samples must be 0 .* Received: eval_samples=1"):
        options_for(tmp_path, eval_samples=1).validate()


def start(module, args, **env):
    environment = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1",
                       PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_writes_json_and_tensorboard_and_reports_usage_errors(trained, tmp_path):
    result, classifier, cache = trained
    run_dir = result.model_dir
    common = ["--num_samples=16", "--batch_size=8", "--num_real=32", f"--classifier={classifier}",
              f"--cache_dir={cache}"]
    (tmp_path / "untrained").mkdir()
    (tmp_path / "untrained" / "config.json").write_text(tiny_config().to_json())
    processes = {
        "ema": start("training.evaluate", [f"--model_dir={run_dir}", *common, "--kid"]),
        "noema": start("training.evaluate", [f"--model_dir={run_dir}", *common, "--noema", "--checkpoint=3"]),
        "missing dir": start("training.evaluate", [f"--model_dir={tmp_path / 'nothing'}", *common]),
        "no checkpoint": start("training.evaluate", [f"--model_dir={tmp_path / 'untrained'}", *common]),
        "run flags": start("training.run", [f"--model_dir={tmp_path / 'flags'}", "--eval_every=5", "--eval_samples=0"]),
    }
    outputs = {name: (*p.communicate(timeout=300), p.returncode) for name, p in processes.items()}

    stdout, stderr, code = outputs["ema"]
    assert code == 0, stderr
    printed = json.loads(stdout.strip().splitlines()[-1])
    written = json.loads((pathlib.Path(run_dir) / "eval" / "step_00000003.json").read_text())
    assert printed == written
    assert (written["step"], written["ema"], written["num_samples"], written["num_real"]) == (3, True, 16, 32)
    assert written["dataset"] == "synthetic" and written["classifier"] == classifier and written["kid"] is not None
    # The same generator, samples, seed and real statistics as the end-of-training evaluation.
    np.testing.assert_allclose(written["fid"], result.evaluations[3]["fid"], rtol=1e-4)
    np.testing.assert_allclose(written["inception_score"], result.evaluations[3]["inception_score"], rtol=1e-4)

    stdout, stderr, code = outputs["noema"]
    assert code == 0, stderr
    raw = json.loads((pathlib.Path(run_dir) / "eval" / "step_00000003_noema.json").read_text())
    assert raw["ema"] is False and "kid" not in raw and raw["fid"] != written["fid"]
    # Both commands ran at once: latest.json holds whichever finished last.
    assert json.loads((pathlib.Path(run_dir) / "eval" / "latest.json").read_text()) in (written, raw)
    scalars = event_scalars(pathlib.Path(run_dir) / "eval")
    np.testing.assert_allclose(scalars["eval/fid"][3], written["fid"], rtol=1e-6)
    np.testing.assert_allclose(scalars["eval_noema/fid"][3], raw["fid"], rtol=1e-6)
    assert 3 in scalars["eval/kid"]

    for name, pattern in [("missing dir", r"No run directory .*nothing"),
                          ("no checkpoint", r"has no checkpoint yet"),
                          ("run flags", r"eval_samples is 0")]:
        stdout, stderr, code = outputs[name]
        assert code == 2, (name, stdout, stderr)
        assert "Traceback" not in stdout + stderr, (name, stderr)
        message = stderr.strip().splitlines()[-1]
        assert message.startswith("Error: ") and re.search(pattern, message), (name, stderr)
