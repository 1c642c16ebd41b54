r"""Trains SAGAN: `python -m training.run [--dataset=synthetic] [--preset=...] [--model_dir=...] ...`.

Flags -> `SAGANConfig` (a preset with the flags' overrides) + `train_lib.TrainOptions` -> `train_lib.run`.
With no flags it trains the `synthetic32` preset on the embedded synthetic dataset into ./runs/synthetic32.
Rerunning a command resumes from the latest checkpoint in its --model_dir; SIGTERM or Ctrl-C stops after the
current step with a checkpoint saved (exit status 128 + signal number). Bad input ends with a one-paragraph error
and exit status 2.

FID and IS of the sampling (EMA) generator (`--eval_samples` images, default 2000) are computed at the start and the
end of training, and every `--eval_every` steps if that is > 0, and logged (TensorBoard tags eval/fid,
eval/inception_score, eval/kid); the run ends with a line such as
"FID 251.3 -> 40.2, IS 1.31 -> 3.12 (evaluation 30 s of 640 s)". The classifier is the shipped domain classifier
for the synthetic dataset and TF-GAN's Inception (TF-Hub) for the others. If that cannot be loaded and evaluation
was not asked for explicitly (--eval_every > 0 or --classifier), training goes on with a warning; --eval_samples=0
turns evaluation off. For reportable figures evaluate a checkpoint with `python -m training.evaluate`.

    python -m training.run                                    # about 6 minutes on 2 CPU cores
    python -m training.run --eval_every=500 --kid             # FID/IS/KID every 500 steps too
    python -m training.run --dataset=cifar10 --train_steps=100000
    python -m training.run --dataset=folder:/data/faces --image_size=64
    tensorboard --logdir runs
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from training import dataset_presets, train_lib  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("dataset", "synthetic", "synthetic, cifar10, celeb_a, imagenet2012, lsun/<category> or "
                    "folder:<path> (one subfolder per class, or none).")
flags.DEFINE_string("preset", None, "Model preset (synthetic32, cifar32, dcgan64, imagenet128). Default: chosen "
                    "from the dataset (folders: from --image_size, 32/64/128).")
flags.DEFINE_string("model_dir", None, "Run directory (config.json, checkpoints/, samples/, TensorBoard events). "
                    "Default: runs/<preset> for the preset's own dataset, else runs/<preset>-<dataset>.")
flags.DEFINE_integer("train_steps", None, "Generator updates to train to. Default: the preset's.")
flags.DEFINE_integer("batch_size", None, "Global batch size (all replicas together). Default: the preset's.")
flags.DEFINE_integer("image_size", None, "Image size; must be the one the preset's architecture makes.")
flags.DEFINE_float("g_lr", None, "Generator Adam learning rate. Default: the preset's.")
flags.DEFINE_float("d_lr", None, "Discriminator Adam learning rate. Default: the preset's.")
flags.DEFINE_float("beta1", None, "Adam beta1. Default: the preset's.")
flags.DEFINE_float("beta2", None, "Adam beta2. Default: the preset's.")
flags.DEFINE_integer("d_steps", None, "Discriminator updates per generator update. Default: the preset's.")
flags.DEFINE_string("ema_decay", None, "Decay of the generator's moving average, or 'none'. Default: the preset's.")
flags.DEFINE_enum("strategy", "auto", train_lib.STRATEGIES, "auto: all GPUs if any, else one device; mirrored: "
                  "all GPUs (or all logical CPUs); multi_worker: from TF_CONFIG; tpu: see --tpu; off: one device.")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for --strategy=tpu ('' = this TPU VM).")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices (try --strategy=mirrored "
                     "without GPUs).")
flags.DEFINE_enum("mixed_precision", "float32", train_lib.PRECISIONS, "Compute precision.")
flags.DEFINE_bool("jit_compile", None, "XLA-compile the train step. Default: Keras's auto (on with GPUs only).")
flags.DEFINE_integer("sample_every", 500, "Steps between sample grids (0: only at the end).")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints (0: only at the end).")
flags.DEFINE_integer("log_every", 100, "Steps between progress lines.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation, noise, data order and sample-grid latents.")
flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).")
flags.DEFINE_integer("eval_every", 0, "Steps between FID/IS evaluations (0: only at the start and the end of "
                     "training). Evaluation runs on the chief with the sampling (EMA) generator.")
flags.DEFINE_integer("eval_samples", 2000, "Generated images per evaluation during training (0: no evaluation). "
                     "Use training.evaluate with 50000 for figures comparable to papers.")
flags.DEFINE_string("classifier", None, "Classifier for FID/IS: 'synthetic', 'inception', a TF-Hub handle, a "
                    "SavedModel directory or a .keras file. Default: 'synthetic' for the synthetic dataset, else "
                    "'inception' (needs network access to TF-Hub or a local copy; see training.evaluate).")
flags.DEFINE_bool("kid", False, "Also compute the Kernel Inception Distance at each evaluation.")


def config_and_options(values):
    """The `SAGANConfig` and `TrainOptions` that the flag values ask for."""
    overrides = {name: getattr(values, name) for name in
                 ("train_steps", "batch_size", "g_lr", "d_lr", "beta1", "beta2", "d_steps")
                 if getattr(values, name) is not None}
    if values.ema_decay is not None:
        overrides["ema_decay"] = dataset_presets.parse_ema_decay(values.ema_decay)
    config = dataset_presets.config_for(values.dataset, values.preset, values.image_size, values.data_dir,
                                         **overrides)
    options = train_lib.TrainOptions(
        model_dir=values.model_dir or dataset_presets.default_model_dir(config, values.dataset),
        dataset=values.dataset, data_dir=values.data_dir, strategy=values.strategy, tpu=values.tpu,
        cpu_devices=values.cpu_devices, mixed_precision=values.mixed_precision, jit_compile=values.jit_compile,
        sample_every=values.sample_every, checkpoint_every=values.checkpoint_every, log_every=values.log_every,
        seed=values.seed, eval_samples=values.eval_samples, eval_every=values.eval_every,
        classifier=values.classifier or None, compute_kid=values.kid)
    return config, options


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from sagan_tf.errors import UsageError

    try:
        config, options = config_and_options(FLAGS)
        result = train_lib.run(config, options)
    except UsageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    if result.stopped_by_signal:
        return 128 + result.stopped_by_signal
    return 0


if __name__ == "__main__":
    app.run(main)
