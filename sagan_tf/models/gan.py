"""The SAGAN training model: a `keras.Model` whose `train_step` alternates discriminator and generator updates.

Backend-neutral: the networks, optimizers, losses, noise, augmentation, EMA and metrics are defined here with
`keras.ops`; the train step itself is the Keras backend's (`sagan_tf.models.tensorflow_step` on TensorFlow,
`sagan_tf.models.jax_step` on JAX), which `SAGAN` inherits as `keras.Model` inherits Keras's own trainer of the
backend.
"""

import hashlib

import keras
from keras import ops

from sagan_tf.models import augment as augment_module
from sagan_tf.models import losses, regularizers
from sagan_tf.layers import BatchNorm, SelfAttention, SpectralNormalization, moving_statistics
from sagan_tf.models.step_common import FedDraws
from sagan_tf.models.step_common import all_finite as _all_finite
from sagan_tf.models.step_common import layers_of_type as _layers_of_type
from sagan_tf.models.step_common import unpack as _unpack
from sagan_tf.models.step_common import with_loss_scaling as _with_loss_scaling


def _train_step_class():
    """The class whose `train_step` trains `SAGAN` on the current Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from sagan_tf.models.tensorflow_step import TensorFlowTrainStep
        return TensorFlowTrainStep
    if backend == "jax":
        from sagan_tf.models.jax_step import JaxTrainStep
        return JaxTrainStep
    return _UnsupportedTrainStep


class _UnsupportedTrainStep:
    """The networks build and run on any Keras backend; training needs TensorFlow or JAX."""

    @staticmethod
    def _replica_slot():
        return 0, 1

    def _track_step_state(self):
        pass

    def _compile_train_step(self, jit_compile, auto, kwargs):
        raise ValueError("SAGAN trains on the TensorFlow and JAX backends (KERAS_BACKEND=tensorflow or jax). "
                         f"Received: keras.backend.backend()={keras.backend.backend()!r}")


def _derived_seed(seed, purpose):
    """A seed in [0, 2**31) for the stream `purpose` of a run seeded `seed` (None stays None: random), so that the
    augmentation draws are not the noise draws of the same seed."""
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"sagan_tf:{purpose}:{seed}".encode()).digest()[:4], "big") % 2**31


@keras.saving.register_keras_serializable(package="sagan_tf")
class SAGAN(_train_step_class(), keras.Model):
    """Hinge-loss GAN with TTUR, `d_steps` discriminator updates per generator update and an EMA generator.

    `fit(dataset)` trains it; the dataset yields `(images, labels)` (or `images` alone for unconditional models).
    Each `train_step` consumes `d_steps` real batches: feed batches of `d_steps * batch_size` images, which the step
    splits into one chunk per discriminator update (as the reference implementations draw fresh real data for every
    discriminator step). The generator update uses `batch_size` latents.

    Backends: the train step is the Keras backend's, inherited as `keras.Model` inherits Keras's trainer:
    `sagan_tf.models.tensorflow_step.TensorFlowTrainStep` (GradientTape, tf.distribute) on TensorFlow,
    `sagan_tf.models.jax_step.JaxTrainStep` (stateless, jitted) on JAX, which does everything below but gradient
    accumulation and mixed_float16 (refused at `compile`). A batch may also be a dict
    `{"images": ..., "labels": ..., "z": ..., ...}` that carries the step's noise instead of drawing it
    (`sagan_tf.models.step_common.FedDraws`: how `benchmarks/backend_parity.py` feeds both backends the same noise).

    Health signals: besides the losses and the mean discriminator logits on real and fake images (`d_real`, `d_fake`),
    each step logs the global gradient norm of each network (`d_grad_norm`, `g_grad_norm`), each attention layer's
    gamma (`gamma_<g|d>_<layer>`), and `finite`: 1.0 when the step's losses and gradient norms are finite, else 0.0
    (what `callbacks.NonFiniteGuard` watches every step; under mixed_float16 an overflow of the loss-scaled gradients
    is the loss scale's to handle and is left out of the flag and the norms; the weights themselves are checked with
    `state_is_finite` at the logging cadence and before every checkpoint, which keeps ~500 reductions of the state out
    of every step). Losses, logits and gradient norms are means since the metrics were last reset (`fit` resets them
    every epoch, `callbacks.ProgressLogger` after each progress line); the gradient norms are those of the loss over
    the global batch, and under tf.distribute each replica measures its own gradient scaled to a full-batch loss
    (num_replicas times its share), averaged over the replicas: exact on one device, an estimate that includes each
    replica's sampling noise on several.

    Replicas (tf.distribute): every variable stays identical on every replica. The optimizers apply all-reduced
    gradients; spectral-norm vectors are computed by every replica from the same weights; batch-norm moving
    statistics (`sagan_tf.layers.BatchNorm`) are updated per replica and averaged across replicas once per step in
    one batched all-reduce (none is needed with synchronized batch norm, whose statistics are already those of the
    global batch); the EMA generator then averages identical weights.

    XLA: `compile(jit_compile=True)` compiles the whole step on one device. Under a tf.distribute strategy, where
    Keras cannot compile the step (one XLA computation cannot span the replicas' devices), the per-replica
    computation is compiled instead: each update's (or micro-batch's) forward and backward passes and the EMA
    update are XLA functions on each replica's device, and only the gradient all-reduce, the optimizer updates, the
    micro-batch loop and the batch-norm averaging run outside them. Synchronized batch norm all-reduces inside the
    forward pass, which a per-replica XLA function cannot do: it trains without XLA under a multi-replica strategy.

    Noise: every discriminator and generator update draws the latents (and, for conditional models, uniform fake
    labels) of the whole global batch from one shared seed and each replica keeps its own slice. Replicas therefore
    never share noise (under MirroredStrategy a `keras.random` draw with a `SeedGenerator` is the same on every
    replica, so the slice is what makes them differ), and a step on N replicas sees exactly the noise of one device
    running the global batch.

    Small datasets (all off by default, the paper's recipe): `augment="diffaugment"` passes every image the
    discriminator sees, real and generated, in both updates, through DiffAugment's differentiable ops, and
    `augment="ada"` gates each op per image with ADA's adaptive probability p (`sagan_tf.models.augment`);
    `lecam_weight` adds the LeCam regularizer to the discriminator's loss and `orthogonal_reg` BigGAN's orthogonal
    regularization to the generator's (`sagan_tf.models.regularizers`); `fake_label_probabilities` draws the fake labels
    from the training data's class frequencies instead of uniformly. Augmentation lives in the training step only:
    `call`, the sampling generator and so evaluation, sample grids and exports never see it. Its random parameters come
    from a seed generator of their own (`augment_seed_generator`, derived from `seed`), drawn for the global batch like
    the noise, so each replica augments with its own slice. ADA's statistics and the LeCam anchors are updated from
    all-reduced sums, so they stay identical on every replica; all of this state is in the checkpoint
    (`sagan_tf.run.checkpoint.gan_checkpoint`).

    Gradient accumulation (`grad_accumulation=N`, as BigGAN-PyTorch's `--num_D_accumulations` and
    `--num_G_accumulations`): every discriminator and generator update splits this replica's batch into N
    micro-batches of batch / N, runs them one after the other (the activations of one at a time are alive) and sums
    their gradients, each micro-batch's loss being its sum over the global batch's size, before one optimizer update:
    the update of the full batch, with the replicas' gradients all-reduced once per update. The noise and
    augmentation parameters are drawn for the whole global batch as without accumulation, and micro-batch k takes
    rows k * batch / N to (k + 1) * batch / N of each replica's slice. What advances once per update, not per
    micro-batch: the spectral-norm vectors u (on the first micro-batch; the others normalize with that u, as the
    full batch's passes all do), the step counters, the EMA, ADA's statistics and p, and the LeCam anchors (from
    the logits of all micro-batches). Batch norm normalizes each micro-batch with its own statistics (as
    BigGAN-PyTorch does; synchronized batch norm with those of the micro-batch over all replicas), and its moving
    statistics take one update per optimizer update, with the mean of the micro-batches' statistics: the rule that
    already merges replicas, so one device accumulating N micro-batches trains exactly like N replicas with one
    each. Without batch norm (or with its layers frozen) an update with N micro-batches equals the full batch's.

    Args:
      generator: maps `(z, labels, training)` to images.
      discriminator: maps `(images, labels, training)` to logits of shape (batch,).
      latent_dim: size of z.
      num_classes: number of classes; 0 for an unconditional GAN.
      d_steps: discriminator updates per generator update.
      ema_decay: decay of the exponential moving average of the generator's weights (batch-norm statistics
        included), or None to turn it off. `ema_generator` is what sampling, evaluation and export use.
      ema_start: the step from which the EMA averages (BigGAN's `ema_start`): through step `ema_start` the EMA
        generator is a copy of the generator, so early samples show what it has learned instead of a blend that
        is still mostly the random initialisation; 0 averages from the first step.
      seed: seed of the noise stream (and, derived from it, of the augmentation's).
      augment: "none", "diffaugment" or "ada" (see above).
      augment_policy: the DiffAugment ops, a comma-separated subset of "color,translation,cutout" (in order).
      ada_target: the r_t that ADA steers p toward, in (0, 1) (0.6 in the paper).
      ada_interval: training steps between ADA's adjustments of p (4 in the paper).
      ada_kimg: thousands of real images over which ADA's p can move by 1 (500 in the paper).
      lecam_weight: lambda of the LeCam regularizer, >= 0 (0: off).
      orthogonal_reg: beta of BigGAN's orthogonal regularization of the generator's kernels, >= 0 (0: off; BigGAN
        uses 1e-4).
      fake_label_probabilities: None to draw fake labels uniformly (the paper), or one probability per class (e.g.
        the training data's class frequencies or counts; they need not sum to 1).
      grad_accumulation: micro-batches per update, >= 1 (1: none); must divide each update's per-replica batch.

    The settings are not checked again here: `TrainingConfig` and `ModelConfig` (`sagan_tf.config`) own their
    validation, and `build_sagan` builds the model from a validated `ExperimentConfig`.
    """

    def __init__(self, generator, discriminator, latent_dim, num_classes, d_steps=1, ema_decay=0.999, seed=None,
                 ema_start=0, augment="none", augment_policy=augment_module.DEFAULT_POLICY, ada_target=0.6,
                 ada_interval=4, ada_kimg=500.0, lecam_weight=0.0, orthogonal_reg=0.0, fake_label_probabilities=None,
                 grad_accumulation=1, **kwargs):
        super().__init__(**kwargs)
        # The training settings are trusted: `TrainingConfig` and `ModelConfig` validated them (`build_sagan`).
        policy = augment_module.parse_policy(augment_policy)
        if fake_label_probabilities is not None:
            fake_label_probabilities = tuple(float(p) for p in fake_label_probabilities)
            if (len(fake_label_probabilities) != num_classes or min(fake_label_probabilities) < 0
                    or not sum(fake_label_probabilities) > 0):
                raise ValueError(
                    f"fake_label_probabilities needs one non-negative value per class ({num_classes}), not all zero. "
                    f"Received: fake_label_probabilities={fake_label_probabilities}")
        for network in (generator, discriminator):
            config = getattr(network, "config", None)
            if config is not None and (config.latent_dim, config.num_classes) != (latent_dim, num_classes):
                raise ValueError(
                    f"{network.name} was built for latent_dim={config.latent_dim}, num_classes={config.num_classes}. "
                    f"Received: latent_dim={latent_dim}, num_classes={num_classes}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.d_steps = d_steps
        self.grad_accumulation = grad_accumulation
        self.ema_decay = ema_decay
        self.ema_start = ema_start
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.augment = augment
        self.augment_policy = policy
        self.ada_target = float(ada_target)
        self.ada_interval = ada_interval
        self.ada_kimg = float(ada_kimg)
        self.lecam_weight = float(lecam_weight)
        self.orthogonal_reg = float(orthogonal_reg)
        self.fake_label_probabilities = fake_label_probabilities
        self.augment_seed_generator = None
        if augment != "none":
            self.augment_seed_generator = keras.random.SeedGenerator(_derived_seed(seed, "augment"),
                                                                     name="augment_seed")
        self.ada = augment_module.AdaptiveAugment(ada_target, ada_interval, ada_kimg) if augment == "ada" else None
        self.lecam = regularizers.LeCamAnchors() if self.lecam_weight > 0 else None
        self._build_networks()
        self.ema_generator = None
        if ema_decay is not None:
            self.ema_generator = generator.__class__.from_config({**generator.get_config(), "name": "ema_generator"})
            self._build_network(self.ema_generator)
            self.ema_generator.set_weights(generator.get_weights())
            self.ema_generator.trainable = False
            # Spectral-norm power-iteration vectors are copied, not averaged: an average of unit vectors is not a
            # unit vector, and sigma = u^T W v needs |u| = 1.
            copied = {id(layer.u) for layer in _layers_of_type(generator, SpectralNormalization)}
            self._ema_pairs = [(ema, source, id(source) in copied)
                               for ema, source in zip(self.ema_generator.weights, generator.weights)]
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_logits_tracker = keras.metrics.Mean(name="d_real")
        self.fake_logits_tracker = keras.metrics.Mean(name="d_fake")
        self.d_grad_norm_tracker = keras.metrics.Mean(name="d_grad_norm")
        self.g_grad_norm_tracker = keras.metrics.Mean(name="g_grad_norm")
        # The regularizers' unweighted values (R_LC, the orthogonal penalty), logged only when they are on.
        self.lecam_tracker = keras.metrics.Mean(name="lecam_reg") if self.lecam is not None else None
        self.orthogonal_tracker = keras.metrics.Mean(name="ortho_reg") if self.orthogonal_reg > 0 else None
        # Per-replica state that a step leaves different on each replica, averaged at its end (see the docstring).
        self._replica_averaged = moving_statistics(self.generator) + moving_statistics(self.discriminator)
        # Every batch norm's moving statistics (synchronized ones too): one update per accumulated update.
        self._micro_batch_averaged = [variable for network in (self.generator, self.discriminator)
                                      for layer in _layers_of_type(network, BatchNorm)
                                      for variable in layer.moving_statistics]
        self._replica_jit = False
        self._fed_draws = None
        self._track_step_state()
        # Every variable exists now; without this, fit() would try to build the model by calling it on real data.
        self.built = True

    def _build_network(self, generator):
        labels = ops.zeros((2,), "int32")
        return generator(ops.zeros((2, self.latent_dim)), labels, training=False)

    def _build_networks(self):
        # Create every variable now (inside the strategy scope the model is created in), so that the optimizers can
        # be built in `compile` before `fit`: under MirroredStrategy a model built by `fit` fails ("Unable to
        # automatically build the model", or a placeholder error).
        images = self._build_network(self.generator)
        self.discriminator(images, ops.zeros((2,), "int32"), training=False)

    @property
    def sampling_generator(self):
        """The generator used for sampling, evaluation and export: the EMA one when EMA is on."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def compile(self, g_optimizer, d_optimizer, loss="hinge", jit_compile="auto", **kwargs):
        """Configures training.

        Args:
          g_optimizer: optimizer of the generator (TTUR: usually Adam, lr 1e-4, betas (0, 0.9)).
          d_optimizer: optimizer of the discriminator (TTUR: usually Adam, lr 4e-4, betas (0, 0.9)).
          loss: "hinge" (paper) or "non_saturating".
          jit_compile: XLA-compile the train step: True, False or "auto" (`default_jit_compile`: on TensorFlow on with
            GPUs, off on CPU, whatever the strategy; always on JAX). Under a multi-replica strategy the per-replica
            computation is compiled (see the class docstring); with synchronized batch norm there, "auto" means
            False and True is refused.
          **kwargs: passed to `keras.Model.compile` (e.g. `steps_per_execution`).

        Raises:
          ValueError: `jit_compile=True`, or `grad_accumulation` > 1, with synchronized batch norm under a
            multi-replica strategy; on JAX, what its step does not support (see `jax_step.JaxTrainStep`).
        """
        auto = isinstance(jit_compile, str) and jit_compile == "auto"
        jit_compile = default_jit_compile() if auto else bool(jit_compile)
        self._compile_train_step(jit_compile, auto, kwargs)
        self.d_loss_fn, self.g_loss_fn = losses.get_losses(loss)
        if self.dtype_policy.name == "mixed_float16" or keras.mixed_precision.global_policy().name == "mixed_float16":
            # float16 gradients underflow without loss scaling.
            g_optimizer = _with_loss_scaling(g_optimizer)
            d_optimizer = _with_loss_scaling(d_optimizer)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self._build_optimizers()

    def _begin_step(self, data):
        """(images, labels or None) of a train step's batch; takes the step's noise from it when it carries some
        (`step_common.FedDraws`)."""
        self._fed_draws = FedDraws.of(data)
        return _unpack(data)

    def _update_batch_size(self, images):
        """The real images of each discriminator update on this replica: a train step's batch `images` holds
        `d_steps` of them, each split into `grad_accumulation` micro-batches.

        Raises:
          ValueError: a batch that does not split so (a dynamic batch is fine only when it is not split).
        """
        per_replica_batch = images.shape[0]
        updates = self.d_steps * self.grad_accumulation
        if updates == 1 and per_replica_batch is None:
            return ops.shape(images)[0]
        if per_replica_batch is None or per_replica_batch % self.d_steps:
            raise ValueError(
                f"Each train_step consumes d_steps={self.d_steps} real batches (each split into grad_accumulation="
                f"{self.grad_accumulation} micro-batches): the per-replica batch must be a static multiple of d_steps. "
                f"Received: batch={per_replica_batch}. Batch the dataset with drop_remainder=True and a size of "
                "d_steps * batch_size.")
        batch_size = per_replica_batch // self.d_steps
        if updates > 1 and batch_size % self.grad_accumulation:
            raise ValueError(
                f"grad_accumulation={self.grad_accumulation} splits each update's per-replica batch into that many "
                f"equal micro-batches, but the per-replica batch of an update is {batch_size}. Received: "
                f"batch={per_replica_batch}, d_steps={self.d_steps}, grad_accumulation={self.grad_accumulation}.")
        return batch_size

    def _end_step(self):
        self._fed_draws = None

    def _step_logs(self, d_loss, g_loss, logit_sums, batch_size, signals):
        """The last of both train steps: the loss and logit trackers updated, then the logs: every metric, the
        attention gammas and `finite`, whether every one of `signals` (losses, gradient norms, regularizer values)
        is finite."""
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.real_logits_tracker.update_state(logit_sums[1] / ops.cast(batch_size, "float32"))
        self.fake_logits_tracker.update_state(logit_sums[2] / ops.cast(batch_size, "float32"))
        logs = {m.name: m.result() for m in self.metrics}
        logs.update(self.attention_gammas())
        # Losses can stay finite over NaN weights (the hinge's relu maps NaN to 0); their gradients cannot.
        logs["finite"] = ops.cast(ops.all(ops.isfinite(ops.cast(ops.stack(signals), "float32"))), "float32")
        return logs

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.real_logits_tracker, self.fake_logits_tracker,
                    self.d_grad_norm_tracker, self.g_grad_norm_tracker, self.lecam_tracker, self.orthogonal_tracker]
        return [tracker for tracker in trackers if tracker is not None]

    @property
    def replica_jit_compile(self):
        """Whether the per-replica computation is XLA-compiled (`compile(jit_compile=True)` under a multi-replica
        strategy); on one device `jit_compile` is Keras's own."""
        return self._replica_jit

    def attention_gammas(self):
        """{"gamma_<g|d>_<layer name>": gamma tensor} of every self-attention layer (paper eq. 3)."""
        return {f"gamma_{prefix}_{layer.name}": ops.convert_to_tensor(layer.gamma)
                for prefix, network in (("g", self.generator), ("d", self.discriminator))
                for layer in _layers_of_type(network, SelfAttention)}

    def augment_signals(self):
        """{"ada_p": p, "ada_rt": r_t of the last adjustment} with ADA (the progress line and TensorBoard show them),
        else {}."""
        if self.ada is None:
            return {}
        return {"ada_p": ops.convert_to_tensor(self.ada.p), "ada_rt": ops.convert_to_tensor(self.ada.rt)}

    def _synchronized_batch_norm(self):
        return any(layer.synchronized for network in (self.generator, self.discriminator)
                   for layer in _layers_of_type(network, BatchNorm))

    def call(self, inputs, training=False):
        """Generates images from `(z, labels)` (or `z` alone) with the sampling generator."""
        z, labels = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        return self.sampling_generator(z, labels, training=training)

    def draw_noise(self, batch_size):
        """Latents and fake labels of this replica's slice of the global batch.

        Args:
          batch_size: examples on this replica.

        Returns:
          (z of shape (batch_size, latent_dim), int32 labels of shape (batch_size,) or None if unconditional).
        """
        if self._fed_draws is not None:
            return self._fed_draws.noise()
        replica_id, num_replicas = self._replica_slot()
        global_batch = batch_size * num_replicas
        start = replica_id * batch_size
        # The seed generator advances identically on every replica, so all replicas draw the same global batch.
        z = keras.random.normal((global_batch, self.latent_dim), seed=self.seed_generator)
        z = ops.slice(z, (start, 0), (batch_size, self.latent_dim))
        if not self.num_classes:
            return z, None
        if self.fake_label_probabilities is None:
            labels = keras.random.randint((global_batch,), 0, self.num_classes, seed=self.seed_generator,
                                          dtype="int32")
        else:
            logits = ops.log(ops.convert_to_tensor([self.fake_label_probabilities], "float32"))
            labels = ops.reshape(keras.random.categorical(logits, global_batch, seed=self.seed_generator,
                                                          dtype="int32"), (global_batch,))
        return z, ops.slice(labels, (start,), (batch_size,))

    def draw_augmentation(self, batch_size, image_size):
        """The augmentation parameters of this replica's slice of the global batch (`augment.draw_parameters`,
        with ADA's current p), or None when augmentation is off.

        Args:
          batch_size: images on this replica.
          image_size: their height and width.
        """
        if self.augment_seed_generator is None:
            return None
        probability = None if self.ada is None else ops.convert_to_tensor(self.ada.p)
        if self._fed_draws is not None:
            return self._fed_draws.augmentation(probability)
        replica_id, num_replicas = self._replica_slot()
        params = augment_module.draw_parameters(batch_size * num_replicas, image_size, self.augment_policy,
                                                self.augment_seed_generator, probability)
        return augment_module.slice_parameters(params, replica_id * batch_size, batch_size)

    def _augmented(self, images, params):
        """`images` as the discriminator sees them in training: augmented with `params` (None: as they are)."""
        if params is None:
            return images
        return augment_module.apply(images, params, self.augment_policy)

    def _discriminator_loss(self, real, real_labels, fake, fake_labels, global_batch, augmentations):
        """The discriminator's loss of one (micro-)batch on this replica, as every backend's step differentiates it.

        Runs the discriminator in training on the real images (which advances its spectral-norm vectors) and then
        on the generated ones `fake` (with those vectors as they are).

        Args:
          real, real_labels: this (micro-)batch's real images and labels (None: unconditional).
          fake, fake_labels: generated images and the labels they were generated for.
          global_batch: examples of this update over all replicas.
          augmentations: the augmentation parameters for the real and for the generated images, or None each.

        Returns:
          (the loss summed over the batch, divided by `global_batch` and scaled by `d_optimizer.scale_loss`, float32
          sums [sign(real logits), real logits, fake logits] over the batch, (mean adversarial loss (SAGAN eq. 4
          with the hinge), mean LeCam penalty or None)).
        """
        real_logits = self.discriminator(self._augmented(real, augmentations[0]), real_labels, training=True)
        fake_logits = self.discriminator(self._augmented(fake, augmentations[1]), fake_labels, training=False)
        per_example = self.d_loss_fn(real_logits, fake_logits)
        loss = losses.global_mean(per_example, global_batch)
        penalty = None
        if self.lecam is not None:
            penalty = regularizers.lecam_penalty(real_logits, fake_logits, *self.lecam.anchors())
            loss = loss + self.lecam_weight * losses.global_mean(penalty, global_batch)
        scaled = self.d_optimizer.scale_loss(loss)
        real = ops.cast(real_logits, "float32")
        logit_sums = ops.stack([ops.sum(ops.sign(real)), ops.sum(real), ops.sum(ops.cast(fake_logits, "float32"))])
        return scaled, logit_sums, (ops.cast(ops.mean(per_example), "float32"),
                                    None if penalty is None else ops.cast(ops.mean(penalty), "float32"))

    def _generator_loss(self, z, fake_labels, global_batch, augmentation):
        """The generator's loss of one (micro-)batch on this replica, as every backend's step differentiates it:
        generates from `z` in training and scores the (augmented) images with the discriminator in inference.

        Returns:
          (the loss summed over the batch, divided by `global_batch`, plus this batch's share of the orthogonal
          penalty, scaled by `g_optimizer.scale_loss`; (mean adversarial loss, orthogonal penalty or None)).
        """
        fake = self.generator(z, fake_labels, training=True)
        fake_logits = self.discriminator(self._augmented(fake, augmentation), fake_labels, training=False)
        per_example = self.g_loss_fn(fake_logits)
        loss = losses.global_mean(per_example, global_batch)
        penalty = None
        if self.orthogonal_reg > 0:
            penalty = regularizers.orthogonal_penalty(regularizers.orthogonal_kernels(self.generator))
            # This (micro-)batch's share: the micro-batches' and the replicas' gradients are summed.
            share = ops.cast(ops.shape(z)[0], "float32") / ops.cast(global_batch, "float32")
            loss = loss + self.orthogonal_reg * penalty * share
        scaled = self.g_optimizer.scale_loss(loss)
        return scaled, (ops.cast(ops.mean(per_example), "float32"),
                        None if penalty is None else ops.cast(penalty, "float32"))

    def _observe_logit_sums(self, logit_sums, global_batch):
        """Feeds one discriminator update's logit sums over the global batch (`_discriminator_loss`'s [sign(real
        logits), real logits, fake logits]) to ADA (the signs on real images) and to the LeCam anchors (the means)."""
        if self.ada is not None:
            self.ada.observe(logit_sums[0], global_batch)
        if self.lecam is not None:
            self.lecam.update(logit_sums[1] / global_batch, logit_sums[2] / global_batch)

    def state_variables(self):
        """The float state a checkpoint holds: every variable of the networks (EMA generator included) and of the
        optimizers (not the metrics' running means)."""
        networks = [self.generator, self.discriminator] + ([self.ema_generator] if self.ema_generator else [])
        variables = [v for network in networks for v in network.variables]
        variables += list(self.g_optimizer.variables) + list(self.d_optimizer.variables)
        variables += [v for state in self.regularization_state().values() for v in state.values()]
        return [v for v in variables if "float" in str(v.dtype)]

    def regularization_state(self):
        """{"ada": {name: variable}, "lecam": {name: variable}} of the state the small-data options keep (those
        that are on): what a checkpoint holds beyond the networks, the optimizers and the seed generators."""
        state = {}
        if self.ada is not None:
            state["ada"] = self.ada.variables
        if self.lecam is not None:
            state["lecam"] = self.lecam.variables
        return state

    def state_is_finite(self):
        """Whether every float variable of the checkpointed state is finite: one sum per variable on the device and
        one boolean back (what `callbacks.NonFiniteGuard` checks at the logging cadence and every checkpoint does
        before it is written)."""
        return bool(ops.convert_to_numpy(_all_finite(self.state_variables())))

    def ema_decay_at(self, step):
        """The EMA decay of the update that brings the EMA to training step `step`: 0 (a copy) through
        `ema_start`, `ema_decay` after it."""
        return ops.where(ops.greater(step, self.ema_start), self.ema_decay, 0.0)

    def _update_ema(self):
        decay = ops.cast(self.ema_decay_at(self.g_optimizer.iterations), "float32")
        for ema, source, copy in self._ema_pairs:
            if copy:
                ema.assign(source)
            else:
                ema.assign(decay * ema + (1.0 - decay) * source)

    def reseed_noise(self, seed):
        """Switches the training noise to a fresh stream named by `seed` (an int), e.g. after rolling back to a
        checkpoint whose noise led to a non-finite step. The new state is checkpointed like the old one."""
        state = self.seed_generator.state
        state.assign(ops.convert_to_tensor([seed % 2**31, 0], dtype=state.dtype))
        if self.augment_seed_generator is not None:
            state = self.augment_seed_generator.state
            state.assign(ops.convert_to_tensor([_derived_seed(seed, "augment"), 0], dtype=state.dtype))

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "d_steps": self.d_steps,
            "grad_accumulation": self.grad_accumulation,
            "ema_decay": self.ema_decay,
            "ema_start": self.ema_start,
            "augment": self.augment,
            "augment_policy": ",".join(self.augment_policy),
            "ada_target": self.ada_target,
            "ada_interval": self.ada_interval,
            "ada_kimg": self.ada_kimg,
            "lecam_weight": self.lecam_weight,
            "orthogonal_reg": self.orthogonal_reg,
            "fake_label_probabilities": (None if self.fake_label_probabilities is None
                                         else list(self.fake_label_probabilities)),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def build_sagan(config, seed=None, model_class=None, class_frequencies=None, **compile_kwargs):
    """A compiled `SAGAN` as an `ExperimentConfig` describes it: its model's networks, and its training config's
    discriminator steps, gradient accumulation, EMA decay and start, loss, Adam optimizers (TTUR: separate G and D
    learning rates, SAGAN sec. 4), augmentation, regularizers and fake labels.

    Create it inside `strategy.scope()` to train under `tf.distribute`.

    Args:
      config: a `sagan_tf.config.ExperimentConfig`.
      seed: seed of the training noise (None: random).
      model_class: `SAGAN` or a subclass of it (default `SAGAN`).
      class_frequencies: the training data's count (or share) of each class, needed by
        `config.training.fake_labels == "data"` (e.g. `sagan_tf.data.Dataset.class_frequencies()`); ignored otherwise.
      **compile_kwargs: passed to `SAGAN.compile` (e.g. `jit_compile`).

    Returns:
      The compiled model.

    Raises:
      ValueError: fake_labels "data" without `class_frequencies` for a conditional model.
    """
    from sagan_tf.models.discriminator import Discriminator
    from sagan_tf.models.generator import Generator

    model, training = config.model, config.training
    probabilities = None
    if training.fake_labels == "data" and model.conditional:
        if class_frequencies is None:
            raise ValueError("fake_labels='data' draws fake labels from the training data's class frequencies: pass "
                             "class_frequencies (e.g. Dataset.class_frequencies()).")
        probabilities = tuple(class_frequencies)
    gan = (model_class or SAGAN)(Generator(model), Discriminator(model), model.latent_dim, model.num_classes,
                                 d_steps=training.d_steps, ema_decay=training.ema_decay, ema_start=training.ema_start,
                                 seed=seed, augment=training.augment, augment_policy=training.augment_policy,
                                 ada_target=training.ada_target, ada_interval=training.ada_interval,
                                 ada_kimg=training.ada_kimg, lecam_weight=training.lecam_weight,
                                 orthogonal_reg=training.orthogonal_reg, fake_label_probabilities=probabilities,
                                 grad_accumulation=training.grad_accumulation)
    gan.compile(g_optimizer=keras.optimizers.Adam(training.g_lr, beta_1=training.beta1, beta_2=training.beta2),
                d_optimizer=keras.optimizers.Adam(training.d_lr, beta_1=training.beta1, beta_2=training.beta2),
                loss=training.loss, **compile_kwargs)
    return gan


def default_jit_compile():
    """Whether to XLA-compile the train step when not told: on TensorFlow on with GPUs or TPUs, off on CPU; always on
    JAX (whose uncompiled step dispatches every op on its own).

    On CPU XLA was measured slower on TensorFlow (a 2-core Xeon with AMX: dcgan64 at batch 64, 50.6 -> 37.2 images/s
    in float32 and 72.0 -> 32.5 in mixed_bfloat16, `benchmarks/train_throughput.py`); on GPUs it fuses the many small
    element-wise kernels of a GAN step. Keras's own "auto" is off under any tf.distribute strategy, also for one GPU.
    """
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
