"""Training a SAGAN model: `run(config, options)` (used by `python -m training.run`).

The run directory (`sagan_tf.run.run_dir`) holds everything a run writes and needs to resume: config.json (the
`ExperimentConfig`; resuming with an incompatible one is refused), class_names.json, checkpoints/
(`checkpoint.gan_checkpoint`, saved and restored by `sagan_tf.run.checkpoint_store`), samples/step_*.png (grids of
fixed latents from the sampling (EMA) generator) and TensorBoard events (losses, health signals, attention gammas,
throughput, sample grids, eval/<classifier tag>/fid ...).

The step is the generator optimizer's update count. Rerunning into the same `model_dir` restores the latest
checkpoint and trains on to `config.training.train_steps`. One run at a time writes into a `model_dir`: the chief
holds its lock (`sagan_tf.run.run_lock`) while it trains, and a second run is refused naming the holder. A checkpoint,
sample grid or record the filesystem refuses to write (full, read-only, no permission) ends the run with a
`WriteFailedError` naming the file, the cause and the last good checkpoint (`sagan_tf.run.write_failures`).

Exact resume: a checkpoint holds every variable of the networks, the EMA generator, both optimizers and the noise
RNG (with augmentation, ADA or LeCam on, also the augmentation RNG, ADA's p and statistics and the LeCam anchors),
and the synthetic and folder input pipelines are position-addressable (`DatasetInfo.positionable`): a run that
starts at step s starts each input pipeline at the example it would have reached after s steps. On CPU, a
run interrupted at any checkpoint (SIGTERM, or SIGKILL after the checkpoint) and resumed therefore ends with
bit-identical weights, optimizer state and EMA to the uninterrupted run with the same seed, and under tf.distribute
each replica resumes with the same data and noise. What this cannot cover: TFDS pipelines (shuffle buffers and
file interleaving have no cheap position; a run resumed at step s reads a stream reseeded with a hash of
(seed, s): fresh data, not a replay), mixed_float16 runs whose loss scaling skipped an update (the skipped step read
a batch but did not count, so the resumed stream starts that many batches early), and kernels that are not
deterministic themselves (some GPU reductions and convolutions; `tf.config.experimental.enable_op_determinism()`
before training trades speed for repeatable GPU steps).
"""

import dataclasses
import hashlib
import time
from typing import Any, Optional

import keras
import tensorflow as tf
from absl import logging

from sagan_tf import callbacks, data
from sagan_tf.callbacks import health
from sagan_tf.run import checkpoint, run_lock, write_failures
from sagan_tf.evaluation.classifiers import cache as classifier_cache
from sagan_tf.config import ExperimentConfig, setting
from sagan_tf.errors import (CheckpointError, CheckpointUnavailableError, ClassifierUnavailableError, ConfigError,
                             TrainingDivergedError, UsageError)
