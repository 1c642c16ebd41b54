"""Records the health signals of a real training run, for the replays in `tests/callbacks/test_health.py`.

    python -m tests.callbacks.health_traces.record --output=tests/callbacks/health_traces/synthetic32.json -- \
        --train_steps=600 --eval_samples=0 --model_dir=/tmp/trace --log_every=20

Everything after `--` goes to `python -m training.run`. Each progress line's values, as `callbacks.ProgressLogger`
hands them to its `health.HealthMonitor` (the first one: the spectral norms before any step), are written as
`{"command": [...], "preset": ..., "training": {...}, "log_every": N, "lines": [[step, {name: value}], ...]}`
(values to 6 significant digits).
Record with a small --log_every: the tests rebuild coarser lines from finer ones (`tests/callbacks/test_health.py`).
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
        raise SystemExit("usage: python -m tests.callbacks.health_traces.record --output=PATH -- <training.run flags>")
    output = argv[0].split("=", 1)[1]
    run_argv = argv[argv.index("--") + 1:]

    from absl import flags, logging

    from sagan_tf.callbacks import health
    from training import run

    lines = []
    update = health.HealthMonitor.update

    def recording_update(self, step, values):
        lines.append([int(step), {name: float(f"{float(value):.6g}") for name, value in values.items()}])
        return update(self, step, values)

    health.HealthMonitor.update = recording_update
    run.define_flags()
    flags.FLAGS(["training.run"] + run_argv)
    logging.use_absl_handler()  # what app.run would do: the progress lines on stderr
    logging.set_verbosity(logging.INFO)
    config, _ = run.config_and_options(flags.FLAGS)
    status = run.main(["training.run"])
    log_every = flags.FLAGS.log_every
    with open(output, "w") as stream:
        json.dump({"command": ["python", "-m", "training.run"] + run_argv, "preset": config.name,
                   "training": {name: getattr(config.training, name) for name in
                                ("dataset", "batch_size", "g_lr", "d_lr", "beta1", "beta2", "d_steps", "loss")},
                   "log_every": log_every, "lines": lines}, stream, indent=None, separators=(",", ":"))
        stream.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
