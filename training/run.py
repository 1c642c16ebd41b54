r"""Trains SAGAN: `python -m training.run [--dataset=synthetic] [--preset=...] [--model_dir=...] ...`.

Flags -> `ExperimentConfig` (a preset with the flags' overrides, `sagan_tf.config.presets.config_for_dataset`) +
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
container is waited for until it is stale, 3 minutes without a refresh, see sagan_tf/run/run_lock.py) and a
checkpoint, sample grid or record the filesystem refuses (full, read-only, no permission: the message names the
file, the cause and the last good checkpoint, and no partial file is left).

Each progress line shows the losses, the mean discriminator logits on real and fake images, the gradient norm and
the largest spectral-norm estimate of each network ("grad D/G", "sn D/G"), the attention gammas, images/s and the
ETA; a warning says what to try when they show a known failure pattern (see sagan_tf/callbacks/health.py), or when a
conditional run's class accuracy stays near chance while its FID improves.

FID, IS, KID, precision, recall, density, coverage (and, for a conditional run whose classifier knows the dataset's
classes, the class accuracy beside chance) of the sampling (EMA) generator (`--eval_samples` images,
default 2000) are computed at the start and the end of training, and every `--eval_every` steps if that is > 0, and
logged (TensorBoard tags eval/<classifier tag>/fid, ..., e.g. eval/domain-1a2b3c4d/fid, and the provenance as the
text eval/<classifier tag>/provenance); the run ends with one line of the first and the last figures and the time
(README.md, Training: what the default run prints, and how long it takes). The classifier is the shipped domain
classifier for the synthetic dataset and TF-GAN's Inception (TF-Hub) for the others; --classifier=domain uses a
small classifier trained on the dataset's own images instead (trained once per dataset and image size, then cached:
works offline on any dataset). If the classifier cannot be loaded and evaluation was not asked for explicitly
(--eval_every > 0 or --classifier), training goes on with a warning; --eval_samples=0 turns evaluation off. Whenever
the run evaluates (the default included) the checkpoint with the best FID (--best_metric) is kept in
<model_dir>/checkpoints/best/ (`--checkpoint=best` of evaluate, visualize and export.run). For reportable figures
evaluate a checkpoint with `python -m training.evaluate`.

    python -m training.run                                    # the default run (README.md, Training)
    python -m training.run --eval_every=500                   # every figure every 500 steps too
    python -m training.run --dataset=cifar10 --train_steps=100000
    python -m training.run --dataset=folder:/data/faces --image_size=64
    python -m training.run --dataset=folder:/data/icons --image_size=32 --classifier=domain    # offline figures
    python -m training.run --dataset=folder:/data/icons --image_size=32 --augment=diffaugment \
        --model_dir=runs/icons-diffaugment                    # a few hundred images; a directory of its own
    tensorboard --logdir runs
"""


import shlex
import sys
import typing

from absl import flags

from sagan_tf import cli
from sagan_tf.errors import WorkerLostError

#: Flags that only mean something with one of the --augment values: {flag: the values it applies to}.
_AUGMENT_FLAGS = {"augment_policy": ("diffaugment", "ada"), "ada_target": ("ada",), "ada_kimg": ("ada",)}


def _setting_classes():
    """[(class, whether a preset gives the default)] whose `setting` fields are this command's flags: the model's and
    training's (default: the preset's), then how training runs (`train_lib.TrainOptions`)."""
    from sagan_tf.config import ModelConfig, TrainingConfig
    from training import train_lib

    return [(ModelConfig, True), (TrainingConfig, True), (train_lib.TrainOptions, False)]


def define_setting_flags(config_class, from_preset, flag_values):
    """Defines a flag for each `sagan_tf.config.setting` field of `config_class`: its name (or the setting's `name`),
    its type and help, and its default (None when `from_preset`: the preset's, said in the help)."""
    from sagan_tf.config import settings

    for field in settings(config_class):
        meta = field.metadata
        name, text = meta.get("name", field.name), meta["help"]
        default = None if from_preset else field.default
        if from_preset:
            text += " Default: the preset's."
        kind = meta.get("type") or next(t for t in (*typing.get_args(field.type), field.type) if t is not type(None))
        if "choices" in meta:
            flags.DEFINE_enum(name, default, meta["choices"], text, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(name, default, text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(name, default, text, lower_bound=meta.get("lower_bound"), flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(name, default, text, lower_bound=meta.get("lower_bound"), flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, text, flag_values=flag_values)


def setting_values(config_class, values, given_only=False):
    """{field name: flag value} of `config_class`'s `setting` fields (only the flags given, with `given_only`)."""
    from sagan_tf.config import settings

    found = {field.name: values[field.metadata.get("name", field.name)].value for field in settings(config_class)}
    return {name: value for name, value in found.items() if value is not None or not given_only}


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program): the dataset
    and preset, a flag per setting of the model, training and run (`sagan_tf.config.setting`), and evaluation's."""
    flags.DEFINE_string("dataset", "synthetic", "synthetic, cifar10, celeb_a, imagenet2012, lsun/<category> or "
                        "folder:<path> (one subfolder per class, or none).", flag_values=flag_values)
    flags.DEFINE_string("preset", None, "Model preset (synthetic32, cifar32, dcgan64, imagenet128). Default: chosen "
                        "from the dataset (folders: from --image_size, 32/64/128).", flag_values=flag_values)
    flags.DEFINE_integer("image_size", None, "Image size; must be the one the preset's architecture makes.",
                         flag_values=flag_values)
    for config_class, from_preset in _setting_classes():
        define_setting_flags(config_class, from_preset, flag_values)
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


def evaluation_config(values):
    """The `EvalConfig` of training-time evaluation that the flag values ask for, or None (--eval_samples=0).

    Raises:
      UsageError: evaluation asked for (--eval_every > 0 or --classifier) with --eval_samples=0, or 1 sample.
    """
    from sagan_tf.errors import UsageError
    from sagan_tf.evaluation.evaluator import EvalConfig

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
    from sagan_tf.config import presets
    from sagan_tf.run import run_dir
    from training import train_lib

    overrides, chosen = {}, {}  # the config's fields given on the command line; every option of the run
    for config_class, from_preset in _setting_classes():
        if from_preset:
            overrides.update(setting_values(config_class, values, given_only=True))
        else:
            chosen.update(setting_values(config_class, values))
    check_augment_flags(overrides)
    config = presets.config_for_dataset(values.dataset, values.preset, values.image_size, values.data_dir,
                                        **overrides)
    chosen["model_dir"] = chosen["model_dir"] or run_dir.default_model_dir(config, values.dataset)
    options = train_lib.TrainOptions(**chosen, evaluation=evaluation_config(values))
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
