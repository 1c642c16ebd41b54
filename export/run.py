r"""Exports a training run's generator for TensorFlow Serving: `python -m export.run --model_dir=... --export_dir=...`.

Restores the generator (the EMA weights unless --noema) of the latest checkpoint, or of --checkpoint (latest, best
or a step number), and writes the SavedModel to `<export_dir>/<version>/` (version: --version, default the
checkpoint's training step), the layout `tensorflow_model_server --model_base_path=<export_dir>` watches. An
existing version is never overwritten and a failed export leaves nothing behind. Bad input, a damaged checkpoint
(named, with the intact ones to choose from) and an export the filesystem refuses to write (full, read-only, no
permission) end with a one-paragraph error, exit status 2. It reads a run that is training without taking its lock
(`sagan_tf.run.run_lock`).

Every signature of the export refuses a request for more than --max_batch_size images. By default the cap is the
most images one request can ask for within --memory_budget_mib (2048 MiB) of the serving process's memory, from
each preset's measured memory per image (`sagan_tf.serving.memory`); the JSON line reports the cap, the figure per
image and the expected peak. An explicit --max_batch_size wins, with a warning when it exceeds the budget. A
request by class name is bounded too: a name longer than the longest class name (`max_class_name_length` in the
JSON line, in UTF-8 bytes) is refused; a class name over 255 bytes makes the export a usage error.

    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --checkpoint=1500 --version=2
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --checkpoint=best
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --memory_budget_mib=512
    saved_model_cli show --all --dir exports/synthetic32/2000

A generator saved in Keras's own format by any Keras backend (e.g. trained on JAX, then
`model.ema_generator.save("g.keras")` or `model.ema_generator.save_weights("g.weights.h5")`) is exported the same
way with --keras_file instead of --model_dir, and --version (a file records no training step); a `.weights.h5` file
needs --preset to build the generator, a `.keras` file carries its config (--preset, when given, must match it). A
file that does not fit is a usage error.

    python -m export.run --keras_file=g.keras --export_dir=exports/dcgan64 --version=1
    python -m export.run --keras_file=g.weights.h5 --preset=dcgan64 --export_dir=exports/dcgan64 --version=1

See export/README.md for serving it and sagan_tf/serving/signatures.py for the signatures.
"""

import json
import sys

from absl import flags

from sagan_tf import cli


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/). Or --keras_file.",
                        flag_values=flag_values)
    flags.DEFINE_string("keras_file", None, "Instead of --model_dir: a generator saved by any Keras backend, a .keras "
                        "file (generator.save) or a .weights.h5 file (generator.save_weights, with --preset).",
                        flag_values=flag_values)
    flags.DEFINE_string("preset", None, "With --keras_file: the preset the generator was built from (needed for "
                        ".weights.h5; checked against a .keras file's config).", flag_values=flag_values)
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
    # sagan_tf.serving.memory.DEFAULT_MEMORY_BUDGET_MIB, written out: importing sagan_tf here would load TensorFlow
    # before `cli.run` has quietened it.
    flags.DEFINE_integer("memory_budget_mib", 2048, "MiB of memory one request may add to the serving process; sets "
                         "the default --max_batch_size.", lower_bound=1, flag_values=flag_values)


@cli.main_wrapper
def main(argv, values=None):
    from sagan_tf.serving import signatures as serving
    from sagan_tf.errors import UsageError

    values = flags.FLAGS if values is None else values
    if (values.model_dir is None) == (values.keras_file is None):
        raise UsageError("Pass exactly one of --model_dir (a training run) and --keras_file (a generator saved in "
                         f"Keras's format). Received: --model_dir={values.model_dir} --keras_file={values.keras_file}")
    if values.keras_file is not None:
        if values["checkpoint"].present or not values.ema:
            raise UsageError("--checkpoint and --noema choose within a training run; a --keras_file is one generator.")
        config = None
        if values.preset is not None:
            from sagan_tf.config import presets

            config = presets.get_preset(values.preset)
        result = serving.export_keras_file(values.keras_file, values.export_dir, values.version, config=config,
                                           max_batch_size=values.max_batch_size,
                                           memory_budget_mib=values.memory_budget_mib)
    else:
        if values.preset is not None:
            raise UsageError("--preset goes with --keras_file: a training run's config names its own preset.")
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
