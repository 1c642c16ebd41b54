"""`python -m training.evaluate --cas`: the Classification Accuracy Score of a run's generator
(`sagan_tf.evaluation.classifiers.cas`), written beside the run's other evaluation records:

    <model_dir>/eval/cas_step_<step, 8 digits>.json     (cas_step_<step>_noema.json for the raw generator)
    <model_dir>/eval/events.out.tfevents.*              TensorBoard: eval/cas/top1, .../real_top1, .../ratio_top1, ...
                                                        and the text eval/cas/provenance

latest.json stays the latest FID/IS record. Flags are `training.evaluate`'s; this module turns them into a call.
"""

import json
import os

from absl import logging

#: The `training.evaluate` flags that say how FID/IS are measured, refused with --cas (which trains its own
#: classifier on untruncated samples): flag name -> why.
_NOT_WITH_CAS = {"truncation": "it evaluates the untruncated generator", "protocol": "the protocol is FID's and IS's",
                 "classifier": "it trains its own classifier, of the domain classifier's architecture"}


def cas_config(values):
    """The `cas.CASConfig` of `training.evaluate`'s flag values (`--cas_samples_per_class`, `--seed`,
    `--batch_size` for generation).

    Raises:
      UsageError: a flag that does not go with --cas, or a bad --cas_samples_per_class.
    """
    from sagan_tf.evaluation.classifiers import cas
    from sagan_tf.errors import UsageError

    for name, why in _NOT_WITH_CAS.items():
        if getattr(values, name, None):
            raise UsageError(f"--cas does not take --{name} ({why}); drop --{name}, or run that evaluation without "
                             f"--cas. Received: {name}={getattr(values, name)!r}")
    per_class = values.cas_samples_per_class
    if per_class is not None and per_class < 1:
        raise UsageError(f"--cas_samples_per_class must be at least 1 (leave it out: as many as the real training "
                         f"split holds of each class). Received: {per_class}")
    return cas.CASConfig(samples_per_class=per_class, seed=values.seed, generation_batch_size=values.batch_size)


def evaluate_run(model_dir, config, checkpoint=None, use_ema=True, data_dir=None, print_fn=logging.info):
    """Measures the CAS of a run's generator and writes eval/cas_step_<step>[_noema].json and its TensorBoard
    events; returns the record (a JSON-able dict: "figures" named "cas/...", "provenance", what was evaluated).

    Raises:
      UsageError: no run directory or checkpoint, an unconditional run, a dataset without a held-out split.
    """
    import tensorflow as tf

    from sagan_tf import data
    from sagan_tf.run import restore, write_failures
    from sagan_tf.sampling import summaries
    from sagan_tf.evaluation.classifiers import cas
    from sagan_tf.errors import UsageError
    from sagan_tf.run.run_dir import RunDirectory, write_json_atomically

    if not model_dir:
        raise UsageError("--model_dir is required: the directory `python -m training.run` trained into.")
    run = RunDirectory(model_dir)
    run_config = run.read_config()
    if not run_config.model.conditional:
        raise UsageError(
            f"--cas measures a class-conditional generator: it trains a classifier on images generated for each "
            f"class and tests it on real images of those classes, and the run in {model_dir} is unconditional "
            f"(num_classes=0; dataset {run_config.training.dataset}), so its images have no class to be tested "
            "against. Leave out --cas (FID, IS, KID and precision/recall measure an unconditional generator).")
    dataset = data.resolve(run_config.training.dataset, data_dir)
    cas.check_heldout_split(dataset)  # before restoring anything
    restored = restore.restore_generator(model_dir, checkpoint, use_ema=use_ema)
    image_size = restored.config.model.image_size
    print_fn(f"CAS of {restored.checkpoint} (step {restored.step}, {'EMA' if restored.ema else 'raw'} generator).")
    sample = cas.generator_sampler(restored.generator, restored.config.model.latent_dim)
    measured = cas.classification_accuracy_score(sample, dataset, image_size, config, print_fn=print_fn)
    generator = "ema" if restored.ema else "raw"
    provenance = {**measured["provenance"], "step": restored.step, "generator": generator,
                  "checkpoint": restored.checkpoint}
    record = {**restore.describe(restored), "model_dir": run.path, "dataset": dataset.name,
              "figures": measured["figures"], "provenance": provenance, "seconds": measured["seconds"],
              "images": measured["images"], "seed": config.seed}
    suffix = "" if restored.ema else "_noema"
    path = os.path.join(run.eval_dir, f"cas_step_{restored.step:08d}{suffix}.json")
    with write_failures.reporting("CAS record", path, last_good=restored.checkpoint):
        write_json_atomically(path, record, "CAS record")
        writer = tf.summary.create_file_writer(run.eval_dir)
        with writer.as_default():
            summaries.write_scalars(record["figures"], restored.step, prefix=f"eval{suffix}/")
            summaries.write_text(f"eval{suffix}/cas/provenance", json.dumps(provenance, sort_keys=True),
                                 restored.step)
        writer.close()
    print_fn(f"Wrote {path}.")
    return record
