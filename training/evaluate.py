r"""Evaluates a training run: `python -m training.evaluate --model_dir=runs/synthetic32 [--num_samples=50000] ...`.

Restores the EMA generator (`--noema`: the raw one) of the latest checkpoint (or `--checkpoint`), computes FID,
Inception Score, KID (`--nokid`: not), precision, recall, density and coverage (`--noprecision_recall`: not) of
`--num_samples` generated images against the cached statistics of `--num_real` real images of the run's dataset, and
writes

    <model_dir>/eval/step_<step, 8 digits>.json     (step_<step>_noema.json for the raw generator)
    <model_dir>/eval/latest.json                    the same record, of the latest evaluation
    <model_dir>/eval/events.out.tfevents.*          TensorBoard: eval/<classifier tag>/fid, .../inception_score,
                                                    .../kid, .../precision, ... and the text .../provenance
                                                    (eval_noema/... for the raw generator)

and prints the JSON record. Its "figures" are named "<classifier tag>/<figure>" (e.g. "domain-1a2b3c4d/fid": the
classifier's name and the first 8 hex digits of its content hash), so figures of different classifiers never share
a name; its "provenance" holds the classifier's identity (name, content hash, id, input size, and a domain
classifier's card), the resize method, the numbers of generated and real samples, the real split, the generator
(EMA or raw) and the step.

The classifier defaults to the shipped domain classifier for the synthetic dataset and to TF-GAN's Inception
(TF-Hub) for every other dataset; without network access pass a local copy of the Inception module with
--classifier=/path/to/inception, or use --classifier=domain: a small classifier of the run's dataset, trained once
per dataset and image size (when it is not cached yet) and cached in $SAGAN_TF_CACHE/domain_classifiers. The SAGAN
paper's protocol is --num_samples=50000 with Inception. Bad input (no run directory, no checkpoint, no classifier, a
domain classifier of other images) ends with a one-paragraph error and exit status 2.

    python -m training.evaluate --model_dir=runs/synthetic32
    python -m training.evaluate --model_dir=runs/cifar32 --num_samples=50000 --classifier=/models/inception
    python -m training.evaluate --model_dir=runs/icons --classifier=domain
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags, logging  # noqa: E402

from sagan_tf import cli  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/). Required.",
                        flag_values=flag_values)
    flags.DEFINE_string("checkpoint", "latest", "Checkpoint: latest, best (the best evaluated during training, "
                        "checkpoints/best/), a step number or a path prefix.", flag_values=flag_values)
    flags.DEFINE_bool("ema", True, "Evaluate the EMA generator (--noema: the raw generator).", flag_values=flag_values)
    flags.DEFINE_integer("num_samples", 10_000, "Generated images (50000 for the SAGAN paper's protocol).",
                         flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 250, "Images generated and classified per batch.", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of the latents and labels; the same seed gives the same figures.",
                         flag_values=flag_values)
    flags.DEFINE_string("classifier", None, "'domain' (a small classifier of the run's dataset, trained once and "
                        "cached; works offline), 'synthetic', 'inception', a TF-Hub handle, a SavedModel directory or "
                        "a .keras file returning (features, logits). Default: 'synthetic' for the synthetic dataset, "
                        "else 'inception'.", flag_values=flag_values)
    flags.DEFINE_string("split", "train", "Dataset split of the real images.", flag_values=flag_values)
    flags.DEFINE_integer("num_real", 10_000, "Real images in the reference statistics (fewer if the split is "
                         "smaller; 0: the whole split). Cached per dataset, split, count, image size and classifier.",
                         flag_values=flag_values)
    flags.DEFINE_bool("kid", True, "Also compute the Kernel Inception Distance (--nokid: not).",
                      flag_values=flag_values)
    flags.DEFINE_bool("precision_recall", True, "Also compute precision, recall, density and coverage (k-NN, k=3; "
                      "--noprecision_recall: not).", flag_values=flag_values)
    flags.DEFINE_integer("is_splits", 1, "Inception Score splits (1: TF-GAN's definition; papers average 10).",
                         flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).",
                        flag_values=flag_values)
    flags.DEFINE_string("cache_dir", None, "Real-statistics cache. Default: $SAGAN_TF_CACHE/real_stats or "
                        "~/.cache/sagan_tf/real_stats.", flag_values=flag_values)


def eval_config(values):
    """The `evaluation.EvalConfig` that the flag values ask for."""
    from sagan_tf import evaluation

    return evaluation.EvalConfig(
        num_samples=values.num_samples, batch_size=values.batch_size, classifier=values.classifier or None,
        split=values.split, num_real=values.num_real or None, compute_kid=values.kid,
        compute_precision_recall=values.precision_recall, num_splits=values.is_splits, seed=values.seed,
        cache_dir=values.cache_dir)


def evaluate_run(model_dir, config, checkpoint=None, use_ema=True, data_dir=None, print_fn=logging.info):
    """Evaluates a run's generator and writes the record; returns it (a JSON-able dict: "figures" named
    "<classifier tag>/<figure>", "provenance", and what was evaluated).

    Args:
      model_dir: the training run directory.
      config: the `evaluation.EvalConfig`.
      checkpoint: None or "latest", "best", a step number or a checkpoint path prefix.
      use_ema: evaluate the EMA generator (the raw one when False, or when the run has no EMA).
      data_dir: TFDS data directory (or the base of relative "folder:" paths).
      print_fn: where progress lines go.

    Raises:
      UsageError: no run directory or checkpoint, an unavailable classifier, missing real data.
    """
    import tensorflow as tf

    from sagan_tf import evaluation, restore, summaries
    from sagan_tf.errors import UsageError
    from sagan_tf.run_dir import RunDirectory, write_json_atomically
    from training import classifier_cache

    if not model_dir:
        raise UsageError("--model_dir is required: the directory `python -m training.run` trained into.")
    run = RunDirectory(model_dir)
    restored = restore.restore_generator(model_dir, checkpoint, use_ema=use_ema)
    run_config = restored.config
    dataset, image_size = run_config.training.dataset, run_config.model.image_size
    print_fn(f"Evaluating {restored.checkpoint} (step {restored.step}, {'EMA' if restored.ema else 'raw'} "
             f"generator) on {config.num_samples} samples.")
    classifier_cache.ensure_domain_classifier(dataset, image_size, config, data_dir, print_fn)
    evaluator = evaluation.Evaluator.create(dataset, image_size, config, data_dir, print_fn)
    figures = evaluator(restored.generator)
    generator = "ema" if restored.ema else "raw"
    provenance = {**figures.pop("provenance"), "step": restored.step, "generator": generator}
    tag = evaluator.tag
    result = {
        **restore.describe(restored),
        "model_dir": model_dir,
        "dataset": dataset,
        "classifier": config.classifier or evaluation.default_classifier(dataset),
        "classifier_tag": tag,
        "figures": evaluation.qualified_figures(figures, tag),
        "provenance": provenance,
        "num_samples": figures["num_samples"],
        "seconds": figures["seconds"],
        "batch_size": config.batch_size,
        "num_splits": config.num_splits,
    }
    tf.io.gfile.makedirs(run.eval_dir)
    suffix = "" if restored.ema else "_noema"
    path = os.path.join(run.eval_dir, f"step_{restored.step:08d}{suffix}.json")
    write_json_atomically(path, result)
    write_json_atomically(os.path.join(run.eval_dir, "latest.json"), result)
    writer = tf.summary.create_file_writer(run.eval_dir)
    with writer.as_default():
        summaries.write_scalars(result["figures"], restored.step, prefix=f"eval{suffix}/")
        summaries.write_text(f"eval{suffix}/{tag}/provenance", json.dumps(provenance, sort_keys=True), restored.step)
    writer.close()
    print_fn(f"Wrote {path}.")
    return result


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    result = evaluate_run(values.model_dir, eval_config(values), values.checkpoint, use_ema=values.ema,
                          data_dir=values.data_dir)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
