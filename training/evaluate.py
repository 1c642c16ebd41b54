r"""Evaluates a training run: `python -m training.evaluate --model_dir=runs/synthetic32 [--num_samples=50000] ...`.

Restores the EMA generator (`--noema` or `--ema=false`: the raw one) of the latest checkpoint (or `--checkpoint`),
computes FID and Inception Score (and KID with `--kid`) of `--num_samples` generated images against the cached
statistics of `--num_real` real images of the run's dataset, and writes

    <model_dir>/eval/step_<step, 8 digits>.json     (step_<step>_noema.json for the raw generator)
    <model_dir>/eval/latest.json                    the same figures, of the latest evaluation
    <model_dir>/eval/events.out.tfevents.*          TensorBoard: eval/fid, eval/inception_score, eval/kid
                                                    (eval_noema/... for the raw generator)

and prints the JSON. The classifier defaults to the shipped domain classifier for the synthetic dataset and to
TF-GAN's Inception (TF-Hub) for every other dataset; without network access pass a local copy of the Inception
module with --classifier=/path/to/inception. The SAGAN paper's protocol is --num_samples=50000 with Inception.
Bad input (no run directory, no checkpoint, no classifier) ends with a one-paragraph error and exit status 2.

    python -m training.evaluate --model_dir=runs/synthetic32
    python -m training.evaluate --model_dir=runs/cifar32 --num_samples=50000 --classifier=/models/inception --kid
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/). Required.")
flags.DEFINE_string("checkpoint", None, "Checkpoint: a step number or a path prefix. Default: the latest.")
flags.DEFINE_bool("ema", True, "Evaluate the EMA generator (--noema: the raw generator).")
flags.DEFINE_integer("num_samples", 10_000, "Generated images (50000 for the SAGAN paper's protocol).")
flags.DEFINE_integer("batch_size", 250, "Images generated and classified per batch.")
flags.DEFINE_integer("seed", 0, "Seed of the latents and labels; the same seed gives the same figures.")
flags.DEFINE_string("classifier", None, "'synthetic', 'inception', a TF-Hub handle, a SavedModel directory or a "
                    ".keras file returning (features, logits). Default: 'synthetic' for the synthetic dataset, "
                    "else 'inception'.")
flags.DEFINE_string("split", "train", "Dataset split of the real images.")
flags.DEFINE_integer("num_real", 10_000, "Real images in the reference statistics (fewer if the split is smaller; "
                     "0: the whole split). Cached per dataset, split, count, image size and classifier.")
flags.DEFINE_bool("kid", False, "Also compute the Kernel Inception Distance.")
flags.DEFINE_integer("is_splits", 1, "Inception Score splits (1: TF-GAN's definition; papers average 10).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).")
flags.DEFINE_string("cache_dir", None, "Real-statistics cache. Default: $SAGAN_TF_CACHE/real_stats or "
                    "~/.cache/sagan_tf/real_stats.")


def eval_config(values):
    """The `evaluation.EvalConfig` that the flag values ask for."""
    from sagan_tf import evaluation

    return evaluation.EvalConfig(
        num_samples=values.num_samples, batch_size=values.batch_size, classifier=values.classifier or None,
        split=values.split, num_real=values.num_real or None, compute_kid=values.kid, num_splits=values.is_splits,
        seed=values.seed, cache_dir=values.cache_dir)


def _write_json_atomically(path, payload):
    import tensorflow as tf

    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(temporary, path, overwrite=True)


def evaluate_run(model_dir, config, checkpoint=None, data_dir=None, print_fn=logging.info, *, use_ema=True):
    """Evaluates a run's generator and writes the figures; returns the JSON-able dict of figures and provenance.

    `use_ema` chooses the generator: its EMA weights (the default) or the raw ones (`--noema`).

    Raises:
      UsageError: no run directory or checkpoint, an unavailable classifier, missing real data.
    """
    import tensorflow as tf

    from sagan_tf import callbacks, evaluation, restore
    from sagan_tf.errors import UsageError

    if not model_dir:
        raise UsageError("--model_dir is required: the directory `python -m training.run` trained into.")
    if not tf.io.gfile.isdir(model_dir):
        raise UsageError(f"No run directory {model_dir}. Pass the --model_dir that `python -m training.run` "
                         "trained into.")
    restored = restore.restore_generator(model_dir, checkpoint, use_ema=use_ema)
    run_config = restored.config
    print_fn(f"Evaluating {restored.checkpoint} (step {restored.step}, {'EMA' if restored.ema else 'raw'} "
             f"generator) on {config.num_samples} samples.")
    evaluator = evaluation.Evaluator.create(run_config.dataset, run_config.image_size, config, data_dir, print_fn)
    figures = evaluator(restored.generator)
    result = {
        **restore.describe(restored),
        "model_dir": model_dir,
        "dataset": run_config.dataset,
        "classifier": config.classifier or evaluation.default_classifier(run_config.dataset),
        "classifier_id": evaluator.classifier.classifier_id,
        "split": config.split,
        "num_real": evaluator.real_stats.count,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "num_splits": config.num_splits,
        **figures,
    }
    directory = os.path.join(model_dir, "eval")
    tf.io.gfile.makedirs(directory)
    suffix = "" if restored.ema else "_noema"
    path = os.path.join(directory, f"step_{restored.step:08d}{suffix}.json")
    _write_json_atomically(path, result)
    _write_json_atomically(os.path.join(directory, "latest.json"), result)
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default():
        for name in ("fid", "inception_score", "kid"):
            if result.get(name) is not None:
                callbacks.write_scalar(f"eval{suffix}/{name}", result[name], restored.step)
    writer.close()
    print_fn(f"Wrote {path}.")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from sagan_tf.errors import UsageError

    try:
        result = evaluate_run(FLAGS.model_dir, eval_config(FLAGS), FLAGS.checkpoint, FLAGS.data_dir,
                              use_ema=FLAGS.ema)
    except UsageError as error:
        print(f"Error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    app.run(main)
