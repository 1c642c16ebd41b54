r"""Trains SAGAN: `python -m training.run [--dataset=synthetic] [--preset=...] [--model_dir=...] ...`.

Flags -> `ExperimentConfig` (a preset with the flags' overrides, `sagan_tf.presets.config_for_dataset`) +
`train_lib.TrainOptions` -> `train_lib.run`. With no flags it trains the `synthetic32` preset on the embedded
synthetic dataset into ./runs/synthetic32. Rerunning a command resumes from the latest checkpoint in its
--model_dir (exactly: the same weights as without the interruption, on CPU, for the synthetic and folder datasets;
a damaged latest checkpoint is skipped with a warning for the one before it); SIGTERM or Ctrl-C stops after the
current step with a checkpoint saved (exit status 128 + signal number); under --strategy=multi_worker a signal to any
worker stops every worker after the same step with that step's checkpoint (exit status 143 on the others), and a
lost worker ends the others with one paragraph naming it and the checkpoint to resume from, exit status 138, which
schedulers retry (training/worker_faults.py; every status and what schedulers do with it: README.md, Exit statuses).
Bad input ends with a one-paragraph error and exit status 2, and so does a step whose loss or weights are no longer
finite (unless --on_nonfinite=rollback): no checkpoint with a NaN is ever written. So do a second run into a
--model_dir that a live run trains (refused before it writes anything, naming the holder of
<model_dir>/training.lock; a lock whose process is gone is taken over with a warning, and one of another host or
container is waited for until it is stale, 3 minutes without a refresh, see sagan_tf/run_lock.py) and a
checkpoint, sample grid or record the filesystem refuses (full, read-only, no permission: the message names the
file, the cause and the last good checkpoint, and no partial file is left).

Each progress line shows the losses, the mean discriminator logits on real and fake images, the gradient norm and
the largest spectral-norm estimate of each network ("grad D/G", "sn D/G"), the attention gammas, images/s and the
ETA; a warning says what to try when they show a known failure pattern (see sagan_tf/health.py).

FID, IS, KID, precision, recall, density and coverage of the sampling (EMA) generator (`--eval_samples` images,
default 2000) are computed at the start and the end of training, and every `--eval_every` steps if that is > 0, and
logged (TensorBoard tags eval/<classifier tag>/fid, ..., e.g. eval/domain-1a2b3c4d/fid, and the provenance as the
text eval/<classifier tag>/provenance); the run ends with a line such as
"FID 251.3 -> 40.2, IS 1.31 -> 3.12, ... (evaluation 30 s of 640 s)". The classifier is the shipped domain
classifier for the synthetic dataset and TF-GAN's Inception (TF-Hub) for the others; --classifier=domain uses a
small classifier trained on the dataset's own images instead (trained once per dataset and image size, then cached:
works offline on any dataset). If the classifier cannot be loaded and evaluation was not asked for explicitly
(--eval_every > 0 or --classifier), training goes on with a warning; --eval_samples=0 turns evaluation off. With
evaluation during training the checkpoint with the best FID (--best_metric) is kept in <model_dir>/checkpoints/best/
(`--checkpoint=best` of evaluate, visualize and export.run). For reportable figures evaluate a checkpoint with
`python -m training.evaluate`.

    python -m training.run                                    # about 9 minutes on 2 CPU cores
    python -m training.run --eval_every=500                   # every figure every 500 steps too
    python -m training.run --dataset=cifar10 --train_steps=100000
    python -m training.run --dataset=folder:/data/faces --image_size=64
    python -m training.run --dataset=folder:/data/icons --image_size=32 --classifier=domain    # offline figures
    python -m training.run --dataset=folder:/data/icons --image_size=32 --augment=diffaugment  # a few hundred images
    tensorboard --logdir runs
"""


import shlex
import sys

from absl import flags

from sagan_tf import cli
from sagan_tf.errors import WorkerLostError

_TRAINING_OVERRIDES = ("train_steps", "batch_size", "g_lr", "d_lr", "beta1", "beta2", "d_steps", "grad_accumulation",
                       "ema_start", "augment", "augment_policy", "ada_target", "ada_kimg", "lecam_weight",
                       "orthogonal_reg", "fake_labels")
