"""A run directory and an export written by commit 2663ad6 still restore, resume, evaluate, export and serve.

The fixture beside this file (`make_fixture.py` wrote it at 2663ad6 and documents how) is what that commit's code
wrote: config.json, class_names.json, rotating and best checkpoints, eval records, TensorBoard events, a sample grid
and a SavedModel export. The current code must read all of them and give the numbers recorded then
(reference_2663ad6.json/.npz): a change that renames a checkpoint key, a config field, a record's field or a
signature fails here. Never regenerate the fixture to make these tests pass.
"""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from sagan_tf.run import restore
from sagan_tf.run.checkpoint_store import CheckpointStore
from sagan_tf.run.run_dir import RunDirectory
from tests.tiny import train_options
from training import train_lib

FIXTURE = pathlib.Path(__file__).resolve().parent
COMMIT = "2663ad6"
RUN_DIR = FIXTURE / f"run_{COMMIT}"
EXPORT_DIR = FIXTURE / f"export_{COMMIT}"
CLASSIFIER = FIXTURE / f"classifier_{COMMIT}.keras"
REFERENCE = json.loads((FIXTURE / f"reference_{COMMIT}.json").read_text())
ARRAYS = dict(np.load(FIXTURE / f"reference_{COMMIT}.npz"))
VERSION_DIR = EXPORT_DIR / str(REFERENCE["export_version"])
#: Float images of the same weights and inputs; room for another machine's rounding in the last bits.
ATOL = 1e-5


def run_main(module, *args):
    """Runs an entry point's `main` in-process with its flags parsed from `args`; returns its exit status."""
    values = flags.FlagValues()
    module.define_flags(values)
    values([module.__name__, *args])
    return module.main([module.__name__], values)


def inputs():
    return ARRAYS["z"], ARRAYS["labels"]


def png_pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_the_run_directory_reads_config_class_names_and_checkpoints():
    run = RunDirectory(RUN_DIR)
    config = run.read_config()
    model, training = config.model, config.training
    assert (model.image_size, model.num_classes, model.latent_dim) == (16, 4, 8)
    assert (model.g_channels, model.d_channels) == ((8, 8, 4), (8, 8, 4))
    assert (model.g_attention_resolutions, model.d_attention_resolutions) == ((8,), (8,))
    assert (training.dataset, training.batch_size, training.train_steps, training.ema_decay) == ("synthetic", 4, 2, 0.9)
    assert run.read_class_names() == tuple(REFERENCE["class_names"])
    store = CheckpointStore(run)
    assert [step for step, _ in store.checkpoints()] == REFERENCE["checkpoint_steps"]
    assert store.find() == str(RUN_DIR / "checkpoints" / "ckpt-2")  # the manager's state file
    assert store.find(1) == str(RUN_DIR / "checkpoints" / "ckpt-1")
    assert store.best_record()["step"] == REFERENCE["best_step"]
    assert store.find("best") == str(RUN_DIR / "checkpoints" / "best" / f"ckpt-{REFERENCE['best_step']}")


@pytest.mark.parametrize("use_ema, expected", [(True, "ema_images"), (False, "raw_images")])
def test_the_generators_restore_to_the_reference_images(use_ema, expected):
    # The best checkpoint is restored by the evaluation test below.
    restored = restore.restore_generator(str(RUN_DIR), use_ema=use_ema)
    assert (restored.step, restored.ema) == (REFERENCE["step"], use_ema)
    assert (restored.class_names, restored.class_names_source) == (tuple(REFERENCE["class_names"]), "run")
    np.testing.assert_allclose(np.array(restored.generator(*inputs(), training=False)), ARRAYS[expected], atol=ATOL)
    if use_ema:
        total = sum(float(np.abs(variable.numpy()).sum()) for variable in restored.generator.variables)
        assert total == pytest.approx(REFERENCE["ema_generator_abs_sum"], rel=1e-6)


def test_training_resumes_from_the_stored_step_with_the_stored_state(tmp_path):
    model_dir = tmp_path / "run"
    shutil.copytree(RUN_DIR, model_dir)
    step = REFERENCE["step"]
    config = RunDirectory(model_dir).read_config().replace(train_steps=step + 1)
    trainer = train_lib.Trainer(config, train_options(model_dir, keep_checkpoints=3))
    model = trainer.model
    assert trainer.step == step and trainer.restored_checkpoint == str(model_dir / "checkpoints" / f"ckpt-{step}")
    assert int(model.g_optimizer.iterations) == REFERENCE["g_optimizer_iterations"]
    assert int(model.d_optimizer.iterations) == REFERENCE["d_optimizer_iterations"]
    z, labels = inputs()
    np.testing.assert_allclose(np.array(model.sampling_generator(z, labels, training=False)), ARRAYS["ema_images"],
                               atol=ATOL)
    np.testing.assert_allclose(np.array(model.generator(z, labels, training=False)), ARRAYS["raw_images"], atol=ATOL)
    np.testing.assert_allclose(np.array(model.discriminator(ARRAYS["ema_images"], labels, training=False)),
                               ARRAYS["d_logits"], atol=ATOL)
    result = trainer.train()
    assert result.step == step + 1 and int(result.model.g_optimizer.iterations) == step + 1
    assert [s for s, _ in CheckpointStore(model_dir).checkpoints()] == [*REFERENCE["checkpoint_steps"], step + 1]
    assert RunDirectory(model_dir).read_config().training.train_steps == step + 1


