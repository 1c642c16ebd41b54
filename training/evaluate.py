r"""Evaluates a training run: `python -m training.evaluate --model_dir=runs/synthetic32 [--num_samples=50000] ...`.

Restores the EMA generator (`--noema`: the raw one) of the latest checkpoint (or `--checkpoint`), computes FID,
Inception Score, KID (`--nokid`: not), precision, recall, density and coverage (`--noprecision_recall`: not), and for
a conditional run whose classifier's logits are the dataset's classes the class accuracy (top-1, top-5 with more
than 5 classes) beside chance, of `--num_samples` generated images against the cached statistics of `--num_real`
real images of the run's dataset, and
writes

    <model_dir>/eval/step_<step, 8 digits>.json     (step_<step>_noema.json for the raw generator)
    <model_dir>/eval/latest.json                    the same record, of the latest evaluation
    <model_dir>/eval/events.out.tfevents.*          TensorBoard: eval/<classifier tag>/fid, .../inception_score,
                                                    .../kid, .../precision, ... and the text .../provenance
                                                    (eval_noema/... for the raw generator)

and prints the JSON record. With --truncation=2.0,1.0,0.7,0.5 (the truncation trick, BigGAN sec. 3.1: latents drawn
from the normal truncated at |z| <= t, as an export's `generate` draws them) it evaluates each value with the same
seed (the same labels and the same underlying draws at every t; "none" draws the untruncated normal from those same
draws), writes one record per value

    <model_dir>/eval/step_<step>_truncation_<t>.json    ("truncation": t; "none": the untruncated evaluation)
    <model_dir>/eval/truncation_step_<step>.png         FID against IS across the truncations (and precision
                                                        against recall), as BigGAN's figure 4
    <model_dir>/eval/truncation_step_<step>.jsonl       the records of the sweep, one per line

prints each record as one JSON line, and leaves latest.json to the untruncated evaluations.

With --per_class (a class-conditional run) it measures each class instead (`sagan_tf.evaluation.per_class_evaluator`):
intra-class FID and KID, class accuracy of the generated images beside the classifier's accuracy on real held-out
images, per-class precision and recall, of --per_class_samples images per class (of all classes, or a seeded subset
of --classes), and writes

    <model_dir>/eval/per_class_step_<step>.json, .csv, .png   the record, the table, the worst and best classes

A record's "figures" are named "<classifier tag>/<figure>" (e.g. "domain-1a2b3c4d/fid": the classifier's name and the
first 8 hex digits of its content hash), so figures of different classifiers never share a name; its "provenance" holds
the classifier's identity (name, content hash, id, input size, and a domain classifier's card), the resize method, the
numbers of generated and real samples, the real split, the generator (EMA or raw) and the step.

The classifier defaults to the shipped domain classifier for the synthetic dataset and to TF-GAN's Inception
(TF-Hub) for every other dataset; without network access pass a local copy of the Inception module with
--classifier=/path/to/inception, or use --classifier=domain: a small classifier of the run's dataset, trained once
per dataset and image size (when it is not cached yet) and cached in $SAGAN_TF_CACHE/domain_classifiers.

By default it measures 10,000 generated against 10,000 real images with a 1-split Inception Score: quick, and
comparable between runs measured the same way, not with published figures. `--protocol=paper` is the SAGAN paper's
protocol: 50,000 generated images, 50,000 real images (the whole split when it is smaller), an Inception Score
averaged over 10 splits and TF-GAN's Inception ('inception', or a local copy of it with --classifier=PATH); the
record says so ("protocol": "paper", also in its provenance). Bad input (no run directory, no checkpoint, no
classifier, a domain classifier of other images, flags that contradict --protocol), and a record the filesystem
refuses to write (full, read-only, no permission; no partial file is left), end with a one-paragraph error and exit
status 2. It reads a run that is training without taking its lock (`sagan_tf.run.run_lock`): it writes only into eval/,
never into checkpoints/.

    python -m training.evaluate --model_dir=runs/synthetic32
    python -m training.evaluate --model_dir=runs/cifar32 --protocol=paper --classifier=/models/inception
    python -m training.evaluate --model_dir=runs/cifar32-folder_data_icons --classifier=domain
    python -m training.evaluate --model_dir=runs/synthetic32 --truncation=none,2.0,1.0,0.7,0.5
    python -m training.evaluate --model_dir=runs/synthetic32 --per_class
    python -m training.evaluate --model_dir=runs/synthetic32 --cas [--cas_samples_per_class=500]

`--cas` measures instead the Classification Accuracy Score of a class-conditional run (`training.evaluate_cas`,
`sagan_tf.evaluation.classifiers.cas`): a classifier trained only on generated images and tested on real held-out
images, beside the same classifier trained on real images; it prints a summary line and the record, written to
eval/cas_step_<step>.json. An unconditional run is refused (exit status 2).
"""