#: Flags that only mean something with one of the --augment values: {flag: the values it applies to}.
_AUGMENT_FLAGS = {"augment_policy": ("diffaugment", "ada"), "ada_target": ("ada",), "ada_kimg": ("ada",)}


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    from training import distribute, train_lib

    flags.DEFINE_string("dataset", "synthetic", "synthetic, cifar10, celeb_a, imagenet2012, lsun/<category> or "
                        "folder:<path> (one subfolder per class, or none).", flag_values=flag_values)
    flags.DEFINE_string("preset", None, "Model preset (synthetic32, cifar32, dcgan64, imagenet128). Default: chosen "
                        "from the dataset (folders: from --image_size, 32/64/128).", flag_values=flag_values)
    flags.DEFINE_string("model_dir", None, "Run directory (config.json, checkpoints/, samples/, TensorBoard events). "
                        "Default: runs/<preset> for the preset's own dataset, else runs/<preset>-<dataset>.",
                        flag_values=flag_values)
    flags.DEFINE_integer("train_steps", None, "Generator updates to train to. Default: the preset's.",
                         flag_values=flag_values)
    flags.DEFINE_integer("batch_size", None, "Global batch size (all replicas together). Default: the preset's.",
                         flag_values=flag_values)
    flags.DEFINE_integer("image_size", None, "Image size; must be the one the preset's architecture makes.",
                         flag_values=flag_values)
    flags.DEFINE_float("g_lr", None, "Generator Adam learning rate. Default: the preset's.", flag_values=flag_values)
    flags.DEFINE_float("d_lr", None, "Discriminator Adam learning rate. Default: the preset's.",
                       flag_values=flag_values)
    flags.DEFINE_float("beta1", None, "Adam beta1. Default: the preset's.", flag_values=flag_values)
    flags.DEFINE_float("beta2", None, "Adam beta2. Default: the preset's.", flag_values=flag_values)
    flags.DEFINE_integer("d_steps", None, "Discriminator updates per generator update. Default: the preset's.",
                         flag_values=flag_values)
    flags.DEFINE_integer("grad_accumulation", None, "Micro-batches per update (1: none): every D and G update sums "
                         "the gradients of this many micro-batches of batch_size / N per replica before one optimizer "
                         "update, so large batches fit in little memory. Must divide the per-replica batch. "
                         "Default: the preset's (1).", flag_values=flag_values)
    flags.DEFINE_string("ema_decay", None, "Decay of the generator's moving average, or 'none'. Default: the "
                        "preset's.", flag_values=flag_values)
    flags.DEFINE_integer("ema_start", None, "Step from which the moving average averages; until then it copies the "
                         "generator, so early samples show what it has learned. Default: the preset's (0 for "
                         "synthetic32, 1000 for cifar32 and dcgan64, 2000 for imagenet128).", flag_values=flag_values)
    flags.DEFINE_string("augment", None, "Augmentation of every image the discriminator sees, real and generated, "
                        "for small datasets: none (the paper's recipe), diffaugment (DiffAugment, Zhao et al. 2020: "
                        "--augment_policy's differentiable ops on every image) or ada (the same ops, each applied to "
                        "each image with an adaptive probability p, Karras et al. 2020). Default: none.",
                        flag_values=flag_values)
    flags.DEFINE_string("augment_policy", None, "The augmentation ops, a comma-separated subset of color, translation "
                        "and cutout, applied in that order. Default: color,translation,cutout.",
                        flag_values=flag_values)
    flags.DEFINE_float("ada_target", None, "The value in (0, 1) of ADA's overfitting heuristic r_t = E[sign(D(real))] "
                       "that p is steered toward (every 4 steps). Default: 0.6, the paper's.", flag_values=flag_values)
    flags.DEFINE_float("ada_kimg", None, "Thousands of real images in which ADA's p can go from 0 to 1. Default: 500, "
                       "the paper's (p then moves at most 0.1 in 50,000 images; lower it for short runs).",
                       flag_values=flag_values)
    flags.DEFINE_float("lecam_weight", None, "Weight of the LeCam regularizer of the discriminator (Tseng et al. "
                       "2021; 0.3 there for BigGAN on CIFAR-10), with moving anchors of its outputs on real and "
                       "generated images (decay 0.99). Default: 0 (off).", flag_values=flag_values)
    flags.DEFINE_float("orthogonal_reg", None, "Beta of BigGAN's orthogonal regularization of the generator's weights "
                       "(Brock et al. 2019, sec. 3.1: 1e-4), which lets truncation trade variety for fidelity. "
                       "Default: 0 (off).", flag_values=flag_values)
    flags.DEFINE_string("fake_labels", None, "How fake labels are drawn: uniform (the paper) or data (with the "
                        "training data's class frequencies; folder and synthetic datasets). Default: uniform.",
                        flag_values=flag_values)
    flags.DEFINE_enum("strategy", "auto", distribute.STRATEGIES, "auto: all GPUs if any, else one device; mirrored: "
                      "all GPUs (or all logical CPUs); multi_worker: from TF_CONFIG; tpu: see --tpu; off: one "
                      "device.", flag_values=flag_values)
    flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for --strategy=tpu ('' = this TPU VM).",
                        flag_values=flag_values)
    flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into this many logical devices (try --strategy=mirrored "
                         "without GPUs).", flag_values=flag_values)
    flags.DEFINE_enum("mixed_precision", "float32", train_lib.PRECISIONS, "Compute precision.",
                      flag_values=flag_values)
    flags.DEFINE_bool("jit_compile", None, "XLA-compile the train step (--nojit_compile: not). Default: on with GPUs "
                      "(per replica under --strategy=mirrored or multi_worker), off on CPU, where it is slower.",
                      flag_values=flag_values)
    flags.DEFINE_integer("steps_per_execution", 1, "Train steps per call of the train function: fewer host round "
                         "trips where a step takes milliseconds (GPUs, TPUs). --log_every, --sample_every, "
                         "--checkpoint_every and --eval_every must be multiples of it.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("sync_batch_norm", None, "Synchronized batch norm: the generator's batch statistics over the "
                      "global batch of all replicas instead of each replica's own (the official code normalizes per "
                      "tower). With several replicas the train step then runs without XLA (its statistics are "
                      "all-reduced inside the forward pass, which per-replica XLA cannot do), and --jit_compile with "
                      "it is refused. Default: the preset's (off).",
                      flag_values=flag_values)
    flags.DEFINE_integer("sample_every", 500, "Steps between sample grids (0: only at the end).",
                         flag_values=flag_values)
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints (0: only at the end).",
                         flag_values=flag_values)
    flags.DEFINE_integer("log_every", 100, "Steps between progress lines.", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, noise, data order and sample-grid latents.",
                         flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).",
                        flag_values=flag_values)
    flags.DEFINE_integer("eval_every", 0, "Steps between FID/IS evaluations (0: only at the start and the end of "
                         "training). Evaluation runs on the chief with the sampling (EMA) generator.",
                         flag_values=flag_values)
    flags.DEFINE_integer("eval_samples", 2000, "Generated images per evaluation during training (0: no evaluation). "
                         "For figures comparable to the paper's use training.evaluate --protocol=paper.",
                         flag_values=flag_values)
    flags.DEFINE_string("classifier", None, "Classifier for FID/IS: 'domain' (a small classifier of this dataset, "
                        "trained once per dataset and image size and cached; works offline), 'synthetic', "
                        "'inception', a TF-Hub handle, a SavedModel directory or a .keras file. Default: 'synthetic' "
                        "for the synthetic dataset, else 'inception' (needs network access to TF-Hub or a local copy; "
                        "see training.evaluate).", flag_values=flag_values)
    flags.DEFINE_bool("kid", True, "Also compute the Kernel Inception Distance at each evaluation (--nokid: not).",
                      flag_values=flag_values)
    flags.DEFINE_bool("precision_recall", True, "Also compute precision, recall, density and coverage (k-NN, k=3) at "
                      "each evaluation (--noprecision_recall: not).", flag_values=flag_values)
    flags.DEFINE_string("best_metric", "fid", "Evaluation figure that chooses the best checkpoint, kept in "
                        "<model_dir>/checkpoints/best/ apart from the rotating ones: fid or kid (lower is better), "
                        "inception_score, precision, recall, density or coverage (higher; kid needs --kid, the last "
                        "four --precision_recall).",
                        flag_values=flag_values)
    flags.DEFINE_enum("on_nonfinite", "stop", train_lib.NONFINITE_ACTIONS, "When a step makes a loss or a weight "
                      "NaN or infinite: stop (exit naming the step and the last good checkpoint) or rollback (restore "
                      "the last good checkpoint and continue with fresh noise, up to --max_rollbacks times). No "
                      "checkpoint with a non-finite value is written either way.", flag_values=flag_values)
    flags.DEFINE_integer("max_rollbacks", 3, "Rollbacks allowed with --on_nonfinite=rollback.", lower_bound=0,
                         flag_values=flag_values)