def test_the_best_checkpoint_evaluates_to_the_recorded_figures(tmp_path, capsys):
    from training import evaluate as evaluate_cli

    model_dir = tmp_path / "run"
    shutil.copytree(RUN_DIR, model_dir)
    assert run_main(evaluate_cli, f"--model_dir={model_dir}", "--checkpoint=best", f"--classifier={CLASSIFIER}",
                    f"--cache_dir={tmp_path / 'cache'}", *REFERENCE["eval_flags"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (printed["step"], printed["classifier_tag"]) == (REFERENCE["best_step"], REFERENCE["eval_classifier_tag"])
    assert printed["figures"] == pytest.approx(REFERENCE["eval_figures"], rel=1e-4)


@pytest.fixture(scope="module")
def loaded_export():
    return tf.saved_model.load(str(VERSION_DIR))


def test_the_old_export_loads_and_every_signature_answers_as_recorded(loaded_export):
    signatures = loaded_export.signatures
    assert sorted(signatures) == REFERENCE["signatures"]
    z, labels = inputs()
    served = signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
    np.testing.assert_allclose(served, ARRAYS["ema_images"], atol=ATOL)
    seed = tf.constant(REFERENCE["reference_seed"], tf.int64)
    truncation = tf.constant(REFERENCE["reference_truncation"])
    generated = signatures["generate"](labels=tf.constant(labels), seed=seed, truncation=truncation)
    # uint8 images: one step of rounding apart at most on another machine (see sagan_tf/serving/signatures.py).
    assert np.abs(generated["images"].numpy().astype(int) - ARRAYS["generate_images"]).max() <= 1
    names = tf.constant([REFERENCE["class_names"][label] for label in labels])
    by_name = signatures["generate_by_name"](classes=names, seed=seed, truncation=truncation)
    np.testing.assert_array_equal(by_name["labels"].numpy(), labels)
    np.testing.assert_array_equal(by_name["images"].numpy(), generated["images"].numpy())
    assert [name.decode() for name in signatures["class_names"]()["class_names"].numpy()] == REFERENCE["class_names"]
    assert int(signatures["limits"]()["max_batch_size"]) == REFERENCE["max_batch_size"]
    info = json.loads((VERSION_DIR / "assets" / "sagan_export.json").read_text())
    assert (info["max_batch_size"], info["class_names"]) == (REFERENCE["max_batch_size"], REFERENCE["class_names"])


def test_the_client_serves_the_old_export_in_process(tmp_path, capsys):
    from export import client

    common = [f"--saved_model_dir={VERSION_DIR}", f"--seed={REFERENCE['reference_seed']}",
              f"--truncation={REFERENCE['reference_truncation']}"]
    labels = ",".join(str(label) for label in ARRAYS["labels"])
    assert run_main(client, *common, f"--labels={labels}", f"--output_dir={tmp_path / 'ids'}") == 0
    assert run_main(client, *common, f"--classes={','.join(REFERENCE['class_names'])}",
                    f"--output_dir={tmp_path / 'names'}") == 0
    for folder in ("ids", "names"):
        for index, image in enumerate(ARRAYS["generate_images"]):
            pixels = png_pixels(tmp_path / folder / f"image_{index}.png").astype(int)
            assert np.abs(pixels - image).max() <= 1, (folder, index)
    capsys.readouterr()
    assert run_main(client, f"--saved_model_dir={VERSION_DIR}", "--list_classes") == 0
    assert capsys.readouterr().out.split() == REFERENCE["class_names"]


def test_the_old_run_exports_with_the_current_code(tmp_path):
    from export import run as export_cli

    assert run_main(export_cli, f"--model_dir={RUN_DIR}", f"--export_dir={tmp_path}") == 0
    signatures = tf.saved_model.load(str(tmp_path / str(REFERENCE["step"]))).signatures
    z, labels = inputs()
    served = signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
    np.testing.assert_allclose(served, ARRAYS["ema_images"], atol=ATOL)
    assert [name.decode() for name in signatures["class_names"]()["class_names"].numpy()] == REFERENCE["class_names"]
