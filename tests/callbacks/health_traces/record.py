"""Records the health signals of a real training run, for the replays in `tests/callbacks/test_health.py`.

    python -m tests.callbacks.health_traces.record --output=tests/callbacks/health_traces/synthetic32.json -- \
        --train_steps=600 --eval_samples=0 --model_dir=/tmp/trace --log_every=20

    python -m tests.callbacks.health_traces.record \
        --output=tests/callbacks/health_traces/synthetic32_shuffled_labels.json --shuffle_labels -- \
        --train_steps=300 --eval_every=50 --eval_samples=1000 --log_every=20 --sample_every=0 --checkpoint_every=0 \
        --model_dir=/tmp/trace_shuffled
    python -m tests.callbacks.health_traces.record \
        --output=tests/callbacks/health_traces/synthetic32_shuffled_labels.json --shuffle_labels --append -- \
        --train_steps=700 --eval_every=50 --eval_samples=1000 --log_every=20 --sample_every=0 --checkpoint_every=0 \
        --model_dir=/tmp/trace_shuffled

Everything after `--` goes to `python -m training.run`. Each progress line's values, as `callbacks.ProgressLogger`
hands them to its `health.HealthMonitor` (the first one: the spectral norms before any step), are written as
`{"command": [...], "preset": ..., "training": {...}, "log_every": N, "lines": [[step, {name: value}], ...],
"evaluations": [[step, {figure: value}], ...]}` (values to 6 significant digits; "evaluations": the figures of each
in-training evaluation, `callbacks.EvaluateEvery`).
Record with a small --log_every: the tests rebuild coarser lines from finer ones (`tests/callbacks/test_health.py`).

`--append` adds a resumed run (the same command with a larger --train_steps, into the same --model_dir) to the trace
the output file holds: its lines and evaluations after the steps already there, and its command. On CPU a resumed
synthetic run continues bit for bit, so the trace is that of the uninterrupted run (with `--shuffle_labels`, the
random labels after the resume are other random labels).

`--shuffle_labels` breaks a run on purpose, here and not in the library: every real image's label is replaced by a
uniformly random one in the input pipeline, so the label tells the networks nothing (a run that ignores its labels).
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv):
    """Runs `training.run` with the arguments after "--" and writes the trace to the --output file.

    Args:
      argv: this script's arguments: `--output=PATH -- <training.run flags>`.

    Returns:
      training.run's exit status.
    """
    if "--" not in argv or not argv[0].startswith("--output="):
        raise SystemExit("usage: python -m tests.callbacks.health_traces.record --output=PATH [--shuffle_labels] "
                         "[--append] -- <training.run flags>")
    output = argv[0].split("=", 1)[1]
    shuffle_labels = "--shuffle_labels" in argv[1:argv.index("--")]
    append = "--append" in argv[1:argv.index("--")]
    run_argv = argv[argv.index("--") + 1:]

    from absl import flags, logging

    from sagan_tf.callbacks import evaluation, health
    from training import run, train_lib

    lines = []
    update = health.HealthMonitor.update

    def recording_update(self, step, values):
        lines.append([int(step), {name: float(f"{float(value):.6g}") for name, value in values.items()}])
        return update(self, step, values)

    health.HealthMonitor.update = recording_update
    evaluations = []
    evaluate = evaluation.EvaluateEvery.evaluate

    def recording_evaluate(self, step):
        figures = evaluate(self, step)
        evaluations.append([int(step), {name: float(f"{float(figures[name]):.6g}") for name in evaluation.FIGURES
                                        if figures.get(name) is not None}])
        return figures

    evaluation.EvaluateEvery.evaluate = recording_evaluate
    if shuffle_labels:
        _shuffle_labels(train_lib)
    run.define_flags()
    flags.FLAGS(["training.run"] + run_argv)
    logging.use_absl_handler()  # what app.run would do: the progress lines on stderr
    logging.set_verbosity(logging.INFO)
    config, _ = run.config_and_options(flags.FLAGS)
    status = run.main(["training.run"])
    log_every = flags.FLAGS.log_every
    trace = {"command": ["python", "-m", "training.run"] + run_argv, "preset": config.name,
             "training": {name: getattr(config.training, name) for name in
                          ("dataset", "batch_size", "g_lr", "d_lr", "beta1", "beta2", "d_steps", "loss")},
             "log_every": log_every, "shuffled_labels": shuffle_labels, "lines": lines, "evaluations": evaluations}
    if append:
        with open(output) as stream:
            earlier = json.load(stream)
        commands = earlier.get("commands") or [earlier["command"]]
        for key in ("lines", "evaluations"):
            last = earlier[key][-1][0] if earlier[key] else -1
            trace[key] = earlier[key] + [row for row in trace[key] if row[0] > last]
        trace = {**trace, "command": commands[0], "commands": commands + [trace["command"]]}
    with open(output, "w") as stream:
        json.dump(trace, stream, indent=None, separators=(",", ":"))
        stream.write("\n")
    return status


def _shuffle_labels(train_lib):
    """Makes `train_lib.input_fn`'s pipelines replace each label by a uniformly random class."""
    import tensorflow as tf

    input_fn = train_lib.input_fn

    def shuffled_input_fn(config, options, start_step, dataset=None):
        dataset_fn = input_fn(config, options, start_step, dataset)
        num_classes = config.model.num_classes

        def shuffled(input_context):
            return dataset_fn(input_context).map(lambda images, labels: (images, tf.random.uniform(
                tf.shape(labels), 0, num_classes, dtype=labels.dtype, seed=options.seed)))

        return shuffled

    train_lib.input_fn = shuffled_input_fn


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
