"""Evaluation in `train_lib.run` (start, every n, end) and `python -m training.evaluate` on the run it trained."""

import json
import math
import logging
import os
import pathlib
import re
import types

import numpy as np
import pytest

from sagan_tf.evaluation import classifiers, evaluator as evaluation
from sagan_tf.errors import ClassifierUnavailableError, UsageError
from tests.tiny import (event_scalars, main_in_process, start_command, tiny_classifier_file, tiny_config,
                        tiny_image_folder, train_options)
from training import run as run_cli
from training import train_lib


def eval_config(classifier=None, cache_dir=None):
    return evaluation.EvalConfig(num_samples=16, batch_size=8, num_real=32, classifier=classifier,
                                 cache_dir=cache_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step run evaluated every 2 steps with a tiny classifier: (RunResult, Trainer, classifier path, cache)."""
    base = tmp_path_factory.mktemp("evaluated_run")
    classifier = tiny_classifier_file(base / "tiny.keras")
    cache = str(base / "cache")
    trainer = train_lib.Trainer(tiny_config(train_steps=3), train_options(
        base / "run", eval_every=2, evaluation=eval_config(classifier, cache)))
    return trainer.train(), trainer, classifier, cache


def test_run_records_start_every_and_end_figures(trained):
    result, trainer, classifier, cache = trained
    assert sorted(result.evaluations) == [0, 2, 3]
    for figures in result.evaluations.values():
        assert figures["num_samples"] == 16 and np.isfinite(figures["fid"]) and figures["inception_score"] >= 1
    assert result.evaluations[0]["fid"] != result.evaluations[3]["fid"]
    # Evaluation time is the classifier and real-statistics setup plus each evaluation's wall time, which
    # includes the generation and classification that the figures' own "seconds" measure.
    callback = trainer.evaluate
    assert result.eval_seconds == pytest.approx(trainer.evaluator.setup_seconds + callback.seconds, rel=1e-9)
    assert trainer.evaluator.setup_seconds > 0
    assert callback.seconds >= sum(figures["seconds"] for figures in result.evaluations.values()) > 0
    assert result.eval_seconds < result.seconds
    assert re.fullmatch(r"FID [\d.]+ -> [\d.]+, IS [\d.]+ -> [\d.]+, KID [\d.]+ -> [\d.]+, precision [\d.]+ -> [\d.]+, "
                        r"recall [\d.]+ -> [\d.]+, density [\d.]+ -> [\d.]+, coverage [\d.]+ -> [\d.]+ "
                        r"\(evaluation \d+ s of \d+ s\)",
                        result.evaluation_summary())
    tag = trainer.evaluator.tag
    assert result.evaluations[2]["provenance"]["classifier"]["tag"] == tag and tag.startswith("keras-")
    assert (result.evaluations[2]["provenance"]["step"], result.evaluations[2]["provenance"]["generator"]) == (2, "ema")
    scalars = event_scalars(result.model_dir)
    assert sorted(scalars[f"eval/{tag}/fid"]) == [0, 2, 3] and "eval/fid" not in scalars
    np.testing.assert_allclose(scalars[f"eval/{tag}/fid"][3], result.evaluations[3]["fid"], rtol=1e-6)
    # The last figures are those of the final sampling (EMA) generator.
    evaluator = evaluation.Evaluator.create("synthetic", 16, eval_config(classifier, cache), print_fn=None)
    np.testing.assert_allclose(evaluator(result.model.sampling_generator)["fid"], result.evaluations[3]["fid"],
                               rtol=1e-6)


def test_requested_evaluation_with_a_missing_classifier_fails_before_training(tmp_path):
    with pytest.raises(ClassifierUnavailableError, match="missing.keras"):
        train_lib.run(tiny_config(train_steps=1),
                      train_options(tmp_path, evaluation=eval_config(str(tmp_path / "missing.keras"))))
    assert not (tmp_path / "checkpoints").exists()


def test_default_evaluation_without_its_classifier_warns_and_trains(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(evaluation, "default_classifier", lambda dataset: str(tmp_path / "missing.keras"))
    with caplog.at_level(logging.WARNING):
        trainer = train_lib.Trainer(tiny_config(train_steps=1),
                                    train_options(tmp_path / "run", evaluation=eval_config()))
    assert trainer.evaluator is None  # training goes on without the EvaluateEvery callback
    result = trainer._result(stopped=None)
    assert result.evaluations == {} and result.evaluation_summary() is None
    assert any("without FID/IS evaluation" in r.getMessage() and "--classifier" in r.getMessage()
               for r in caplog.records)


def test_eval_options_are_validated(tmp_path):
    with pytest.raises(UsageError, match="eval_every=5 asks for evaluation during training, but evaluation is off"):
        train_options(tmp_path, eval_every=5).validate()
    flags = types.SimpleNamespace(eval_samples=0, eval_every=5, classifier=None, kid=False, precision_recall=True,
                                  seed=0)
    with pytest.raises(UsageError, match="eval_samples is 0"):
        run_cli.evaluation_config(flags)
    with pytest.raises(UsageError, match="eval_samples must be 0 .* Received: eval_samples=1"):
        run_cli.evaluation_config(types.SimpleNamespace(**{**vars(flags), "eval_samples": 1, "eval_every": 0}))
    assert run_cli.evaluation_config(types.SimpleNamespace(**{**vars(flags), "eval_every": 0})) is None
    config = run_cli.evaluation_config(types.SimpleNamespace(**{**vars(flags), "eval_samples": 64, "kid": True}))
    assert (config.num_samples, config.compute_kid, config.classifier, config.compute_precision_recall) == (
        64, True, None, True)


def start(module, args):
    return start_command(module, args, separate_stderr=True)


def test_cli_writes_json_and_tensorboard_and_reports_usage_errors(trained, tmp_path, capsys):
    from training import evaluate as evaluate_cli

    result, _, classifier, cache = trained
    run_dir = result.model_dir
    common = ["--num_samples=16", "--batch_size=8", "--num_real=32", f"--classifier={classifier}",
              f"--cache_dir={cache}"]
    (tmp_path / "untrained").mkdir()
    (tmp_path / "untrained" / "config.json").write_text(tiny_config().to_json())
    # Two commands at once on the same run, and one refusal as a command (exit status 2, no traceback)...
    processes = {
        "ema": start("training.evaluate", [f"--model_dir={run_dir}", *common, "--kid"]),
        "noema": start("training.evaluate", [f"--model_dir={run_dir}", *common, "--noema", "--checkpoint=3", "--nokid",
                                             "--noprecision_recall"]),
        "missing dir": start("training.evaluate", [f"--model_dir={tmp_path / 'nothing'}", *common]),
    }
    # ... meanwhile the others in this process, through the commands' `main` (training.run's refusals as commands:
    # tests/training/test_run_cli.py).
    in_process = {
        "no checkpoint": (evaluate_cli, [f"--model_dir={tmp_path / 'untrained'}", *common]),
        "run flags": (run_cli, [f"--model_dir={tmp_path / 'flags'}", "--eval_every=5", "--eval_samples=0"]),
        "sweep": (evaluate_cli, [f"--model_dir={run_dir}", *common, "--truncation=none,1.0,0.5",
                                 "--noprecision_recall"]),
        "bad truncation": (evaluate_cli, [f"--model_dir={run_dir}", *common, "--truncation=1.0,0"]),
    }
    outputs = {}
    for name, (module, args) in in_process.items():
        code, stdout, stderr = main_in_process(module, capsys, *args)
        outputs[name] = (stdout, stderr, code)
    outputs.update({name: (*p.communicate(timeout=300), p.returncode) for name, p in processes.items()})

    stdout, stderr, code = outputs["ema"]
    assert code == 0, stderr
    printed = json.loads(stdout.strip().splitlines()[-1])
    written = json.loads((pathlib.Path(run_dir) / "eval" / "step_00000003.json").read_text())
    assert printed == written
    tag = written["classifier_tag"]
    assert tag == classifiers.load_classifier(classifier).tag
    assert (written["step"], written["ema"], written["num_samples"]) == (3, True, 16)
    assert written["dataset"] == "synthetic" and written["classifier"] == classifier
    provenance = written["provenance"]
    assert (provenance["step"], provenance["generator"], provenance["num_generated"], provenance["num_real"],
            provenance["real_split"], provenance["classifier"]["tag"]) == (3, "ema", 16, 32, "train[:32]", tag)
    assert provenance["resize"].startswith("bilinear") and provenance["classifier"]["name"] == "keras"
    # Every figure is named by the classifier: none shares a field with another classifier's figures.
    # (No class accuracy: the tiny classifier's logits are not known to be the synthetic classes.)
    assert set(written["figures"]) == {f"{tag}/{name}" for name in evaluation.FIGURES
                                       if name not in evaluation.CLASS_ACCURACY_FIGURES}
    assert "not known to be the classes of synthetic" in provenance["class_logits"]
    # The same generator, samples, seed and real statistics as the end-of-training evaluation.
    for name in ("fid", "inception_score", "precision", "recall"):
        np.testing.assert_allclose(written["figures"][f"{tag}/{name}"], result.evaluations[3][name], rtol=1e-4)

    stdout, stderr, code = outputs["noema"]
    assert code == 0, stderr
    raw = json.loads((pathlib.Path(run_dir) / "eval" / "step_00000003_noema.json").read_text())
    assert raw["ema"] is False and raw["provenance"]["generator"] == "raw"
    assert set(raw["figures"]) == {f"{tag}/fid", f"{tag}/inception_score"}
    assert raw["figures"][f"{tag}/fid"] != written["figures"][f"{tag}/fid"]
    # Both commands ran at once: latest.json holds whichever finished last.
    assert json.loads((pathlib.Path(run_dir) / "eval" / "latest.json").read_text()) in (written, raw)
    scalars = event_scalars(pathlib.Path(run_dir) / "eval")
    np.testing.assert_allclose(scalars[f"eval/{tag}/fid"][3], written["figures"][f"{tag}/fid"], rtol=1e-6)
    np.testing.assert_allclose(scalars[f"eval_noema/{tag}/fid"][3], raw["figures"][f"{tag}/fid"], rtol=1e-6)
    assert 3 in scalars[f"eval/{tag}/kid"] and 3 in scalars[f"eval/{tag}/recall"]
    assert json.loads(scalars[f"eval/{tag}/provenance"][3]) == provenance

    stdout, stderr, code = outputs["sweep"]
    assert code == 0, stderr
    printed = [json.loads(line) for line in stdout.strip().splitlines()[-3:]]
    assert [record["truncation"] for record in printed] == [None, 1.0, 0.5]
    assert printed[2] == json.loads((pathlib.Path(run_dir) / "eval" / "step_00000003_truncation_0.5.json").read_text())
    assert (pathlib.Path(run_dir) / "eval" / "truncation_step_00000003.png").stat().st_size > 0

    for name, pattern in [("missing dir", r"nothing is not a training run directory: it does not exist"),
                          ("no checkpoint", r"has no checkpoint yet"),
                          ("bad truncation", r"--truncation takes finite numbers > 0 and 'none'.*Received: '0'"),
                          ("run flags", r"eval_samples is 0")]:
        stdout, stderr, code = outputs[name]
        assert code == 2, (name, stdout, stderr)
        assert "Traceback" not in stdout + stderr, (name, stderr)
        message = stderr.strip().splitlines()[-1]
        assert message.startswith("Error: ") and re.search(pattern, message), (name, stderr)


def test_the_checkpoint_with_the_best_fid_is_kept_apart_and_evaluates_again(trained):
    from sagan_tf.run.checkpoint_store import CheckpointStore
    from training import evaluate as evaluate_cli

    result, _, classifier, cache = trained
    fids = {step: figures["fid"] for step, figures in result.evaluations.items()}
    best_step = min(fids, key=fids.get)
    run = CheckpointStore(result.model_dir)
    record = run.best_record()
    assert (record["step"], record["metric"]) == (best_step, "fid")
    np.testing.assert_allclose(record["value"], fids[best_step], rtol=1e-6)
    assert result.best_checkpoint == run.best_path(best_step) == run.find("best")
    record = evaluate_cli.evaluate_run(result.model_dir, eval_config(classifier, cache), checkpoint="best",
                                       print_fn=lambda line: None)
    assert record["step"] == best_step and record["checkpoint"] == run.best_path(best_step)
    np.testing.assert_allclose(record["figures"][f"{record['classifier_tag']}/fid"], fids[best_step], rtol=1e-4)


def test_truncation_sweep_writes_one_record_per_truncation_with_the_same_seed(trained):
    from PIL import Image

    from training import evaluate as evaluate_cli

    result, _, classifier, cache = trained
    eval_dir = pathlib.Path(result.model_dir) / "eval"
    latest = (eval_dir / "latest.json").read_text() if (eval_dir / "latest.json").exists() else None
    config = evaluation.EvalConfig(num_samples=16, batch_size=8, num_real=32, classifier=classifier,
                                   cache_dir=cache, seed=7)
    records, plot = evaluate_cli.sweep_truncation(result.model_dir, config, [2.0, None, 0.5],
                                                  print_fn=lambda line: None)

    assert [record["truncation"] for record in records] == [2.0, None, 0.5]
    assert {record["seed"] for record in records} == {7} and {r["provenance"]["seed"] for r in records} == {7}
    assert [record["provenance"]["truncation"] for record in records] == [2.0, None, 0.5]
    assert {record["step"] for record in records} == {3}
    for record, name in zip(records, ["2", "none", "0.5"]):
        assert json.loads((eval_dir / f"step_00000003_truncation_{name}.json").read_text()) == record
    lines = (eval_dir / "truncation_step_00000003.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert plot == str(eval_dir / "truncation_step_00000003.png")
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 600  # two panels: FID/IS and precision/recall
    # A sweep leaves the run's latest (untruncated) record alone.
    assert ((eval_dir / "latest.json").read_text() if (eval_dir / "latest.json").exists() else None) == latest

    tag = records[0]["classifier_tag"]
    fids = [record["figures"][f"{tag}/fid"] for record in records]
    assert len(set(fids)) == 3 and all(np.isfinite(fids))
    # Each record is the evaluation of the latents `generate` draws for the same seed and truncation; "none" is the
    # same draws without a bound (t = infinity), not the NumPy normal of an ordinary evaluation.
    restored_generator = result.model.sampling_generator
    evaluator = evaluation.Evaluator.create("synthetic", 16, config, print_fn=None)
    again = evaluator.with_truncation(0.5)(restored_generator)
    np.testing.assert_allclose(fids[2], again["fid"], rtol=1e-4)
    assert evaluator.config.truncation is None and again["provenance"]["truncation"] == 0.5
    unbounded = evaluator.with_truncation(math.inf)(restored_generator)
    np.testing.assert_allclose(fids[1], unbounded["fid"], rtol=1e-4)
    assert unbounded["provenance"]["truncation"] is None
    plain = evaluate_cli.evaluate_run(result.model_dir, config, print_fn=lambda line: None)
    assert plain["truncation"] is None and plain["figures"][f"{tag}/fid"] != fids[1]


def test_truncation_flags_are_parsed_and_refused():
    from training import evaluate as evaluate_cli

    assert evaluate_cli.parse_truncations(["none", "2", " 0.7", "0.5"]) == [None, 2.0, 0.7, 0.5]
    assert evaluate_cli.parse_truncations([]) == []
    for values, pattern in [(["0"], "Received: '0'"), (["-1"], "Received: '-1'"), (["inf"], "Received: 'inf'"),
                            (["nan"], "Received: 'nan'"), (["big"], "Received: 'big'"), (["1e-50"], "1e-50"),
                            (["0.5", "0.50"], "lists 0.50 twice"), (["none", "None"], "lists None twice")]:
        with pytest.raises(UsageError, match=pattern):
            evaluate_cli.parse_truncations(values)
    with pytest.raises(UsageError, match="distinct truncations"):
        evaluate_cli.sweep_truncation("unused", evaluation.EvalConfig(), [])
    with pytest.raises(UsageError, match="truncation must be None or a number > 0"):
        evaluate_cli.sweep_truncation("unused", evaluation.EvalConfig(), [1.0, -2.0])


def test_a_run_that_is_training_is_evaluated_without_its_lock_and_a_refused_record_names_it(trained, monkeypatch,
                                                                                            capsys):
    import tensorflow as tf
    from absl import flags as absl_flags

    from sagan_tf.run import run_lock
    from training import evaluate as evaluate_cli

    result, _, classifier, cache = trained
    run_dir = pathlib.Path(result.model_dir)
    holder = run_lock.RunLock(str(run_dir / "training.lock")).acquire()  # a live training run holds it
    try:
        lock = (run_dir / "training.lock").read_text()
        values = absl_flags.FlagValues()
        evaluate_cli.define_flags(values)
        values(["evaluate", f"--model_dir={run_dir}", "--num_samples=16", "--batch_size=8", "--num_real=32",
                f"--classifier={classifier}", f"--cache_dir={cache}", "--nokid", "--noprecision_recall"])
        assert evaluate_cli.main(["evaluate"], values) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed == json.loads((run_dir / "eval" / "step_00000003.json").read_text())
        assert (run_dir / "training.lock").read_text() == lock  # neither taken nor touched

        rename = tf.io.gfile.rename

        def full_disk(source, target, overwrite=False):
            if source.endswith("step_00000003.json.tmp"):
                raise tf.errors.ResourceExhaustedError(None, None, f"{source}; No space left on device")
            return rename(source, target, overwrite)

        monkeypatch.setattr(tf.io.gfile, "rename", full_disk)
        assert evaluate_cli.main(["evaluate"], values) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error == (f"Error: Could not write the evaluation record {run_dir}/eval/step_00000003.json: no space "
                         "left on device. Its partial files (step_00000003.json.tmp) were removed. The last good "
                         f"checkpoint is {run_dir}/checkpoints/ckpt-3, intact. Free space on that filesystem (or use a "
                         "directory on another one), then rerun the same command.")
        assert not [name for name in os.listdir(run_dir / "eval") if name.endswith(".tmp")]
        assert json.loads((run_dir / "eval" / "step_00000003.json").read_text()) == printed  # the old record stays
    finally:
        holder.release()


def test_paper_protocol_fixes_its_settings_refuses_contradictions_and_is_recorded(trained):
    from absl import flags

    from training import evaluate as evaluate_cli

    def config_of(*args):
        values = flags.FlagValues()
        evaluate_cli.define_flags(values)
        values(["training.evaluate", "--model_dir=runs/x", *args])
        return evaluate_cli.eval_config(values)

    def settings(config):
        return config.num_samples, config.num_real, config.num_splits, config.classifier

    assert settings(config_of()) == (10_000, 10_000, 1, None)  # quick figures, not the paper's
    assert settings(config_of("--protocol=paper")) == (50_000, 50_000, 10, "inception")
    assert settings(config_of("--protocol=paper", "--num_samples=50000", "--classifier=/models/inception")) == (
        50_000, 50_000, 10, "/models/inception")
    for args, pattern in [(["--num_samples=10000"], "--protocol=paper evaluates with --num_samples=50000"),
                          (["--num_real=0"], "evaluates with --num_real=50000; drop --num_real"),
                          (["--is_splits=1"], "evaluates with --is_splits=10"),
                          (["--classifier=domain"], "measures with TF-GAN's Inception")]:
        with pytest.raises(UsageError, match=pattern):
            config_of("--protocol=paper", *args)

    result, _, classifier, cache = trained
    record = evaluate_cli.evaluate_run(result.model_dir, eval_config(classifier, cache), protocol="paper",
                                       print_fn=lambda line: None)
    assert record["protocol"] == record["provenance"]["protocol"] == "paper"
    plain = evaluate_cli.evaluate_run(result.model_dir, eval_config(classifier, cache), print_fn=lambda line: None)
    assert plain["protocol"] is None and plain["provenance"]["protocol"] is None


def test_evaluation_draws_the_labels_of_a_run_trained_on_the_data_frequencies(tmp_path, monkeypatch):
    # README "Small datasets": training.evaluate of a run trained with --fake_labels=data draws the generated images'
    # labels with the folder's class frequencies and records them in the provenance. The restored generator is a
    # stand-in that records its labels (the checkpoint's weights do not choose them).
    from sagan_tf.run import restore
    from training import evaluate as evaluate_cli

    folder = tmp_path / "images"
    tiny_image_folder(folder, classes=("blue", "green", "red"), per_class=6, size=16)
    for name, kept in (("green", 3), ("red", 1)):
        for image in sorted((folder / name).iterdir())[kept:]:
            image.unlink()
    counts = np.array([len(list((folder / name).iterdir())) for name in ("blue", "green", "red")])
    assert counts.tolist() == [6, 3, 1]
    config = tiny_config(dataset=f"folder:{folder}", num_classes=3, fake_labels="data")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(config.to_json())
    seen = []

    class Generator:
        def __init__(self, model_config):
            self.config = model_config

        def __call__(self, z, labels, training=False):
            seen.append(np.asarray(labels))
            return np.zeros((len(z), 16, 16, 3), "float32")

    monkeypatch.setattr(restore, "restore_generator", lambda model_dir, checkpoint, use_ema: restore.RestoredGenerator(
        generator=Generator(config.model), config=config, step=1, checkpoint="ckpt-1", ema=True))
    monkeypatch.setattr(evaluation, "inference_sampler", lambda generator, latent_dim: generator)  # eager: labels readable
    classifier = tiny_classifier_file(tmp_path / "tiny.keras")
    eval_settings = evaluation.EvalConfig(num_samples=6000, batch_size=2000, num_real=10, classifier=classifier,
                                          cache_dir=str(tmp_path / "cache"), compute_kid=False,
                                          compute_precision_recall=False)
    record = evaluate_cli.evaluate_run(str(tmp_path / "run"), eval_settings, print_fn=lambda line: None)

    drawn = np.concatenate(seen)
    assert drawn.size == 6000
    # Binomial standard deviation of a share over 6000 draws: at most 0.0065; 0.025 is ~4 of them.
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / drawn.size, counts / counts.sum(), atol=0.025)
    assert record["provenance"]["labels"] == {"frequencies": [0.6, 0.3, 0.1]}


def test_per_class_table_csv_and_picture_match_an_independent_computation(trained, monkeypatch):
    import csv

    from PIL import Image

    from sagan_tf import data
    from sagan_tf.evaluation import per_class_evaluator
    from sagan_tf.run import restore
    from sagan_tf.evaluation.classifiers import training_data
    from tests.evaluation.metrics.test_per_class import reference_kid, reference_precision_recall

    monkeypatch.setattr(training_data, "MAX_HELDOUT", 250)  # one batch of held-out images for the ceiling
    result, _, _, cache = trained
    config = evaluation.EvalConfig(classifier="synthetic", batch_size=8, cache_dir=cache, seed=3)
    record = per_class_evaluator.evaluate_per_class(result.model_dir, config, samples_per_class=6, classes=3,
                                                     print_fn=lambda line: None)
    chosen = sorted(np.random.default_rng(3).choice(4, 3, replace=False))
    assert record["provenance"]["classes"] == {"evaluated": 3, "of": 4, "subset_seed": 3, "ids": chosen}
    stem = pathlib.Path(result.model_dir) / "eval" / "per_class_step_00000003"
    assert json.loads(stem.with_suffix(".json").read_text()) == json.loads(json.dumps(record))

    # Independently: the generator's images of each class from default_rng([seed, class]), the first 6 real images
    # of each class of the unshuffled train split, the first 250 of the test split for the ceiling.
    restored = restore.restore_generator(result.model_dir)
    classifier = classifiers.load_classifier("synthetic")
    real, real_labels = next(iter(data.load("synthetic", "train", image_size=16, batch_size=64, shuffle=False,
                                            random_flip=False)))
    test, test_labels = next(iter(data.load("synthetic", "test", image_size=16, batch_size=250, shuffle=False,
                                            random_flip=False, repeat=False)))
    test_predictions = classifier(test)[1].argmax(axis=1)
    real_features = classifier(real)[0]
    rows = {row["class"]: row for row in record["classes"]}
    fids = []
    for c in chosen:
        z = np.random.default_rng([3, c]).standard_normal((6, restored.config.model.latent_dim)).astype("float32")
        features, logits = classifier(restored.generator(z, np.full(6, c, "int32"), training=False))
        own = real_features[np.asarray(real_labels) == c][:6].astype(np.float64)
        features = features.astype(np.float64)
        c1, c2 = np.cov(own, rowvar=False), np.cov(features, rowvar=False)
        roots = np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None)).sum()
        fid = np.sum((own.mean(0) - features.mean(0)) ** 2) + np.trace(c1) + np.trace(c2) - 2 * roots
        fids.append(fid)
        row = rows[c]
        assert (row["count_generated"], row["count_real"], row["rank_deficient"]) == (6, 6, True)  # 6 < 128 + 1
        assert row["fid"] == pytest.approx(fid, rel=1e-3)
        assert row["kid"] == pytest.approx(reference_kid(own, features), rel=1e-4, abs=1e-9)
        assert (row["precision"], row["recall"]) == pytest.approx(reference_precision_recall(own, features))
        assert row["accuracy"] == np.mean(logits.argmax(axis=1) == c) and row["accuracy_top5"] is None
        assert row["real_heldout_accuracy"] == np.mean(test_predictions[np.asarray(test_labels) == c] == c)
    tag = record["classifier_tag"]
    assert record["figures"][f"{tag}/intra_fid"] == pytest.approx(np.mean(fids), rel=1e-3)
    assert record["figures"][f"{tag}/chance"] == 0.25
    assert record["figures"][f"{tag}/class_accuracy"] == pytest.approx(np.mean([rows[c]["accuracy"] for c in chosen]))
    assert len(record["rank_deficient_classes"]) == 3

    with open(stem.with_suffix(".csv"), newline="") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == per_class_evaluator.CSV_COLUMNS
    assert [int(line["class"]) for line in table] == chosen
    for line in table:
        row = rows[int(line["class"])]
        assert line["name"] == row["name"] and int(line["count_real"]) == 6
        for column in ("fid", "kid", "accuracy", "real_heldout_accuracy", "precision", "recall"):
            assert float(line[column]) == pytest.approx(row[column], rel=1e-12)
        assert line["accuracy_top5"] == ""
    # Three classes: all of them, each a row of generated and a row of real 16x16 images.
    assert Image.open(stem.with_suffix(".png")).size[1] == 2 + 6 * (16 + 2)


def test_per_class_refuses_an_unconditional_run_and_bad_counts(tmp_path, capsys):
    from absl import flags

    from sagan_tf.run.run_dir import RunDirectory
    from training import evaluate as evaluate_cli

    RunDirectory(str(tmp_path / "unconditional")).write_config(tiny_config(num_classes=0))
    RunDirectory(str(tmp_path / "conditional")).write_config(tiny_config())

    def main(*args):
        values = flags.FlagValues()
        evaluate_cli.define_flags(values)
        values(["training.evaluate", *args])
        return evaluate_cli.main(["training.evaluate"], values)

    for args, pattern in [
            ([f"--model_dir={tmp_path / 'unconditional'}", "--per_class"],
             r"--per_class measures each class of a class-conditional generator, and .*unconditional"),
            ([f"--model_dir={tmp_path / 'conditional'}", "--per_class", "--classes=5"],
             r"--classes takes a number of classes between 1 and 4"),
            ([f"--model_dir={tmp_path / 'conditional'}", "--per_class", "--per_class_samples=1"],
             r"--per_class_samples takes the images per class, at least 2"),
            ([f"--model_dir={tmp_path / 'conditional'}", "--classes=2"], r"--classes sets up the per-class evaluation"),
            ([f"--model_dir={tmp_path / 'conditional'}", "--per_class", "--truncation=1.0"],
             r"--per_class evaluates the untruncated generator")]:
        assert main(*args) == 2, args
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert message.startswith("Error: ") and re.search(pattern, message), (args, message)