import json
import math
import os

from absl import flags, logging

from sagan_tf import cli

#: The published protocols `--protocol` names, as the flag values each fixes. "paper": the SAGAN paper's (section 5:
#: 50,000 samples, TF-GAN's Inception; an Inception Score averaged over 10 splits as is customary; as many real
#: images, or the whole split when it is smaller).
PROTOCOLS = {"paper": {"num_samples": 50_000, "num_real": 50_000, "is_splits": 10, "classifier": "inception"}}


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/). Required.",
                        flag_values=flag_values)
    flags.DEFINE_string("checkpoint", "latest", "Checkpoint: latest, best (the best evaluated during training, "
                        "checkpoints/best/), a step number or a path prefix.", flag_values=flag_values)
    flags.DEFINE_bool("ema", True, "Evaluate the EMA generator (--noema: the raw generator).", flag_values=flag_values)
    flags.DEFINE_enum("protocol", None, sorted(PROTOCOLS), "A published evaluation protocol, which fixes "
                      "--num_samples, --num_real, --is_splits and the classifier: paper (the SAGAN paper's: 50000 "
                      "generated and 50000 real images, 10 IS splits, TF-GAN's Inception). Default: as those flags "
                      "say.", flag_values=flag_values)
    flags.DEFINE_integer("num_samples", 10_000, "Generated images (--protocol=paper: 50000).",
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
    flags.DEFINE_list("truncation", [], "Truncation sweep: comma-separated values t > 0 (and 'none': untruncated) "
                      "evaluated with the same seed, one record each, and a plot of FID against IS across them.",
                      flag_values=flag_values)
    flags.DEFINE_bool("per_class", False, "Per-class evaluation of a class-conditional run: intra-class FID and KID, "
                      "class accuracy (top-1/top-5) of the generated images beside the classifier's accuracy on real "
                      "held-out images, per-class precision and recall; writes eval/per_class_step_<step>.json, "
                      ".csv and .png.", flag_values=flag_values)
    flags.DEFINE_integer("classes", 0, "With --per_class: evaluate a seeded (--seed) subset of this many classes "
                         "(0: all).", flag_values=flag_values)
    flags.DEFINE_integer("per_class_samples", 500, "With --per_class: images generated per class, and real images "
                         "read at most per class.", flag_values=flag_values)
    flags.DEFINE_integer("is_splits", 1, "Inception Score splits (1: TF-GAN's definition; papers average 10).",
                         flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).",
                        flag_values=flag_values)
    flags.DEFINE_string("cache_dir", None, "Real-statistics cache. Default: $SAGAN_TF_CACHE/real_stats or "
                        "~/.cache/sagan_tf/real_stats.", flag_values=flag_values)
    flags.DEFINE_bool("cas", False, "Instead of FID/IS: the Classification Accuracy Score of a class-conditional "
                      "run (a classifier trained only on generated images, tested on real held-out images, beside "
                      "one trained on real images); writes eval/cas_step_<step>.json.", flag_values=flag_values)
    flags.DEFINE_integer("cas_samples_per_class", None, "--cas: generated images per class (default: as many as "
                         "the real training split holds; 2560 for synthetic).", flag_values=flag_values)


def parse_truncations(values):
    """The truncations of a --truncation list: None for "none", else floats > 0, in the given order.

    Raises:
      UsageError: a value that is not "none" or a finite number > 0, or a value given twice.
    """
    import numpy as np

    from sagan_tf.errors import UsageError

    truncations = []
    for text in values:
        text = text.strip()
        if text.lower() == "none":
            value = None
        else:
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not (np.isfinite(value) and np.float32(value) > 0):
                raise UsageError(f"--truncation takes finite numbers > 0 and 'none' (untruncated), comma-separated, "
                                 f"e.g. --truncation=none,2.0,1.0,0.7,0.5. Received: {text!r}")
        if value in truncations:
            raise UsageError(f"--truncation lists {text} twice; each value is evaluated once.")
        truncations.append(value)
    return truncations


