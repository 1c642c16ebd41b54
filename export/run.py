r"""Exports a training run's generator for TensorFlow Serving: `python -m export.run --model_dir=... --export_dir=...`.

Restores the generator (the EMA weights unless --noema) of the latest checkpoint, or of --checkpoint (latest, best
or a step number), and writes the SavedModel to `<export_dir>/<version>/` (version: --version, default the
checkpoint's training step), the layout `tensorflow_model_server --model_base_path=<export_dir>` watches. An
existing version is never overwritten and a failed export leaves nothing behind. Bad input, a damaged checkpoint
(named, with the intact ones to choose from) and an export the filesystem refuses to write (full, read-only, no
permission) end with a one-paragraph error, exit status 2. It reads a run that is training without taking its lock
(`sagan_tf.run_lock`).

Every signature of the export refuses a request for more than --max_batch_size images. By default the cap is the
most images one request can ask for within --memory_budget_mib (2048 MiB) of the serving process's memory, from
each preset's measured memory per image (`sagan_tf.serving_memory`); the JSON line reports the cap, the figure per
image and the expected peak. An explicit --max_batch_size wins, with a warning when it exceeds the budget.

    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --checkpoint=1500 --version=2
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --checkpoint=best
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --memory_budget_mib=512
    saved_model_cli show --all --dir exports/synthetic32/2000

See export/README.md for serving it and sagan_tf/serving.py for the signatures.
"""

import json
import sys

from absl import flags

from sagan_tf import cli


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/).", required=True,
                        flag_values=flag_values)
    flags.DEFINE_string("export_dir", None, "Model base path; the SavedModel goes to <export_dir>/<version>/.",
                        required=True, flag_values=flag_values)
    flags.DEFINE_string("checkpoint", "latest", "Checkpoint: latest, best (the best evaluated during training, "
                        "checkpoints/best/), a step number or a path prefix.", flag_values=flag_values)
    flags.DEFINE_integer("version", None, "Version directory number (>= 0). Default: the checkpoint's training "
                         "step.", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_bool("ema", True, "Export the EMA generator (--noema: the raw generator weights).",
                      flag_values=flag_values)
    flags.DEFINE_integer("max_batch_size", None, "The most images one request may ask for, in every signature. "
                         "Default: the most whose expected memory fits --memory_budget_mib.", lower_bound=1,
                         flag_values=flag_values)
    # sagan_tf.serving_memory.DEFAULT_MEMORY_BUDGET_MIB, written out: importing sagan_tf here would load TensorFlow
    # before `cli.run` has quietened it.
    flags.DEFINE_integer("memory_budget_mib", 2048, "MiB of memory one request may add to the serving process; sets "
                         "the default --max_batch_size.", lower_bound=1, flag_values=flag_values)


@cli.main_wrapper
def main(argv, values=None):
    from sagan_tf import serving

    values = flags.FLAGS if values is None else values
    result = serving.export_run(values.model_dir, values.export_dir, checkpoint=values.checkpoint,
                                version=values.version, use_ema=values.ema, max_batch_size=values.max_batch_size,
                                memory_budget_mib=values.memory_budget_mib)
    if "note" in result:
        print(f"Note: {result['note']}", file=sys.stderr)
    if "warning" in result:
        print(f"Warning: {result['warning']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