def parse_ema_decay(text):
    """A decay in (0, 1) from the --ema_decay text, or None for "none"."""
    from sagan_tf.errors import ConfigError

    if str(text).strip().lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"ema_decay must be a number in (0, 1) or 'none'. Received: ema_decay={text!r}") from None


def evaluation_config(values):
    """The `EvalConfig` of training-time evaluation that the flag values ask for, or None (--eval_samples=0).

    Raises:
      UsageError: evaluation asked for (--eval_every > 0 or --classifier) with --eval_samples=0, or 1 sample.
    """
    from sagan_tf.errors import UsageError
    from sagan_tf.evaluation import EvalConfig

    if values.eval_samples == 0:
        if values.eval_every > 0 or values.classifier:
            raise UsageError("Evaluation was asked for (--eval_every > 0 or --classifier) but --eval_samples is 0; "
                             "pass --eval_samples >= 2. Received: "
                             f"eval_every={values.eval_every}, classifier={values.classifier!r}, eval_samples=0")
        return None
    if values.eval_samples < 2:
        raise UsageError("--eval_samples must be 0 (no evaluation) or >= 2. "
                         f"Received: eval_samples={values.eval_samples}")
    return EvalConfig(num_samples=values.eval_samples, classifier=values.classifier or None,
                      compute_kid=values.kid, compute_precision_recall=values.precision_recall, seed=values.seed)