def _given(values, name):
    """Whether the flag `name` was given on the command line (False for values that are not absl flags)."""
    try:
        return values[name].present > 0
    except (TypeError, KeyError, AttributeError):
        return False


def protocol_settings(values):
    """{flag name: value} of the flags that `--protocol` fixes, the flag values themselves without a protocol.

    Raises:
      UsageError: a flag given with another value than the protocol's, or a classifier that is not TF-GAN's
        Inception (a domain or the synthetic classifier) with a protocol.
    """
    from sagan_tf.errors import UsageError

    names = ("num_samples", "num_real", "is_splits")
    protocol = getattr(values, "protocol", None)
    if not protocol:
        return {**{name: getattr(values, name) for name in names}, "classifier": values.classifier or None}
    settings = dict(PROTOCOLS[protocol])
    for name in names:
        if _given(values, name) and getattr(values, name) != settings[name]:
            raise UsageError(f"--protocol={protocol} evaluates with --{name}={settings[name]}; drop --{name}, or drop "
                             f"--protocol to choose it. Received: {name}={getattr(values, name)}")
    if values.classifier:
        if values.classifier in ("domain", "synthetic"):
            raise UsageError(f"--protocol={protocol} measures with TF-GAN's Inception: leave --classifier out, or "
                             "pass 'inception', its TF-Hub handle or a local copy of it. Received: "
                             f"classifier={values.classifier!r}")
        settings["classifier"] = values.classifier
    return settings


def eval_config(values):
    """The `evaluation.EvalConfig` that the flag values ask for (`--protocol`'s settings included).

    Raises:
      UsageError: flags that contradict `--protocol` (see `protocol_settings`), or invalid settings.
    """
    from sagan_tf.evaluation import evaluator as evaluation

    settings = protocol_settings(values)
    return evaluation.EvalConfig(
        num_samples=settings["num_samples"], batch_size=values.batch_size, classifier=settings["classifier"],
        split=values.split, num_real=settings["num_real"] or None, compute_kid=values.kid,
        compute_precision_recall=values.precision_recall, num_splits=settings["is_splits"], seed=values.seed,
        cache_dir=values.cache_dir)


def truncation_suffix(truncation):
    """"_truncation_0.5" for 0.5, "_truncation_none" for None: the file-name part of a sweep's record."""
    return "_truncation_none" if truncation is None else f"_truncation_{truncation:g}"


def evaluate_run(model_dir, config, checkpoint=None, use_ema=True, data_dir=None, print_fn=logging.info,
                 protocol=None):
    """Evaluates a run's generator and writes the record to eval/step_<step>.json and eval/latest.json; returns it
    (a JSON-able dict: "figures" named "<classifier tag>/<figure>", "provenance", the "truncation" of
    `config.truncation`, and what was evaluated).

    Args:
      model_dir: the training run directory.
      config: the `evaluation.EvalConfig`.
      checkpoint: None or "latest", "best", a step number or a checkpoint path prefix.
      use_ema: evaluate the EMA generator (the raw one when False, or when the run has no EMA).
      data_dir: TFDS data directory (or the base of relative "folder:" paths).
      print_fn: where progress lines go.
      protocol: the name of the protocol `config` follows (a key of `PROTOCOLS`), recorded as "protocol" in the
        record and its provenance; None: none.

    Raises:
      UsageError: no run directory or checkpoint, an unavailable classifier, missing real data.
    """
    from sagan_tf.run import write_failures
    from sagan_tf.run.run_dir import write_json_atomically

    run, restored, evaluator = _prepare(model_dir, config, checkpoint, use_ema, data_dir, print_fn)
    record = _evaluate(run, restored, evaluator, config, "", print_fn, protocol)
    path = os.path.join(run.eval_dir, "latest.json")
    with write_failures.reporting("evaluation record", path, last_good=restored.checkpoint):
        write_json_atomically(path, record, "evaluation record")
    return record


