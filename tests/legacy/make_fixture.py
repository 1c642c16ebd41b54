"""Writes the legacy fixture: a run directory and an export as the code of commit 2663ad6 writes them.

    PYTHONPATH=. python tests/legacy/make_fixture.py      # at commit 2663ad6 only

What it writes into tests/legacy/ (checked in; `tests/legacy/test_legacy_formats.py` reads it with the current code):

- run_2663ad6/: what `training.train_lib.run` wrote for `tests.tiny.tiny_config(train_steps=2, **SMALLER)` (the
  tiny 16x16 conditional SAGAN with attention in G and D, with fewer channels, on the synthetic dataset, batch 4)
  trained with a checkpoint every step (ckpt-1, ckpt-2), evaluation at the start and the end with
  classifier_2663ad6.keras (so checkpoints/best/ holds the better one), a sample grid and TensorBoard events; plus
  eval/ from `python -m training.evaluate --checkpoint=best`.
- export_2663ad6/2/: what `python -m export.run` exported from it (the EMA generator of ckpt-2).
- classifier_2663ad6.keras: the tiny classifier the evaluations used (`tests.tiny.tiny_classifier_file`).
- reference_2663ad6.json and reference_2663ad6.npz: the commit, the step and the reference numbers the test
  compares with (the end of `main`): images of the EMA and raw generators and the discriminator's logits for fixed
  latents and labels, the export's `generate` images, the evaluation's figures.

It documents how the fixture was made and need not run on later commits (the code it calls may have changed; it
refuses to run elsewhere): the fixture is what 2663ad6 wrote, and regenerating it with later code would test nothing.
The run was trained in a temporary directory and copied here, so the paths recorded inside (best.json, eval/, the
export's assets) name that directory and the maker's checkout: nothing reads them back as paths.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

COMMIT = "2663ad6"
HERE = pathlib.Path(__file__).resolve().parent
RUN_DIR = HERE / f"run_{COMMIT}"
EXPORT_DIR = HERE / f"export_{COMMIT}"
CLASSIFIER = HERE / f"classifier_{COMMIT}.keras"
REFERENCE_JSON = HERE / f"reference_{COMMIT}.json"
REFERENCE_ARRAYS = HERE / f"reference_{COMMIT}.npz"
TRAIN_STEPS = 2
#: Fewer channels than `tiny_model` (the fewest its attention layers take: 8 at the 8x8 attention), for smaller files.
SMALLER = dict(g_channels=(8, 8, 4), d_channels=(8, 8, 4))
#: Fixed generator inputs of the reference images: one image per class.
REFERENCE_SEED, REFERENCE_LABELS, REFERENCE_TRUNCATION = 5, [0, 1, 2, 3], 0.7
#: The evaluation's settings (small: 16 generated and 32 real images); the test evaluates with the same.
EVAL_FLAGS = ["--num_samples=16", "--batch_size=8", "--num_real=32", "--nokid", "--noprecision_recall"]


def reference_z(latent_dim):
    """The fixed latents of the reference images (float32 [4, latent_dim])."""
    return np.random.default_rng(REFERENCE_SEED).standard_normal((len(REFERENCE_LABELS), latent_dim)).astype("float32")


def main():
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    if head != COMMIT:
        sys.exit(f"The fixture documents what commit {COMMIT} writes; this checkout is at {head}.")
    for path in (RUN_DIR, EXPORT_DIR):
        if path.exists():
            shutil.rmtree(path)

    import keras
    import tensorflow as tf
    from absl import flags

    from sagan_tf.evaluation import evaluator as evaluation
    from sagan_tf.run import restore
    from sagan_tf.serving import signatures as serving
    from tests.tiny import tiny_classifier_file, tiny_config, train_options
    from training import evaluate as evaluate_cli
    from training import train_lib

    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        tiny_classifier_file(CLASSIFIER)
        eval_config = evaluation.EvalConfig(num_samples=16, batch_size=8, num_real=32, compute_kid=False,
                                            compute_precision_recall=False, classifier=str(CLASSIFIER),
                                            cache_dir=str(scratch / "cache"))
        config = tiny_config(train_steps=TRAIN_STEPS, **SMALLER)
        run_dir = scratch / RUN_DIR.name
        result = train_lib.run(config, train_options(run_dir, checkpoint_every=1, sample_every=TRAIN_STEPS,
                                                     keep_checkpoints=2, samples_per_class=2, seed=3,
                                                     evaluation=eval_config))
        assert result.step == TRAIN_STEPS and result.best_checkpoint is not None, result

        values = flags.FlagValues()
        evaluate_cli.define_flags(values)
        values(["evaluate", f"--model_dir={run_dir}", "--checkpoint=best", f"--classifier={CLASSIFIER}",
                f"--cache_dir={scratch / 'cache'}", *EVAL_FLAGS])
        assert evaluate_cli.main(["evaluate"], values) == 0
        best_step = json.loads((run_dir / "checkpoints" / "best" / "best.json").read_text())["step"]
        evaluated = json.loads((run_dir / "eval" / f"step_{best_step:08d}.json").read_text())

        exported = serving.export_run(str(run_dir), str(scratch / EXPORT_DIR.name))
        shutil.copytree(run_dir, RUN_DIR)
        shutil.copytree(scratch / EXPORT_DIR.name, EXPORT_DIR)

    model, latent_dim = result.model, config.model.latent_dim
    z, labels = reference_z(latent_dim), np.array(REFERENCE_LABELS, np.int32)
    ema_images = np.array(model.sampling_generator(z, labels, training=False))
    raw_images = np.array(model.generator(z, labels, training=False))
    d_logits = np.array(model.discriminator(ema_images, labels, training=False))
    restored = restore.restore_generator(str(RUN_DIR))
    np.testing.assert_array_equal(np.array(restored.generator(z, labels, training=False)), ema_images)

    loaded = tf.saved_model.load(str(EXPORT_DIR / str(exported["version"])))
    served = loaded.signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()
    np.testing.assert_allclose(served, ema_images, atol=1e-6)
    generated = loaded.signatures["generate"](labels=tf.constant(labels), seed=tf.constant(REFERENCE_SEED, tf.int64),
                                              truncation=tf.constant(REFERENCE_TRUNCATION))
    np.savez_compressed(REFERENCE_ARRAYS, z=z, labels=labels, ema_images=ema_images, raw_images=raw_images,
                        d_logits=d_logits, generate_images=generated["images"].numpy())
    reference = {
        "commit": COMMIT,
        "made_by": "tests/legacy/make_fixture.py",
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "step": result.step,
        "checkpoint_steps": [1, 2],
        "best_step": best_step,
        "export_version": exported["version"],
        "signatures": sorted(loaded.signatures),
        "class_names": list(restored.class_names),
        "max_batch_size": exported["max_batch_size"],
        "g_optimizer_iterations": int(model.g_optimizer.iterations),
        "d_optimizer_iterations": int(model.d_optimizer.iterations),
        "ema_generator_abs_sum": float(sum(np.abs(v.numpy()).sum() for v in restored.generator.variables)),
        "reference_seed": REFERENCE_SEED,
        "reference_truncation": REFERENCE_TRUNCATION,
        "eval_flags": EVAL_FLAGS,
        "eval_figures": {name: evaluated["figures"][name] for name in sorted(evaluated["figures"])},
        "eval_classifier_tag": evaluated["classifier_tag"],
    }
    REFERENCE_JSON.write_text(json.dumps(reference, indent=2, sort_keys=True) + "\n")
    print(json.dumps(reference, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
