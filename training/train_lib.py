"""Training a SAGAN model: `run(config, options)` (used by `python -m training.run`).

`model_dir` holds everything a run writes and needs to resume:

    config.json             the SAGANConfig of the run (resuming with an incompatible one is refused)
    checkpoints/ckpt-<step> model, EMA generator, both optimizers, noise RNG state (`callbacks.gan_checkpoint`)
    samples/step_*.png      grids of a fixed set of latents and labels from the sampling (EMA) generator
    events.out.tfevents.*   TensorBoard: losses, attention gammas, throughput, sample grids, eval/fid ...

The step is the generator optimizer's update count. Rerunning into the same `model_dir` restores the latest
checkpoint and trains on to `config.train_steps`. The input pipeline of a run that starts at step s is seeded
with a hash of (seed, s), so a resumed run reads fresh data instead of replaying the stream from its start; the
model state is restored exactly, but the data after a resume differs from what an uninterrupted run would have
read (the pipelines cannot cheaply be positioned at an arbitrary example: TFDS shuffle buffers, file order).
"""

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Optional

import keras
import tensorflow as tf
from absl import logging

from sagan_tf import callbacks, data, eval_callback, evaluation
from sagan_tf.config import SAGANConfig
from sagan_tf.errors import ClassifierUnavailableError, ConfigError, UsageError
from sagan_tf.models import SAGAN, Discriminator, Generator