def sweep_truncation(model_dir, config, truncations, checkpoint=None, use_ema=True, data_dir=None,
                     print_fn=logging.info, protocol=None):
    """Evaluates a run's generator at each truncation with the same `config.seed` (the truncation trick's
    fidelity/variety trade-off, BigGAN sec. 3.1 and fig. 4); returns the records, one per truncation.

    Each evaluation draws the same labels and the same underlying uniforms (`evaluation.generator_inputs`), so the
    records differ by the truncation only; None (untruncated) is evaluated as t = infinity, the same draws without a
    bound, and recorded as None. Each record is written to eval/step_<step>_truncation_<t>.json, all of
    them to eval/truncation_step_<step>.jsonl and, for two truncations or more, the plot of FID against IS (and
    precision against recall, when computed) to eval/truncation_step_<step>.png. latest.json is left alone. The
    raw generator's files end in "_noema".

    Args:
      model_dir: the training run directory.
      config: the `evaluation.EvalConfig` (its `truncation` is replaced by each value).
      truncations: a non-empty list of None (untruncated) and numbers > 0, e.g. from `parse_truncations`.
      checkpoint, use_ema, data_dir, print_fn, protocol: as `evaluate_run`.

    Returns:
      (the records in the order of `truncations`, the plot's path or None for a single truncation).

    Raises:
      UsageError: an empty or repeated list of truncations, a bad truncation, and what `evaluate_run` raises.
    """
    import dataclasses

    from sagan_tf.sampling import plots
    from sagan_tf.run import write_failures
    from sagan_tf.errors import UsageError
    from sagan_tf.run.run_dir import write_text_atomically

    truncations = list(truncations)
    if not truncations or len(set(truncations)) != len(truncations):
        raise UsageError(f"A truncation sweep needs distinct truncations. Received: {truncations}")
    for truncation in truncations:  # fail before loading anything
        dataclasses.replace(config, truncation=truncation)
    run, restored, evaluator = _prepare(model_dir, config, checkpoint, use_ema, data_dir, print_fn)
    records = []
    for truncation in truncations:
        print_fn(f"Truncation {'none' if truncation is None else f'{truncation:g}'} "
                 f"({len(records) + 1} of {len(truncations)}).")
        swept = evaluator.with_truncation(math.inf if truncation is None else truncation)
        records.append(_evaluate(run, restored, swept, swept.config, truncation_suffix(truncation), print_fn,
                                 protocol))
    stem = os.path.join(run.eval_dir, f"truncation_step_{restored.step:08d}{'' if restored.ema else '_noema'}")
    plot = None
    with write_failures.reporting("truncation sweep", stem, last_good=restored.checkpoint):
        if len(records) > 1:
            tag = evaluator.tag
            rows = [{"truncation": record["truncation"], **record["figures"]} for record in records]
            plot = plots.truncation_tradeoff(
                rows, stem + ".png", title=f"{restored.config.name} step {restored.step}: truncation sweep "
                f"({config.num_samples} samples, seed {config.seed}, {tag})", fid_name=f"{tag}/fid",
                is_name=f"{tag}/inception_score", precision_name=f"{tag}/precision", recall_name=f"{tag}/recall")
            print_fn(f"Wrote {plot}.")
        write_text_atomically(stem + ".jsonl", "".join(json.dumps(record, sort_keys=True) + "\n"
                                                       for record in records), "truncation sweep record")
    return records, plot


def _prepare(model_dir, config, checkpoint, use_ema, data_dir, print_fn):
    """(run directory, restored generator, evaluator) of an evaluation."""
    from sagan_tf import data
    from sagan_tf.evaluation import evaluator as evaluation
    from sagan_tf.run import restore
    from sagan_tf.errors import UsageError
    from sagan_tf.run.run_dir import RunDirectory
    from sagan_tf.evaluation.classifiers import cache as classifier_cache
    from training import train_lib

    if not model_dir:
        raise UsageError("--model_dir is required: the directory `python -m training.run` trained into.")
    run = RunDirectory(model_dir)
    restored = restore.restore_generator(model_dir, checkpoint, use_ema=use_ema)
    run_config = restored.config
    image_size = run_config.model.image_size
    print_fn(f"Evaluating {restored.checkpoint} (step {restored.step}, {'EMA' if restored.ema else 'raw'} "
             f"generator) on {config.num_samples} samples.")
    dataset = data.resolve(run_config.training.dataset, data_dir)  # a folder is scanned once for all that follows
    classifier_cache.ensure_domain_classifier(dataset, image_size, config, print_fn=print_fn)
    evaluator = evaluation.Evaluator.create(dataset, image_size, config, print_fn=print_fn)
    # Labels drawn as the run trained them (fake_labels=data: the data's class frequencies).
    evaluator = evaluator.with_label_frequencies(train_lib.fake_label_frequencies(run_config, dataset))
    return run, restored, evaluator