from sagan_tf.evaluation.evaluator import EvalConfig, Evaluator
from sagan_tf.models import build_sagan, check_replica_settings
from sagan_tf.run.checkpoint_store import CheckpointStore, checkpoint_step
from sagan_tf.run.run_dir import RunDirectory
from training import distribute, worker_faults

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: What a training step with a non-finite loss or weight does (`TrainOptions.on_nonfinite`).
NONFINITE_ACTIONS = ("stop", "rollback")


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How to run training (what is trained, and with which hyperparameters, is the `ExperimentConfig`).

    The options that a command line sets are declared with `sagan_tf.config.setting`: each one's help says what it
    does (`training/run.py` makes their flags). The others:

    Attributes:
      keep_checkpoints: checkpoints kept in checkpoints/.
      samples_per_class: images per row of the sample grid.
      handle_signals: on SIGTERM/SIGINT, stop after the current step and save a checkpoint.
      evaluation: how to evaluate FID/IS (/KID) of the sampling generator on the chief (an `EvalConfig`),
        at the start of training, every `eval_every` steps and at the end; None: no evaluation.

    Evaluation counts as asked for when `eval_every` > 0 or the evaluation names a classifier: then an unavailable
    classifier is a `UsageError` before training starts. Otherwise (the default evaluation at start and end) training
    goes on without evaluation and a warning says how to enable it.
    """

    model_dir: Optional[str] = setting(
        None, "Run directory (config.json, checkpoints/, samples/, TensorBoard events; any tf.io.gfile path). Default: "
        "runs/<preset> for the preset's own dataset, else runs/<preset>-<dataset> (sagan_tf.run.run_dir).")
    data_dir: Optional[str] = setting(None, "TFDS data directory (also the base of relative folder: paths).")
    strategy: str = setting(
        "auto", "auto: all GPUs if any, else one device; mirrored: all GPUs (or all logical CPUs); multi_worker: from "
        "TF_CONFIG; tpu: see --tpu; off: one device (training.distribute.get_distribution_strategy).",
        choices=distribute.STRATEGIES)
    tpu: str = setting("", "TPU name or grpc:// address for --strategy=tpu ('' = this TPU VM).")
    cpu_devices: int = setting(1, "Split the CPU into this many logical devices first (try --strategy=mirrored "
                               "without GPUs); 1 leaves the devices alone.")
    mixed_precision: str = setting("float32", "Compute precision: float32, mixed_bfloat16 or mixed_float16 (with "
                                   "dynamic loss scaling).", choices=PRECISIONS)
    jit_compile: Optional[bool] = setting(
        None, "XLA-compile the train step (--nojit_compile: not). Default: on with GPUs (per replica under "
        "--strategy=mirrored or multi_worker, where Keras would turn it off), off on CPU, where it is slower "
        "(sagan_tf.models.gan.default_jit_compile).")
    steps_per_execution: int = setting(
        1, "Train steps per call of the train function: fewer host round trips where a step takes milliseconds "
        "(GPUs, TPUs); the last train_steps % N steps of a run run one per call. --log_every, --sample_every, "
        "--checkpoint_every and --eval_every must be multiples of it.", lower_bound=1)
    sample_every: int = setting(500, "Steps between sample grids (0: only at the end).")
    checkpoint_every: int = setting(500, "Steps between checkpoints (0: only at the end).")
    log_every: int = setting(100, "Steps between progress lines.")
    keep_checkpoints: int = 3
    seed: int = setting(0, "Seed of initialisation, noise, data order and sample-grid latents.")
    samples_per_class: int = 8
    handle_signals: bool = True
    evaluation: Optional[EvalConfig] = None
    eval_every: int = setting(0, "Steps between FID/IS evaluations (0: only at the start and the end of training). "
                              "Evaluation runs on the chief with the sampling (EMA) generator.")
    best_metric: str = setting(
        "fid", "Evaluation figure that chooses the best checkpoint, kept in <model_dir>/checkpoints/best/ apart from "
        "the rotating ones: fid or kid (lower is better), inception_score, precision, recall, density, coverage, "
        "class_accuracy or class_accuracy_top5 (higher; kid needs --kid, precision to coverage --precision_recall, "
        "the class accuracies a class-conditional run and a classifier of the dataset's classes).")
    on_nonfinite: str = setting(
        "stop", "When a step makes a loss or a weight NaN or infinite: stop (exit naming the step and the last good "
        "checkpoint) or rollback (restore the last good checkpoint and continue with fresh noise, up to "
        "--max_rollbacks times). No checkpoint with a non-finite value is written either way.",
        choices=NONFINITE_ACTIONS)
    max_rollbacks: int = setting(3, "Rollbacks allowed with --on_nonfinite=rollback.", lower_bound=0)

    @property
    def evaluation_requested(self):
        """Whether the user explicitly asked for evaluation (`eval_every` > 0 or a classifier named)."""
        return self.eval_every > 0 or (self.evaluation is not None and bool(self.evaluation.classifier))

    def validate(self):
        """Checks the options.

        Raises:
          UsageError: naming the option and its value.
        """
        def fail(message):
            raise UsageError(f"Invalid training options: {message}")

        if not self.model_dir:
            fail(f"model_dir must be a directory path. Received: model_dir={self.model_dir!r}")
        in_the_way = RunDirectory(self.model_dir).file_in_the_way()
        if in_the_way is not None:
            fail(f"model_dir must be a directory, but {in_the_way} is a file. Received: model_dir={self.model_dir!r}. "
                 "Pass a directory (a new one starts a run, an existing run directory resumes it).")
        if self.strategy not in distribute.STRATEGIES:
            fail(f"strategy must be one of {', '.join(distribute.STRATEGIES)}. Received: strategy={self.strategy!r}")
        if self.mixed_precision not in PRECISIONS:
            fail(f"mixed_precision must be one of {', '.join(PRECISIONS)}. "
                 f"Received: mixed_precision={self.mixed_precision!r}")
        for name in ("sample_every", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                fail(f"{name} must be >= 0 (0: only at the end of training). Received: {name}={getattr(self, name)}")
        for name in ("log_every", "keep_checkpoints", "samples_per_class", "cpu_devices", "steps_per_execution"):
            if getattr(self, name) < 1:
                fail(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        for name in ("log_every", "sample_every", "checkpoint_every", "eval_every"):
            period = getattr(self, name)
            if period % self.steps_per_execution:
                fail(f"{name}={period} is not a multiple of steps_per_execution={self.steps_per_execution}: the "
                     f"callbacks act between executions of {self.steps_per_execution} steps, so it would act at "
                     f"step {-(-period // self.steps_per_execution) * self.steps_per_execution} instead. Use a "
                     "multiple, or another steps_per_execution.")
        if not 0 <= self.seed < 2**31:
            fail(f"seed must be an integer in [0, 2**31). Received: seed={self.seed}")
        if self.evaluation is not None and not isinstance(self.evaluation, EvalConfig):
            fail(f"evaluation must be an evaluation.EvalConfig or None. Received: evaluation={self.evaluation!r}")
        if self.on_nonfinite not in NONFINITE_ACTIONS:
            fail(f"on_nonfinite must be one of {', '.join(NONFINITE_ACTIONS)}. Received: "
                 f"on_nonfinite={self.on_nonfinite!r}")
        if self.max_rollbacks < 0:
            fail(f"max_rollbacks must be >= 0. Received: max_rollbacks={self.max_rollbacks}")
        try:
            callbacks.parse_best_metric(self.best_metric, self.evaluation)
        except ValueError as error:
            fail(str(error))
        if self.evaluation is None and self.eval_every > 0:
            fail(f"eval_every={self.eval_every} asks for evaluation during training, but evaluation is off (no "
                 "EvalConfig; --eval_samples=0). Set eval_samples > 0, or eval_every to 0.")


def check_replica_options(config, options, strategy):
    """Refuses what the strategy's replica count rules out for this config and these options: a global batch the
    replicas do not share evenly, a per-replica batch that gradient accumulation does not split, and the
    combinations the model cannot compile (`sagan_tf.models.check_replica_settings`). The one place of the checks
    that need the strategy; `Trainer` runs it before it writes anything but the run directory's lock.

    Raises:
      UsageError: naming the flags and what to change.
    """
    replicas = strategy.num_replicas_in_sync
    batch_size = config.training.batch_size
    if batch_size % replicas:
        suggestion = (batch_size // replicas + 1) * replicas
        raise UsageError(
            f"The global batch size {batch_size} does not split evenly over the {replicas} replicas of strategy "
            f"{options.strategy!r}; use a multiple of {replicas} (e.g. --batch_size={suggestion}) or fewer devices.")
    accumulation = config.training.grad_accumulation
    if (batch_size // replicas) % accumulation:
        raise UsageError(
            f"--grad_accumulation={accumulation} splits each replica's batch into {accumulation} equal "
            f"micro-batches, but the global batch size {batch_size} gives {batch_size // replicas} per replica "
            f"on the {replicas} replica(s) of strategy {options.strategy!r}; use a batch size that is a multiple "
            f"of {replicas * accumulation} or another --grad_accumulation.")
    per_replica_xla = distribute.describe(strategy) != "TPUStrategy"  # a TPU compiles the whole step
    check_replica_settings(replicas, config.model.synchronized_batch_norm, accumulation,
                           explicit_replica_jit=bool(options.jit_compile) and per_replica_xla)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What `run` did.

    Attributes:
      step: the training step reached.
      logs: the last progress values (losses, gammas, throughput); empty if nothing was trained.
      model_dir: the run's directory.
      checkpoint: path of the latest checkpoint, or None.
      sample_grid: path of the last PNG grid written by this run, or None.
      stopped_by_signal: the signal number that stopped training early, or None.
      model: the trained `SAGAN` (its `sampling_generator` is what to sample from).
      evaluations: {step: figures} of this run's evaluations: "fid", "inception_score", "kid", "precision", "recall",
        "density", "coverage" (those computed), "num_samples", "seconds" and their "provenance".
      eval_seconds: wall time spent evaluating (classifier loading and real statistics included).
      seconds: wall time of the whole run (setup, training and evaluation).
      best_checkpoint: path of the best evaluated checkpoint (checkpoints/best/), or None.
      rollbacks: [(non-finite step, step rolled back to)] of this run (`TrainOptions.on_nonfinite="rollback"`).
      health_warnings: [(step, message)] of the health warnings this run printed (`sagan_tf.callbacks.health`).
    """

    step: int
    logs: dict
    model_dir: str
    checkpoint: Optional[str]
    sample_grid: Optional[str]
    stopped_by_signal: Optional[int]
    model: Any = dataclasses.field(default=None, repr=False, compare=False)
    evaluations: dict = dataclasses.field(default_factory=dict)
    eval_seconds: float = 0.0
    seconds: float = 0.0
    best_checkpoint: Optional[str] = None
    rollbacks: list = dataclasses.field(default_factory=list)
    health_warnings: list = dataclasses.field(default_factory=list)

    def evaluation_summary(self):
        """"FID 123.4 -> 12.3, IS 1.20 -> 3.50 (evaluation 25 s of 620 s)", or None without evaluations."""
        if not self.evaluations:
            return None
        return (f"{callbacks.summarize_evaluations(self.evaluations)} "
                f"(evaluation {self.eval_seconds:.0f} s of {self.seconds:.0f} s)")


