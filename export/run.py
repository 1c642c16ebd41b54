r"""Exports a training run's generator for TensorFlow Serving: `python -m export.run --model_dir=... --export_dir=...`.

Restores the generator (the EMA weights unless --no_ema) of the latest checkpoint, or of --checkpoint, and writes
the SavedModel to `<export_dir>/<version>/` (version: --version, default the checkpoint's training step), the
layout `tensorflow_model_server --model_base_path=<export_dir>` watches. An existing version is never
overwritten and a failed export leaves nothing behind. Bad input ends with a one-paragraph error, exit status 2.

    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32
    python -m export.run --model_dir=runs/synthetic32 --export_dir=exports/synthetic32 --checkpoint=1500 --version=2
    saved_model_cli show --all --dir exports/synthetic32/2000

See export/README.md for serving it and sagan_tf/serving.py for the signatures.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Training run directory (config.json, checkpoints/).", required=True)
flags.DEFINE_string("export_dir", None, "Model base path; the SavedModel goes to <export_dir>/<version>/.",
                    required=True)
flags.DEFINE_string("checkpoint", None, "Checkpoint step number or path prefix. Default: the latest.")
flags.DEFINE_integer("version", None, "Version directory number (>= 0). Default: the checkpoint's training step.",
                     lower_bound=0)
flags.DEFINE_bool("no_ema", False, "Export the raw generator weights instead of their moving average.")
flags.DEFINE_integer("max_batch_size", 1024, "Largest batch_size the unconditional `generate` signature accepts.",
                     lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from sagan_tf import serving
    from sagan_tf.errors import UsageError

    try:
        result = serving.export_run(FLAGS.model_dir, FLAGS.export_dir, checkpoint=FLAGS.checkpoint,
                                    version=FLAGS.version, use_ema=not FLAGS.no_ema,
                                    max_batch_size=FLAGS.max_batch_size)
    except UsageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    app.run(main)