STRATEGIES = ("auto", "mirrored", "multi_worker", "tpu", "off")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# Fields that may change when resuming; any other difference makes the checkpoint meaningless for the config.
RESUMABLE_FIELDS = ("train_steps",)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How to run training (the model and its hyperparameters are the `SAGANConfig`).

    Attributes:
      model_dir: directory of config.json, checkpoints/, samples/ and TensorBoard events (any tf.io.gfile path).
      dataset: a `sagan_tf.data` name; None uses `config.dataset`.
      data_dir: TFDS data directory (or the base of relative "folder:" paths).
      strategy: "auto" (MirroredStrategy over all GPUs if there are any, else the default strategy), "mirrored"
        (all GPUs, or all logical CPU devices without GPUs), "multi_worker" (MultiWorkerMirroredStrategy from
        TF_CONFIG), "tpu" (TPUStrategy; see `tpu`) or "off" (the default strategy).
      tpu: TPU name or address for strategy "tpu" ("" = the local TPU VM).
      cpu_devices: split the CPU into this many logical devices first (to try "mirrored" on a CPU machine);
        1 leaves the devices alone.
      mixed_precision: "float32", "mixed_bfloat16" or "mixed_float16" (with dynamic loss scaling).
      jit_compile: XLA-compile the train step: True, False or None (Keras's "auto": on with GPUs only).
      sample_every: steps between sample grids (0: only at the end).
      checkpoint_every: steps between checkpoints (0: only at the end).
      log_every: steps between progress lines.
      keep_checkpoints: checkpoints kept in checkpoints/.
      seed: seed of the weight initialisation, the noise, the input pipeline and the sample-grid latents.
      samples_per_class: images per row of the sample grid.
      handle_signals: on SIGTERM/SIGINT, stop after the current step and save a checkpoint.
      eval_samples: generated images per FID/IS evaluation (on the chief, with the sampling generator); 0: no
        evaluation. Evaluations run at the start of training, every `eval_every` steps and at the end.
      eval_every: steps between evaluations (0: only at the start and the end of training).
      classifier: the classifier of the metrics (see `evaluation.load_classifier_for`); None: the dataset's
        default ("synthetic" for the synthetic dataset, TF-GAN's Inception from TF-Hub otherwise).
      compute_kid: also compute KID at each evaluation.
      eval_batch_size: images generated and classified per batch during evaluation.
      eval_num_real: real images in the reference statistics (computed once, then cached).
      eval_cache_dir: cache of the real-data statistics; None: `evaluation.default_cache_dir()`.

    Evaluation counts as asked for when `eval_every` > 0 or a `classifier` is given: then an unavailable classifier
    is a `UsageError` before training starts. Otherwise (the default evaluation at start and end) training goes on
    without evaluation and a warning says how to enable it.
    """

    model_dir: str
    dataset: Optional[str] = None
    data_dir: Optional[str] = None
    strategy: str = "auto"
    tpu: str = ""
    cpu_devices: int = 1
    mixed_precision: str = "float32"
    jit_compile: Optional[bool] = None
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 100
    keep_checkpoints: int = 3
    seed: int = 0
    samples_per_class: int = 8
    handle_signals: bool = True
    eval_samples: int = 0
    eval_every: int = 0
    classifier: Optional[str] = None
    compute_kid: bool = False
    eval_batch_size: int = 250
    eval_num_real: int = 10_000
    eval_cache_dir: Optional[str] = None

    @property
    def evaluation_requested(self):
        """Whether the user explicitly asked for evaluation (`eval_every` > 0 or a `classifier`)."""
        return self.eval_every > 0 or bool(self.classifier)

    def validate(self):
        def fail(message):
            raise UsageError(f"Invalid training options: {message}")

        if not self.model_dir:
            fail(f"model_dir must be a directory path. Received: model_dir={self.model_dir!r}")
        if self.strategy not in STRATEGIES:
            fail(f"strategy must be one of {', '.join(STRATEGIES)}. Received: strategy={self.strategy!r}")
        if self.mixed_precision not in PRECISIONS:
            fail(f"mixed_precision must be one of {', '.join(PRECISIONS)}. "
                 f"Received: mixed_precision={self.mixed_precision!r}")
        for name in ("sample_every", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 0:
                fail(f"{name} must be >= 0 (0: only at the end of training). Received: {name}={getattr(self, name)}")
        for name in ("log_every", "keep_checkpoints", "samples_per_class", "cpu_devices"):
            if getattr(self, name) < 1:
                fail(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if not 0 <= self.seed < 2**31:
            fail(f"seed must be an integer in [0, 2**31). Received: seed={self.seed}")
        if self.eval_samples < 0 or self.eval_samples == 1:
            fail(f"eval_samples must be 0 (no evaluation) or >= 2. Received: eval_samples={self.eval_samples}")
        if self.eval_samples == 0 and self.evaluation_requested:
            fail("evaluation was asked for (eval_every > 0 or a classifier) but eval_samples is 0; set eval_samples "
                 f"> 0. Received: eval_every={self.eval_every}, classifier={self.classifier!r}, eval_samples=0")
        if self.eval_batch_size < 1:
            fail(f"eval_batch_size must be >= 1. Received: eval_batch_size={self.eval_batch_size}")
        if self.eval_num_real < 2:
            fail(f"eval_num_real must be >= 2. Received: eval_num_real={self.eval_num_real}")


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
      evaluations: {step: {"fid", "inception_score", ["kid",] "num_samples", "seconds"}} of this run's evaluations.
      eval_seconds: wall time spent evaluating (real statistics and classifier loading included).
      seconds: wall time of the whole run (setup, training and evaluation).
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

    def evaluation_summary(self):
        """"FID 123.4 -> 12.3, IS 1.20 -> 3.50 (evaluation 25 s of 620 s)", or None without evaluations."""
        if not self.evaluations:
            return None
        return (f"{eval_callback.summarize(self.evaluations)} "
                f"(evaluation {self.eval_seconds:.0f} s of {self.seconds:.0f} s)")


def run(config, options):
    """Trains (or resumes training) a SAGAN model to `config.train_steps`.

    Args:
      config: a `SAGANConfig`; `num_classes` must match the dataset (0 trains an unconditional model on any).
      options: `TrainOptions`.

    Returns:
      A `RunResult`.

    Raises:
      UsageError: (or its subclasses ConfigError, DatasetError) for bad options, data, batch sizes or an
        incompatible `model_dir`, with a message saying how to fix it.
    """
    trainer = Trainer(config, options)
    return trainer.train()


def pipeline_seed(seed, start_step):
    """The input-pipeline seed of a run starting at `start_step`: `seed` itself at 0, else a hash in [0, 2**31)."""
    if start_step == 0:
        return seed
    digest = hashlib.sha256(f"sagan_tf:{seed}:{start_step}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def input_fn(config, options, dataset_name, start_step):
    """The `dataset_fn` for `strategy.distribute_datasets_from_function`: batches of d_steps * batch_size images.

    Each train step consumes `config.d_steps` real batches (see `SAGAN`), so the global batch of the pipeline is
    `config.d_steps * config.batch_size`.
    """
    seed = pipeline_seed(options.seed, start_step)

    def dataset_fn(input_context):
        return data.load(dataset_name, "train", image_size=config.image_size,
                         batch_size=config.d_steps * config.batch_size, data_dir=options.data_dir, seed=seed,
                         input_context=input_context)

    return dataset_fn


def build_strategy(options):
    """The `tf.distribute.Strategy` named by `options.strategy` (create it before other TensorFlow work)."""
    if options.cpu_devices > 1:
        _split_cpu(options.cpu_devices)
    name = options.strategy
    if name == "multi_worker":
        # Before anything initialises the runtime: the strategy configures collective ops at startup.
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    has_gpus = bool(tf.config.list_physical_devices("GPU"))
    if name == "off" or (name == "auto" and not has_gpus):
        return tf.distribute.get_strategy()
    if name in ("auto", "mirrored"):
        kind = "GPU" if has_gpus else "CPU"
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices(kind)])
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=options.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        raise UsageError(
            f"Could not connect to a TPU ({type(error).__name__}: {error}). Run on a TPU VM, or pass the TPU's name "
            "or grpc:// address with --tpu, or choose another --strategy (auto, mirrored, off).") from None
    return tf.distribute.TPUStrategy(resolver)


def _split_cpu(count):
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        # The runtime is already initialised (e.g. by a test harness); fine if the devices are there.
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise UsageError(
                f"cpu_devices={count} must be set before TensorFlow initialises its devices, and this process "
                f"already has {len(tf.config.list_logical_devices('CPU'))} logical CPU devices. Start a fresh "
                "process, or leave cpu_devices at 1.") from None


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not raw:
        raise UsageError("--strategy=multi_worker needs the TF_CONFIG environment variable describing the cluster "
                         f"and this process's task, e.g. {example} (index 1 on the second host).")
    try:
        spec = json.loads(raw)
        spec["cluster"], spec["task"]["type"], spec["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"TF_CONFIG is not a valid cluster description: {raw!r}. Expected e.g. {example}.") from None


def is_chief(strategy):
    """Whether this process is the chief (the one writing summaries, samples and the real checkpoints)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None or task_type == "chief":
        return True
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def check_resumable(config_path, config):
    """Refuses to train `config` into a model_dir whose config.json describes another model.

    Raises:
      ConfigError: naming every differing field with both values.
    """
    if not tf.io.gfile.exists(config_path):
        return
    with tf.io.gfile.GFile(config_path) as f:
        text = f.read()
    try:
        saved = json.loads(text)
    except ValueError:
        raise ConfigError(f"{config_path} is not valid JSON; move it away or use another --model_dir.") from None
    current = json.loads(config.to_json())
    differences = [f"{name}: {saved.get(name, '<missing>')!r} in config.json, {current.get(name, '<missing>')!r} now"
                   for name in sorted(set(saved) | set(current))
                   if name not in RESUMABLE_FIELDS and saved.get(name) != current.get(name)]
    if differences:
        directory = os.path.dirname(config_path)
        raise ConfigError(
            f"Refusing to resume in {directory}: its config.json describes a different run ({'; '.join(differences)}). "
            f"Rerun with the settings of {config_path} (only train_steps may change), or choose a new --model_dir.")


class _MultiWorkerSAGAN(SAGAN):
    """SAGAN whose train_step logs have shape (1,), for `fit` under MultiWorkerMirroredStrategy.

    Keras 3.15 reduces fit's per-replica logs across workers with `strategy.reduce("MEAN", value, axis=0)`, which
    fails for scalars ("Invalid reduction dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388).
    A leading axis of length 1 makes that reduction the mean over all replicas, a scalar again.
    """

    def train_step(self, data):
        return {name: keras.ops.reshape(value, (1,)) for name, value in super().train_step(data).items()}


def _write_text_atomically(path, text):
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)


class Trainer:
    """One training run, set up: strategy, data, model restored from the latest checkpoint, callbacks.

    `Trainer(config, options)` builds everything and restores the latest checkpoint (so `trainer.model` and
    `trainer.step` show the state training resumes from); `train()` trains to `config.train_steps`. `run` is
    both. The mixed-precision policy is set for the model's construction and put back by `train()`.
    """

    def __init__(self, config, options):
        if not isinstance(config, SAGANConfig):
            raise UsageError(f"config must be a SAGANConfig. Received: config={config!r}")
        if not isinstance(options, TrainOptions):
            raise UsageError(f"options must be TrainOptions. Received: options={options!r}")
        options.validate()
        self._start_time = time.perf_counter()
        if keras.backend.backend() != "tensorflow":
            raise UsageError("Training needs Keras's TensorFlow backend; set KERAS_BACKEND=tensorflow. "
                             f"Received: backend {keras.backend.backend()!r}")
        self.options = options
        dataset_name = options.dataset or config.dataset
        info = data.get_info(dataset_name, options.data_dir)
        if config.conditional and config.num_classes != info.num_classes:
            raise ConfigError(
                f"Dataset {dataset_name} has {info.num_classes} class(es) but the config is for "
                f"{config.num_classes}; set num_classes={info.num_classes if info.conditional else 0} "
                "(0 trains an unconditional model). Received: "
                f"num_classes={config.num_classes}")
        self.config = config = dataclasses.replace(config, dataset=dataset_name)
        self.class_names = info.class_names

        self.strategy = build_strategy(options)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            suggestion = (config.batch_size // replicas + 1) * replicas
            raise UsageError(
                f"The global batch size {config.batch_size} does not split evenly over the {replicas} replicas of "
                f"strategy {options.strategy!r}; use a multiple of {replicas} (e.g. --batch_size={suggestion}) or "
                "fewer devices.")
        self.chief = is_chief(self.strategy)
        self.multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.model_dir = options.model_dir
        self.config_path = os.path.join(self.model_dir, "config.json")
        self.checkpoint_dir = os.path.join(self.model_dir, "checkpoints")
        self.samples_dir = os.path.join(self.model_dir, "samples")
        check_resumable(self.config_path, config)
        if self.chief:
            tf.io.gfile.makedirs(self.model_dir)
            _write_text_atomically(self.config_path, config.to_json() + "\n")

        self._previous_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(options.mixed_precision)
        try:
            self.model = self._build_model()
            self.step = self._restore()
            self.evaluator = self._build_evaluator()
        except BaseException:
            keras.mixed_precision.set_global_policy(self._previous_policy)
            raise

    def _build_model(self):
        config, options = self.config, self.options
        keras.utils.set_random_seed(options.seed)
        model_class = _MultiWorkerSAGAN if self.multi_worker else SAGAN
        with self.strategy.scope():
            model = model_class(Generator(config), Discriminator(config), config.latent_dim, config.num_classes,
                                d_steps=config.d_steps, ema_decay=config.ema_decay, seed=options.seed)
            model.compile(
                g_optimizer=keras.optimizers.Adam(config.g_lr, beta_1=config.beta1, beta_2=config.beta2),
                d_optimizer=keras.optimizers.Adam(config.d_lr, beta_1=config.beta1, beta_2=config.beta2),
                loss=config.loss,
                jit_compile="auto" if options.jit_compile is None else options.jit_compile)
        return model

    def _restore(self):
        checkpoint = callbacks.gan_checkpoint(self.model)
        directory = self.checkpoint_dir
        if not self.chief:
            # MultiWorkerMirroredStrategy: every worker takes part in saving; only the chief's copy is kept.
            task_id = self.strategy.cluster_resolver.task_id
            directory = os.path.join(self.model_dir, f"tmp_checkpoints_worker{task_id}")
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=self.options.keep_checkpoints)
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            return 0
        scaled = any("dynamic_scale" in name for name, _ in tf.train.list_variables(latest))
        if scaled != (self.options.mixed_precision == "mixed_float16"):
            written = "with" if scaled else "without"
            raise UsageError(
                f"Checkpoint {latest} was written {written} float16 loss scaling, so it cannot resume with "
                f"--mixed_precision={self.options.mixed_precision}; resume with "
                f"{'--mixed_precision=mixed_float16' if scaled else 'float32 or mixed_bfloat16'}, or choose a new "
                "--model_dir.")
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise UsageError(
                f"Checkpoint {latest} does not fit this model ({str(error).splitlines()[0]}). It was probably written "
                "with other settings (architecture, ema_decay or --mixed_precision=mixed_float16 loss scaling); "
                "resume with those, or choose a new --model_dir.") from None
        step = callbacks.global_step(self.model)
        logging.info("Restored %s: step %d.", latest, step)
        return step

    def _build_evaluator(self):
        """The `evaluation.Evaluator` of the chief, or None (evaluation off, or its classifier unavailable)."""
        options, config = self.options, self.config
        if not self.chief or not options.eval_samples or self.step >= config.train_steps:
            return None
        eval_config = evaluation.EvalConfig(
            num_samples=options.eval_samples, batch_size=options.eval_batch_size, classifier=options.classifier,
            num_real=options.eval_num_real, compute_kid=options.compute_kid, seed=options.seed,
            cache_dir=options.eval_cache_dir)
        try:
            return evaluation.Evaluator.create(config.dataset, config.image_size, eval_config, options.data_dir,
                                               print_fn=logging.info)
        except ClassifierUnavailableError as error:
            if options.evaluation_requested:
                raise
            logging.warning("Training without FID/IS evaluation. %s To evaluate during training, make the classifier "
                            "available and pass it with --classifier (or set --eval_samples=0 to silence this).",
                            error)
            return None

    def _callbacks(self, summary_writer):
        options, config = self.options, self.config
        self.stopper = callbacks.GracefulStop(print_fn=logging.warning) if options.handle_signals else None
        self.progress = callbacks.ProgressLogger(
            config.train_steps, options.log_every, images_per_step=config.d_steps * config.batch_size,
            summary_writer=summary_writer, print_fn=logging.info if self.chief else (lambda line: None))
        self.sampler = None
        if self.chief:
            self.sampler = callbacks.SampleGrid(
                self.samples_dir, options.sample_every, latent_dim=config.latent_dim,
                num_classes=config.num_classes, samples_per_class=options.samples_per_class, seed=options.seed,
                class_names=self.class_names, summary_writer=summary_writer)
        self.evaluate = None
        if self.evaluator is not None:
            self.evaluate = eval_callback.EvaluateEvery(options.eval_every, self.evaluator, summary_writer,
                                                        print_fn=logging.info)
        self.checkpointer = callbacks.CheckpointEvery(self.manager, options.checkpoint_every)
        return [c for c in (self.stopper, self.progress, self.sampler, self.evaluate, self.checkpointer)
                if c is not None]

    def train(self):
        """Trains from `self.step` to `config.train_steps`; returns a `RunResult`."""
        try:
            return self._train()
        finally:
            keras.mixed_precision.set_global_policy(self._previous_policy)

    def _train(self):
        config, options = self.config, self.options
        target = config.train_steps
        if self.step >= target:
            logging.info("Nothing to do: %s is already at step %d of train_steps=%d. Pass a larger --train_steps to "
                         "train further.", self.model_dir, self.step, target)
            return self._result(stopped=None)
        logging.info("Training %s from step %d to %d on %d replica(s); model_dir %s.", config.name, self.step,
                     target, self.strategy.num_replicas_in_sync, self.model_dir)
        writer = tf.summary.create_file_writer(self.model_dir) if self.chief else None
        cbs = self._callbacks(writer)
        if self.multi_worker:
            # Keras 3.15's fit first reduces one data batch across replicas (`_maybe_symbolic_build`, to build
            # unbuilt models), which MultiWorkerMirroredStrategy cannot do eagerly for an (images, labels) tuple.
            # The SAGAN is fully built: let fit take the strategy from the enclosing scope instead.
            self.model._distribute_strategy = None
        try:
            # Normally one fit call; more only when float16 loss scaling skipped updates (the step does not advance).
            while self.step < target:
                dataset = self.strategy.distribute_datasets_from_function(
                    input_fn(config, options, config.dataset, self.step))
                with self.strategy.scope():
                    self.model.fit(dataset, epochs=1, steps_per_epoch=target - self.step, callbacks=cbs, verbose=0,
                                   shuffle=False)
                previous, self.step = self.step, callbacks.global_step(self.model)
                if self.stopper is not None and self.stopper.signal_received is not None:
                    break
                if self.step == previous:
                    logging.error("No generator update in %d train steps (every float16 update overflowed?); "
                                  "stopping at step %d.", target - previous, self.step)
                    break
        finally:
            if writer is not None:
                writer.close()
            if not self.chief and tf.io.gfile.exists(self.manager.directory):
                tf.io.gfile.rmtree(self.manager.directory)
        stopped = self.stopper.signal_received if self.stopper is not None else None
        latest = os.path.join(self.checkpoint_dir, f"ckpt-{self.checkpointer.last_saved_step}")
        if stopped is not None:
            logging.warning("Stopped at step %d; checkpoint %s. Rerun the same command to continue.", self.step,
                            latest)
        else:
            logging.info("Done: step %d; checkpoint %s.", self.step, latest)
        result = self._result(stopped)
        summary = result.evaluation_summary()
        if summary is not None:
            logging.info(summary)
        return result

    def _result(self, stopped):
        evaluator, evaluate = getattr(self, "evaluator", None), getattr(self, "evaluate", None)
        return RunResult(
            step=self.step,
            logs=dict(getattr(getattr(self, "progress", None), "last_logs", {}) or {}),
            model_dir=self.model_dir,
            checkpoint=tf.train.latest_checkpoint(self.checkpoint_dir),
            sample_grid=getattr(getattr(self, "sampler", None), "last_path", None),
            stopped_by_signal=stopped,
            model=self.model,
            evaluations=dict(getattr(evaluate, "history", {}) or {}),
            eval_seconds=getattr(evaluator, "setup_seconds", 0.0) + getattr(evaluate, "seconds", 0.0),
            seconds=time.perf_counter() - self._start_time,
        )