def run(config, options):
    """Trains (or resumes training) a SAGAN model to `config.training.train_steps`.

    Args:
      config: an `ExperimentConfig`; its model's `num_classes` must match the dataset (0 trains an unconditional
        model on any).
      options: `TrainOptions`.

    Returns:
      A `RunResult`.

    Raises:
      UsageError: (or its subclasses ConfigError, DatasetError) for bad options, data, batch sizes or an
        incompatible `model_dir`, with a message saying how to fix it.
    """
    return Trainer(config, options).train()


def pipeline_seed(seed, start_step):
    """The input-pipeline seed of a TFDS run starting at `start_step`: `seed` itself at 0, else a hash in
    [0, 2**31) (fresh data after a resume, since a TFDS stream cannot be positioned)."""
    if start_step == 0:
        return seed
    digest = hashlib.sha256(f"sagan_tf:{seed}:{start_step}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def pipeline_position(start_step, images_per_step, input_context=None):
    """The examples one input pipeline delivered in `start_step` steps: where it resumes.

    Each step consumes `images_per_step` images in all; with `num_input_pipelines` pipelines each delivers its
    share (one batch for each of its replicas, in replica order).
    """
    pipelines = 1 if input_context is None else input_context.num_input_pipelines
    return start_step * (images_per_step // pipelines)


def input_fn(config, options, start_step, dataset=None):
    """The `dataset_fn` for `strategy.distribute_datasets_from_function`: batches of d_steps * batch_size images.

    Each train step consumes `d_steps` real batches (see `SAGAN`), so the global batch of the pipeline is
    `config.training.images_per_step`. A run starting at `start_step` reads, on position-addressable datasets,
    exactly the examples an uninterrupted run reads from that step on (see the module docstring). `dataset` is the
    resolved `sagan_tf.data.Dataset` of `config.training.dataset` (None: resolved here), whose folder scan every
    input pipeline reuses.
    """
    training = config.training
    dataset = data.resolve(training.dataset if dataset is None else dataset, options.data_dir)
    positionable = dataset.info.positionable
    seed = options.seed if positionable else pipeline_seed(options.seed, start_step)

    def dataset_fn(input_context):
        position = pipeline_position(start_step, training.images_per_step, input_context) if positionable else 0
        return data.load(dataset, "train", image_size=config.model.image_size, batch_size=training.images_per_step,
                         seed=seed, input_context=input_context, position=position)

    return dataset_fn


def _check_dataset(config, dataset):
    """The dataset's class names, after checking that its class count fits the model."""
    info = dataset.info
    model = config.model
    if model.conditional and model.num_classes != info.num_classes:
        raise ConfigError(
            f"Dataset {config.training.dataset} has {info.num_classes} class(es) but the config is for "
            f"{model.num_classes}; set num_classes={info.num_classes if info.conditional else 0} (0 trains an "
            f"unconditional model). Received: num_classes={model.num_classes}")
    return info.class_names


def fake_label_frequencies(config, dataset):
    """The class frequencies that `fake_labels="data"` draws fake labels with, or None (uniform labels).

    Raises:
      ConfigError: "data" for an unconditional model, or for a dataset whose class frequencies are not known.
    """
    if config.training.fake_labels != "data":
        return None
    if not config.model.conditional:
        raise ConfigError("fake_labels=data draws the fake labels from the training data's class frequencies, but "
                          f"this model is unconditional (num_classes=0; dataset {config.training.dataset}). Use "
                          "fake_labels=uniform.")
    frequencies = dataset.class_frequencies()
    if frequencies is None:
        raise ConfigError(f"fake_labels=data needs the class frequencies of {config.training.dataset}, which are known "
                          "for folder: and synthetic datasets only (a TFDS dataset would have to be read in full). "
                          "Use fake_labels=uniform.")
    return frequencies


class Trainer:
    """One training run, set up: strategy, run directory, model restored from the latest checkpoint, evaluator,
    summary writer and callbacks.

    `Trainer(config, options)` builds all of it and restores the latest checkpoint (so `trainer.model` and
    `trainer.step` show the state training resumes from); `train()` trains to `train_steps`. `run` is both. The
    mixed-precision policy is set for the model's construction and put back by `train()` (or at once when the
    construction fails). The chief first takes the run directory's lock (`sagan_tf.run.run_lock`: a second run into
    the same directory is refused; a lock of another host or container is waited for until it is stale), before it
    makes its strategy (under multi-worker training: before it joins the cluster), and removes what interrupted
    writes left there; `train()` releases it (and so does a failed construction).
    """

    def __init__(self, config, options):
        if not isinstance(config, ExperimentConfig):
            raise UsageError(f"config must be an ExperimentConfig. Received: config={config!r}")
        if not isinstance(options, TrainOptions):
            raise UsageError(f"options must be TrainOptions. Received: options={options!r}")
        options.validate()
        if keras.backend.backend() != "tensorflow":
            raise UsageError("Training needs Keras's TensorFlow backend; set KERAS_BACKEND=tensorflow. "
                             f"Received: backend {keras.backend.backend()!r}")
        self._start_time = time.perf_counter()
        self.config = config
        self.options = options
        # Resolved once: the input pipelines, the evaluation and the domain-classifier cache share one folder scan.
        self.dataset = data.resolve(config.training.dataset, options.data_dir)
        self.class_names = _check_dataset(config, self.dataset)
        if options.best_metric in ("class_accuracy", "class_accuracy_top5") and not config.model.conditional:
            raise UsageError(f"--best_metric={options.best_metric} measures whether generated images show the class "
                             "they were generated with, and this run is unconditional (num_classes=0, dataset "
                             f"{config.training.dataset}). Choose the best checkpoint by fid (the default) or "
                             "another figure.")
        self.fake_label_frequencies = fake_label_frequencies(config, self.dataset)
        # One writer per run directory: only the chief writes, so only the chief locks (sagan_tf.run.run_lock), and it
        # does before its strategy joins the cluster, so that a chief that cannot have the run never joins it.
        self.chief = distribute.will_be_chief(options.strategy)
        self.run_dir = RunDirectory(options.model_dir)
        self.lock = run_lock.take_run_directory(self.run_dir) if self.chief else None
        self.lock_watch = run_lock.LockWatch(self.lock) if self.lock is not None else None
        try:
            with write_failures.reported_refusals():  # e.g. the TensorBoard writer on a full disk
                self._set_up()
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def _set_up(self):
        """The rest of `__init__`, once the chief holds the run directory's lock."""
        config, options = self.config, self.options
        self.strategy = distribute.get_distribution_strategy(options.strategy, options.tpu, options.cpu_devices)
        # Refused before the run directory holds a config.json that a corrected rerun is checked against.
        check_replica_options(config, options, self.strategy)
        self.run_dir.check_resumable(config)
        if self.chief:
            self.run_dir.write_config(config)
            self._record_class_names()

        self._previous_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(options.mixed_precision)
        try:
            self.model = self._build_model()
            # MultiWorkerMirroredStrategy: every worker takes part in saving; only the chief's copy is kept.
            self.store = CheckpointStore(self.run_dir, checkpoint.gan_checkpoint(self.model),
                                         options.keep_checkpoints,
                                         worker=None if self.chief else distribute.task_id(self.strategy))
            self.step = self._restore()
            self.evaluator = self._build_evaluator()
        except BaseException:
            keras.mixed_precision.set_global_policy(self._previous_policy)
            raise
        self.summary_writer = tf.summary.create_file_writer(self.run_dir.path) if self.chief else None
        self.guard = callbacks.NonFiniteGuard(options.log_every)
        self.stopper = None
        if options.handle_signals:
            # Across workers, a signal to one stops every worker at the same step (worker_faults.CoordinatedStop).
            self.stopper = (worker_faults.CoordinatedStop(self.strategy, print_fn=logging.warning)
                            if distribute.num_workers(self.strategy) > 1 else
                            callbacks.GracefulStop(print_fn=logging.warning))
        quiet = lambda line: None  # noqa: E731
        monitor = health.HealthMonitor(config)
        self.progress = callbacks.ProgressLogger(
            config.training.train_steps, options.log_every, images_per_step=config.training.images_per_step,
            summary_writer=self.summary_writer, print_fn=logging.info if self.chief else quiet,
            health_monitor=monitor, warn_fn=logging.warning if self.chief else quiet)
        self.sampler = None
        if self.chief:
            self.sampler = callbacks.SampleGrid(
                self.run_dir.samples_dir, options.sample_every, latent_dim=config.model.latent_dim,
                num_classes=config.model.num_classes, samples_per_class=options.samples_per_class, seed=options.seed,
                class_names=self.class_names, summary_writer=self.summary_writer)
        self.evaluate = None
        if self.evaluator is not None:
            self.evaluate = callbacks.EvaluateEvery(options.eval_every, self.evaluator, self.summary_writer,
                                                    print_fn=logging.info, health_monitor=monitor,
                                                    warn_fn=logging.warning)
        self.best = None
        if self.evaluate is not None:  # the chief's: it alone evaluates, and it alone writes the best checkpoint
            self.best = callbacks.BestCheckpoint(self.store, self.evaluate, options.best_metric,
                                                 print_fn=logging.info)
        self.checkpointer = callbacks.CheckpointEvery(self.store, options.checkpoint_every)
        if self.restored_checkpoint is not None:
            self.checkpointer.last_step = self.step
        self.rollbacks = []

    def _record_class_names(self):
        """Makes `class_names` the run's recorded class names, recording the dataset's when there are none yet
        (chief, conditional models). Returns whether `class_names` changed.

        A TFDS dataset may learn its label names only when it is prepared (cifar10), so `_train` asks again once
        the input pipeline exists.
        """
        if not self.chief or not self.config.model.conditional:
            return False
        before = self.class_names
        recorded = self.run_dir.read_class_names()
        if recorded is not None:
            self.class_names = recorded
        else:
            if self.class_names is None:
                self.class_names = self.dataset.class_names()
            if self.class_names is not None:
                self.run_dir.write_class_names(self.class_names, self.config.training.dataset)
        return self.class_names != before

    @property
    def callbacks(self):
        """The `fit` callbacks: the lock watch first, so that a run whose lock was taken over writes nothing more; the
        non-finite guard next, so that no other one acts on a diverged state; the best checkpoint after the
        evaluation it reads; checkpointing last so that its end-of-training save sees the final state."""
        return [c for c in (self.lock_watch, self.guard, self.stopper, self.progress, self.sampler, self.evaluate,
                            self.best, self.checkpointer) if c is not None]

    def _build_model(self):
        options = self.options
        keras.utils.set_random_seed(options.seed)
        with self.strategy.scope():
            return build_sagan(self.config, seed=options.seed, model_class=distribute.model_class(self.strategy),
                               class_frequencies=self.fake_label_frequencies,
                               jit_compile="auto" if options.jit_compile is None else options.jit_compile,
                               steps_per_execution=options.steps_per_execution)

    def _restore(self):
        """Restores the checkpoint to resume from, if any; returns the training step.

        That is the newest readable checkpoint of the run directory (`CheckpointStore.restore_newest`): one whose
        files are damaged (truncated, corrupt) is skipped with a warning naming it, and the one before it is tried; a
        passing storage error is retried (`checkpoint.read_checkpoint`) and, when it outlasts the retries, stops the
        run instead of falling back. Across workers, every worker resumes from the chief's choice
        (`_agree_on_checkpoint`). `self.restored_checkpoint` is the path restored (None for a new run).

        Raises:
          CheckpointUnavailableError: storage did not serve the checkpoint to resume from (here or on another
            worker).
          UsageError: every checkpoint is damaged (`DamagedCheckpointError`), or one cannot be read or resumed
            here or on another worker.
        """
        self.restored_checkpoint = None
        candidates = self.store.resume_candidates()
        try:
            path, failure = self.store.restore_newest(self.options.mixed_precision, candidates), None
        except (UsageError, CheckpointUnavailableError) as error:
            path, failure = None, error
        if distribute.num_workers(self.strategy) > 1:
            path = self._agree_on_checkpoint(path, failure, candidates)
        elif failure is not None:
            raise failure
        if path is None:
            return 0
        step = callbacks.global_step(self.model)
        logging.info("Restored %s: step %d.", path, step)
        self.restored_checkpoint = path
        return step

    #: What a worker reports to the others about its restore (`_agree_on_checkpoint`).
    _RESTORED, _UNAVAILABLE, _FAILED = 0, 1, 2

    def _agree_on_checkpoint(self, path, failure, candidates):
        """Makes every worker of a multi-worker run resume from the chief's checkpoint; returns its path (None: a new
        run).

        Each worker has restored the newest checkpoint it could read (`path`) or failed (`failure`); one all-gather
        tells every worker what each one did. If any failed, every worker stops: the one that failed with its own
        error, the others naming it. Otherwise a worker that chose another checkpoint than the chief restores the
        chief's, and a second all-gather (which every worker makes, since each saw the same rows) stops them all if
        one of them cannot. A storage error is then `CheckpointUnavailableError`, anything else `CheckpointError`.
        """
        own_task = distribute.task_name(self.strategy)

        def gather(step, status):
            row = (float(self.chief), float(own_task.startswith("chief")), float(distribute.task_id(self.strategy)),
                   float(-1 if step is None else step), float(status))
            try:
                rows = set(distribute.gather_rows(self.strategy, lambda _: row))
            except tf.errors.OpError as error:
                if not worker_faults.is_lost_worker(error):
                    raise
                raise worker_faults.lost_worker_error(error, own_task, path) from None
            return sorted(rows, key=lambda r: (-r[0], r[2]))  # the chief first

        def stop_if_failed(rows, own_failure):
            failed = [r for r in rows if r[4] != self._RESTORED]
            if not failed:
                return
            if own_failure is not None:
                raise own_failure
            tasks = [f"{'chief' if r[1] else 'worker'} {int(r[2])}" for r in failed]
            message = (f"{' and '.join(tasks)} of this multi-worker run could not read or restore the checkpoint to "
                       f"resume from (its own output says which and why); {own_task} stopped too, so that no worker "
                       "trains from other weights than the others. Relaunch every worker with the same flags and "
                       "TF_CONFIG once it can read it.")
            if any(r[4] == self._UNAVAILABLE for r in failed):
                raise CheckpointUnavailableError(message, tasks=tasks)
            raise CheckpointError(message)

        def status_of(error):
            return self._UNAVAILABLE if isinstance(error, CheckpointUnavailableError) else self._FAILED

        own_step = None if path is None else checkpoint_step(path)
        rows = gather(own_step, self._RESTORED if failure is None else status_of(failure))
        stop_if_failed(rows, failure)
        chief_step = None if rows[0][3] < 0 else int(rows[0][3])
        if all(r[3] == rows[0][3] for r in rows):
            return path
        failure = None
        if own_step != chief_step and chief_step is None:
            failure = CheckpointError(
                f"The chief found no checkpoint to resume from in {self.store.directory}, but {own_task} found "
                f"{path}: the workers do not see the same --model_dir. Every worker must read and write the same "
                "directory (shared storage, e.g. gs://).")
        elif own_step != chief_step:
            logging.warning("The chief resumes from step %d and %s found %s: it resumes from the chief's checkpoint.",
                            chief_step, own_task, path)
            path = dict(candidates).get(chief_step) or self.store.path(chief_step)
            try:
                self.store.restore(path, self.options.mixed_precision)
            except (UsageError, CheckpointUnavailableError) as error:
                failure = error
        stop_if_failed(gather(chief_step, self._RESTORED if failure is None else status_of(failure)), failure)
        return path

    def _build_evaluator(self):
        """The `Evaluator` of the chief, or None (evaluation off, or its classifier unavailable).

        With `--classifier=domain` the dataset's domain classifier is trained first when it is not cached yet
        (`sagan_tf.evaluation.classifiers.ensure_domain_classifier`).
        """
        options, config = self.options, self.config
        if not self.chief or options.evaluation is None or self.step >= config.training.train_steps:
            return None
        image_size = config.model.image_size
        try:
            classifier_cache.ensure_domain_classifier(self.dataset, image_size, options.evaluation,
                                                      print_fn=logging.info)
            evaluator = Evaluator.create(self.dataset, image_size, options.evaluation, print_fn=logging.info)
            self._check_class_accuracy_metric(evaluator)
            return evaluator.with_label_frequencies(self.fake_label_frequencies)
        except ClassifierUnavailableError as error:
            if options.evaluation_requested:
                raise
            logging.warning("Training without FID/IS evaluation. %s To evaluate during training, make the classifier "
                            "available and pass it with --classifier (or set --eval_samples=0 to silence this).",
                            error)
            return None

    def _check_class_accuracy_metric(self, evaluator):
        """Refuses a best metric of class accuracy that the evaluator cannot compute: a classifier whose logits are
        not the dataset's classes, or top-5 with 5 classes or fewer.

        Raises:
          UsageError: naming why.
        """
        metric, num_classes = self.options.best_metric, self.config.model.num_classes
        if metric not in ("class_accuracy", "class_accuracy_top5"):
            return
        to_class_logits, why = evaluator.class_logits(num_classes)
        if to_class_logits is None:
            raise UsageError(f"--best_metric={metric} needs a classifier whose logits are the classes of "
                             f"{self.config.training.dataset}, and {why}. Pass --classifier=domain (trained on the "
                             "dataset's labels) or choose the best checkpoint by another figure.")
        if metric == "class_accuracy_top5" and num_classes <= 5:
            raise UsageError(f"--best_metric=class_accuracy_top5 needs more than 5 classes; this run has "
                             f"{num_classes}. Use --best_metric=class_accuracy.")

    def train(self):
        """Trains from `self.step` to `train_steps`; returns a `RunResult`. Releases the run directory's lock."""
        finished = False
        try:
            # A checkpoint, sample grid or TensorBoard summary the filesystem refuses: one error naming the last good
            # checkpoint.
            with write_failures.reported_refusals(self._last_good_checkpoint):
                result = self._train()
            finished = True
            return result
        finally:
            try:
                keras.mixed_precision.set_global_policy(self._previous_policy)
                if self.summary_writer is not None:
                    with write_failures.reported_refusals(self._last_good_checkpoint, quiet=not finished):
                        self.summary_writer.close()
            finally:
                if self.lock is not None:
                    self.lock.release()

    def _last_good_checkpoint(self):
        """The path of the last checkpoint this run wrote or restored (`write_failures.NO_CHECKPOINT`: none)."""
        saved = self.checkpointer.last_saved_step
        return write_failures.NO_CHECKPOINT if saved is None else self.store.path(saved)

    def _train(self):
        target = self.config.training.train_steps
        if self.step >= target:
            logging.info("Nothing to do: %s is already at step %d of train_steps=%d. Pass a larger --train_steps to "
                         "train further.", self.run_dir.path, self.step, target)
            return self._result(stopped=None)
        devices = distribute.describe_devices()
        logging.info("Training %s from step %d to %d on %d replica(s) (%s on %s, XLA %s); model_dir %s.",
                     self.config.name, self.step, target, self.strategy.num_replicas_in_sync,
                     distribute.describe(self.strategy), devices, self._xla_description(), self.run_dir.path)
        distribute.warn_if_gpu_unused(devices != "CPU", distribute.gpu_software_evidence(), logging.warning)
        if distribute.is_multi_worker(self.strategy):
            # Keras 3.15's fit first reduces one data batch across replicas (`_maybe_symbolic_build`, to build
            # unbuilt models), which MultiWorkerMirroredStrategy cannot do eagerly for an (images, labels) tuple.
            # The SAGAN is fully built: let fit take the strategy from the enclosing scope instead.
            self.model._distribute_strategy = None
        try:
            # Normally one fit call; more when float16 loss scaling skipped updates (the step does not advance) or
            # when a non-finite step was rolled back.
            while self.step < target:
                dataset = self.strategy.distribute_datasets_from_function(
                    input_fn(self.config, self.options, self.step, self.dataset))
                if self._record_class_names() and self.sampler is not None:
                    self.sampler.class_names = self.class_names
                try:
                    with self.strategy.scope():
                        self.model.fit(dataset, epochs=1, steps_per_epoch=self._steps_of_next_fit(target),
                                       callbacks=self.callbacks, verbose=0, shuffle=False)
                except TrainingDivergedError as error:
                    if self.stopper is not None:
                        self.stopper.on_train_end()  # fit ended without it: put the signal handlers back
                    self.step = self._roll_back(error)
                    continue
                previous, self.step = self.step, callbacks.global_step(self.model)
                if self.stopper is not None and self.stopper.signal_received is not None:
                    break
                if self.step == previous:
                    logging.error("No generator update in %d train steps (every float16 update overflowed?); "
                                  "stopping at step %d.", target - previous, self.step)
                    break
        except tf.errors.OpError as error:
            if distribute.num_workers(self.strategy) < 2 or not worker_faults.is_lost_worker(error):
                raise
            saved = self.checkpointer.last_saved_step
            raise worker_faults.lost_worker_error(error, distribute.task_name(self.strategy),
                                                  None if saved is None else self.store.path(saved)) from None
        finally:
            self.store.remove_worker_copies()
        stopped = self.stopper.signal_received if self.stopper is not None else None
        latest = self.store.path(self.checkpointer.last_saved_step)
        if stopped is not None:
            logging.warning("Stopped at step %d; checkpoint %s. Rerun the same command%s to continue.", self.step,
                            latest, " on every worker" if distribute.num_workers(self.strategy) > 1 else "")
        else:
            logging.info("Done: step %d; checkpoint %s.", self.step, latest)
        result = self._result(stopped)
        summary = result.evaluation_summary()
        if summary is not None:
            logging.info(summary)
        return result

    def _steps_of_next_fit(self, target):
        """The steps the next `fit` runs: the remaining ones, in whole executions of `steps_per_execution` steps
        (Keras runs every execution in full); fewer than one execution left are run one step per call."""
        remaining = target - self.step
        per_call = self.options.steps_per_execution
        if remaining >= per_call:
            return remaining - remaining % per_call
        if self.model.steps_per_execution != 1:
            self.model.steps_per_execution = 1
            self.model.make_train_function(force=True)
        return remaining

    def _xla_description(self):
        if getattr(self.model, "replica_jit_compile", False):
            return "on, per replica"
        return "on" if self.model.jit_compile else "off"

    def _roll_back(self, error):
        """Handles a non-finite step: restores the last good checkpoint and reseeds the noise (on_nonfinite=
        "rollback", within max_rollbacks); returns the step restored.

        Raises:
          TrainingDivergedError: naming the step, the last good checkpoint and what to try, when the run stops.
        """
        options = self.options
        saved = self.checkpointer.last_saved_step  # written or restored by this run, so finite and readable
        last_good = None if saved is None else self.store.path(saved)
        where = (f"the last good checkpoint is {last_good} (no checkpoint with a non-finite value is ever written)"
                 if last_good else "no checkpoint was written before it")
        if last_good and options.on_nonfinite == "rollback":
            where += (f"; {len(self.rollbacks)} rollback(s) with fresh noise, the --max_rollbacks limit, did not get "
                      "past the divergence")
        advice = (f"Rerun the command with --on_nonfinite=rollback to resume from {last_good} with fresh noise, or "
                  "train" if last_good and options.on_nonfinite != "rollback" else "Train")
        advice += (f" in a new --model_dir with lower learning rates (now d_lr={self.config.training.d_lr:g}, "
                   f"g_lr={self.config.training.g_lr:g}).")
        if options.on_nonfinite != "rollback" or last_good is None or len(self.rollbacks) >= options.max_rollbacks:
            raise TrainingDivergedError(f"{error} Training stopped; {where}. {advice}", step=error.step,
                                        values=error.values) from None
        step = self._restore()
        fresh_seed = int.from_bytes(hashlib.sha256(
            f"sagan_tf:rollback:{options.seed}:{error.step}:{len(self.rollbacks)}".encode()).digest()[:4], "big")
        self.model.reseed_noise(fresh_seed)
        self.rollbacks.append((error.step, step))
        logging.warning("%s Rolled back to %s (step %d) with fresh noise (rollback %d of at most %d).", error,
                        self.restored_checkpoint, step, len(self.rollbacks), options.max_rollbacks)
        self.checkpointer.last_step = step
        return step

    def _result(self, stopped):
        evaluations = dict(self.evaluate.history) if self.evaluate is not None else {}
        eval_seconds = 0.0
        if self.evaluator is not None:
            eval_seconds = self.evaluator.setup_seconds + (self.evaluate.seconds if self.evaluate is not None else 0.0)
        return RunResult(
            step=self.step,
            logs=dict(self.progress.last_logs),
            model_dir=self.run_dir.path,
            checkpoint=self.store.latest(),
            sample_grid=self.sampler.last_path if self.sampler is not None else None,
            stopped_by_signal=stopped,
            model=self.model,
            evaluations=evaluations,
            eval_seconds=eval_seconds,
            seconds=time.perf_counter() - self._start_time,
            best_checkpoint=self.best.best["checkpoint"] if self.best is not None and self.best.best else None,
            rollbacks=list(self.rollbacks),
            health_warnings=sorted(self.progress.warnings + (self.evaluate.warnings if self.evaluate else []),
                                   key=lambda warning: warning[0]),
        )


__all__ = ["TrainOptions", "RunResult", "Trainer", "run", "input_fn", "pipeline_seed", "pipeline_position",
           "fake_label_frequencies",
           "PRECISIONS", "NONFINITE_ACTIONS"]