def _evaluate(run, restored, evaluator, config, name_suffix, print_fn, protocol=None):
    """Evaluates `restored.generator` with `evaluator`, writes eval/step_<step><name_suffix>[_noema].json and the
    TensorBoard events; returns the record."""
    import tensorflow as tf

    from sagan_tf.evaluation import evaluator as evaluation
    from sagan_tf.run import restore, write_failures
    from sagan_tf.sampling import summaries
    from sagan_tf.run.run_dir import write_json_atomically

    dataset = restored.config.training.dataset
    figures = evaluator(restored.generator)
    generator = "ema" if restored.ema else "raw"
    provenance = {**figures.pop("provenance"), "step": restored.step, "generator": generator, "protocol": protocol}
    tag = evaluator.tag
    truncation = evaluation.recorded_truncation(config.truncation)
    result = {
        **restore.describe(restored),
        "model_dir": run.path,
        "dataset": dataset,
        "classifier": config.classifier or evaluation.default_classifier(dataset),
        "classifier_tag": tag,
        "figures": evaluation.qualified_figures(figures, tag),
        "provenance": provenance,
        "num_samples": figures["num_samples"],
        "seconds": figures["seconds"],
        "batch_size": config.batch_size,
        "num_splits": config.num_splits,
        "seed": config.seed,
        "truncation": truncation,
        "protocol": protocol,
    }
    suffix = "" if restored.ema else "_noema"
    path = os.path.join(run.eval_dir, f"step_{restored.step:08d}{name_suffix}{suffix}.json")
    with write_failures.reporting("evaluation record", path, last_good=restored.checkpoint):
        write_json_atomically(path, result, "evaluation record")
        # TensorBoard: eval/<tag>/fid, ...; a sweep's under eval/truncation_<t>/<tag>/fid, ...
        prefix = f"eval{suffix}/" + (f"{name_suffix.lstrip('_')}/" if name_suffix else "")
        writer = tf.summary.create_file_writer(run.eval_dir)
        with writer.as_default():
            summaries.write_scalars(result["figures"], restored.step, prefix=prefix)
            summaries.write_text(f"{prefix}{tag}/provenance", json.dumps(provenance, sort_keys=True), restored.step)
        writer.close()
    print_fn(f"Wrote {path}.")
    return result


def _per_class(values, config, truncations):
    """`--per_class`: the per-class evaluation (`sagan_tf.evaluation.per_class_evaluator`); prints its record."""
    from sagan_tf.evaluation import per_class_evaluator
    from sagan_tf.errors import UsageError

    if truncations:
        raise UsageError("--per_class evaluates the untruncated generator; drop --truncation, or run the sweep "
                         "separately.")
    record = per_class_evaluator.evaluate_per_class(
        values.model_dir, config, samples_per_class=values.per_class_samples, classes=values.classes,
        checkpoint=values.checkpoint, use_ema=values.ema, data_dir=values.data_dir, print_fn=logging.info)
    print(json.dumps(record, sort_keys=True))
    return 0


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    if values.cas and getattr(values, "per_class", False):
        from sagan_tf.errors import UsageError

        raise UsageError("--cas and --per_class are two evaluations: run one command for each.")
    if values.cas:
        return _main_cas(values)
    if values.cas_samples_per_class is not None:
        from sagan_tf.errors import UsageError

        raise UsageError("--cas_samples_per_class sets the generated images of --cas; add --cas, or drop it.")
    config = eval_config(values)
    truncations = parse_truncations(values.truncation)
    if getattr(values, "per_class", False):
        return _per_class(values, config, truncations)
    for name in ("classes", "per_class_samples"):
        if _given(values, name):
            from sagan_tf.errors import UsageError

            raise UsageError(f"--{name} sets up the per-class evaluation; add --per_class, or drop --{name}.")
    if truncations:
        records, _ = sweep_truncation(values.model_dir, config, truncations, values.checkpoint,
                                      use_ema=values.ema, data_dir=values.data_dir, protocol=values.protocol)
    else:
        records = [evaluate_run(values.model_dir, config, values.checkpoint, use_ema=values.ema,
                                data_dir=values.data_dir, protocol=values.protocol)]
    for record in records:
        print(json.dumps(record, sort_keys=True))
    return 0


def _main_cas(values):
    """--cas: measures the CAS (`training.evaluate_cas`), prints a summary line and the JSON record."""
    from sagan_tf.evaluation.classifiers import cas
    from training import evaluate_cas

    record = evaluate_cas.evaluate_run(values.model_dir, evaluate_cas.cas_config(values), values.checkpoint,
                                       use_ema=values.ema, data_dir=values.data_dir)
    print(cas.summary_line(record))
    print(json.dumps(record, sort_keys=True))
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