def check_augment_flags(overrides):
    """Refuses an augmentation flag that the --augment value given (or its default, none) would ignore.

    Raises:
      UsageError: naming the flag and the --augment values it applies to.
    """
    from sagan_tf.errors import UsageError

    mode = overrides.get("augment", "none")
    for name, modes in _AUGMENT_FLAGS.items():
        if name in overrides and mode not in modes:
            raise UsageError(f"--{name} applies to --augment={' or '.join(modes)} only, and this run's --augment is "
                             f"{mode}: it would have no effect. Pass --augment={modes[-1]} too, or drop --{name}. "
                             f"Received: {name}={overrides[name]!r}, augment={mode!r}")


def config_and_options(values):
    """The `ExperimentConfig` and `TrainOptions` that the flag values ask for."""
    from sagan_tf import presets, run_dir
    from training import train_lib

    overrides = {name: getattr(values, name) for name in _TRAINING_OVERRIDES if getattr(values, name) is not None}
    check_augment_flags(overrides)
    if values.ema_decay is not None:
        overrides["ema_decay"] = parse_ema_decay(values.ema_decay)
    if values.sync_batch_norm is not None:
        overrides["synchronized_batch_norm"] = values.sync_batch_norm
    config = presets.config_for_dataset(values.dataset, values.preset, values.image_size, values.data_dir,
                                        **overrides)
    options = train_lib.TrainOptions(
        model_dir=values.model_dir or run_dir.default_model_dir(config, values.dataset),
        data_dir=values.data_dir, strategy=values.strategy, tpu=values.tpu, cpu_devices=values.cpu_devices,
        mixed_precision=values.mixed_precision, jit_compile=values.jit_compile,
        steps_per_execution=values.steps_per_execution, sample_every=values.sample_every,
        checkpoint_every=values.checkpoint_every, log_every=values.log_every, seed=values.seed,
        evaluation=evaluation_config(values), eval_every=values.eval_every, best_metric=values.best_metric,
        on_nonfinite=values.on_nonfinite, max_rollbacks=values.max_rollbacks)
    return config, options


@cli.main_wrapper
def main(argv, values=None):
    from training import train_lib

    config, options = config_and_options(flags.FLAGS if values is None else values)
    try:
        result = train_lib.run(config, options)
    except WorkerLostError as error:
        command = shlex.join(["python", "-m", "training.run", *sys.argv[1:]])
        raise WorkerLostError(f"{error} This worker's command: {command}", error.lost_tasks,
                              error.last_checkpoint) from None
    if result.stopped_by_signal:
        return 128 + result.stopped_by_signal
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
