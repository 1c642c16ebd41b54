"""The Classification Accuracy Score (CAS; Ravuri & Vinyals, "Classification Accuracy Score for Conditional
Generative Models", NeurIPS 2019) of a class-conditional generator.

A classifier of the domain classifier's architecture (`network.build_domain_classifier`) is trained from scratch only
on generated images, each labelled with the class it was generated for, and tested on real held-out images: its
top-1 (and top-5, with more than 5 classes) accuracy is the CAS. Beside it, the same classifier, from the same
initial weights and with the same steps, augmentation and seeds, is trained on as many real training images per
class and tested on the same held-out images: the real reference. CAS / real says how much of what a classifier can
learn from the real images it learns from the generated ones (1: as much; chance / real: nothing). A generator that
ignores the label, or draws one mode per class, scores low even with a good FID.

Images per class: as many as the real training split holds (the folder's training part, a TFDS train split), or
`CASConfig.samples_per_class`; the synthetic training stream is endless, so it takes `SYNTHETIC_SAMPLES_PER_CLASS`.
The held-out images are the domain classifier's (`training_data.classifier_data`):

- synthetic: the first `training_data.MAX_HELDOUT` images of the "test" split, which no training stream contains;
- a TFDS dataset: its "test" split (else "validation"); a dataset with neither is refused;
- an image folder has one split: the seeded carve-out of `training_data.split_folder` (15% of each class, chosen by a
  hash of the path, at least 2). The real reference never trains on it, but the GAN trained on the whole folder, so
  a generator that copies training images scores higher than it would on unseen images; the record says so
  (`heldout_seen_by_generator`).

Training is `train.fit_classifier` with the domain classifier's recipe (Adam, cosine decay, `train.default_steps`:
30 epochs within [300, 3000] steps) and augmentation (random flips and translations). Images of both training sets
are kept in memory as 8-bit values (a generated image is stored as a saved PNG would hold it), at most
`MAX_TRAINING_BYTES` each.
"""

import dataclasses
import math
import time
from typing import Optional

import numpy as np

from sagan_tf.evaluation.classifiers import network, train, training_data
from sagan_tf.errors import UsageError
from sagan_tf.sampling.images import to_uint8

#: Images per class of the synthetic dataset, whose training stream is endless (as many as its test split holds).
SYNTHETIC_SAMPLES_PER_CLASS = 2560
#: The largest training set (generated or real) kept in memory, in bytes of 8-bit images.
MAX_TRAINING_BYTES = 1 << 30
#: Top-k accuracy reported besides top-1, when there are more classes than this.
TOP_K = 5


@dataclasses.dataclass(frozen=True)
class CASConfig:
    """How the CAS is measured.

    Attributes:
      samples_per_class: generated images per class; None: as many as the real training split holds of each class
        (`SYNTHETIC_SAMPLES_PER_CLASS` for the synthetic stream). The real reference trains on as many real ones
        (all of a class when it holds fewer).
      seed: seed of the latents, of the classifiers' initial weights, shuffling and augmentation.
      steps: optimizer steps of each classifier; None: `train.default_steps` of the training set's size.
      batch_size: classifier training batch.
      learning_rate: peak Adam learning rate.
      generation_batch_size: images generated per call of the generator.
      real_reference: also train and test the classifier on real images (the reference and the ratio).
    """

    samples_per_class: Optional[int] = None
    seed: int = 0
    steps: Optional[int] = None
    batch_size: int = 64
    learning_rate: float = 2e-3
    generation_batch_size: int = 250
    real_reference: bool = True

    def __post_init__(self):
        for name in ("samples_per_class", "steps"):
            if getattr(self, name) is not None:
                network.check_positive_int(name, getattr(self, name))
        network.check_positive_int("batch_size", self.batch_size)
        network.check_positive_int("generation_batch_size", self.generation_batch_size)


def generator_sampler(generator, latent_dim):
    """A `sample(labels, rng)` function for `classification_accuracy_score` from a class-conditional generator: z ~
    N(0, I) drawn from `rng` (a NumPy Generator), images in inference mode."""
    from sagan_tf.evaluation import evaluator as evaluation

    sample = evaluation.inference_sampler(generator, latent_dim)

    def sample_images(labels, rng):
        z = rng.standard_normal((len(labels), latent_dim)).astype("float32")
        return sample(z, labels)

    return sample_images


def _check_memory(count, image_size, what):
    size = count * image_size * image_size * 3
    if size > MAX_TRAINING_BYTES:
        raise UsageError(
            f"The CAS keeps its {what} in memory: {count} images of {image_size}x{image_size} take "
            f"{size / 2**30:.1f} GiB, above the limit of {MAX_TRAINING_BYTES / 2**30:.0f} GiB. Pass fewer images per "
            f"class (--cas_samples_per_class). Received: {count} images")


def check_heldout_split(dataset):
    """Refuses a dataset with no held-out split: a TFDS dataset without "test" or "validation" (an image folder's
    held-out images are carved out of it, the synthetic dataset has "test").

    Raises:
      UsageError: the dataset has no held-out split.
    """
    if dataset.source == "tfds" and not {"test", "validation"} & set(dataset.info.splits):
        raise UsageError(
            f"The CAS tests its classifiers on real held-out images, and {dataset.name} has no held-out split (no "
            f"'test' or 'validation'; its splits: {', '.join(dataset.info.splits)}). Testing on the training split "
            "would measure how well the generated images match images the GAN trained on. Train on an image folder "
            "of the same images instead (a held-out 15% of each class is set apart).")


def real_training_images(dataset, image_size, samples_per_class=None, seed=0):
    """The real training images of a labelled dataset, as 8-bit images, at most `samples_per_class` of each class.

    An image folder: its training part (`training_data.split_folder`, without the held-out images), a seeded choice
    of each class's images when there are more. A TFDS dataset: its "train" split in order, read until each class
    has `samples_per_class` images (all of it for None). Synthetic: the first images of its training stream.

    Returns:
      (images uint8 [n, s, s, 3], labels int32 [n], the split's description).

    Raises:
      UsageError: a synthetic dataset without `samples_per_class`; more images than `MAX_TRAINING_BYTES`.
    """
    import tensorflow as tf

    from sagan_tf import data

    num_classes = dataset.info.num_classes
    if dataset.source == "folder":
        scanned = dataset.folder_scan
        pairs, _ = training_data.split_folder(list(scanned.files), list(scanned.labels), scanned.path)
        rng = np.random.default_rng(seed)
        chosen = []
        for label in range(num_classes):
            files = [file for file, file_label in pairs if file_label == label]
            if samples_per_class is not None and len(files) > samples_per_class:
                files = [files[i] for i in sorted(rng.choice(len(files), samples_per_class, replace=False))]
            chosen += [(file, label) for file in files]
        _check_memory(len(chosen), image_size, "real training images")
        decoded = tf.data.Dataset.from_tensor_slices(([f for f, _ in chosen], [l for _, l in chosen]))
        decoded = decoded.map(lambda f, l: (training_data.load_image(f, image_size), tf.cast(l, tf.int32)),
                              num_parallel_calls=2).ignore_errors(log_warning=True).batch(256)
        batches = [(to_uint8(images), labels.numpy()) for images, labels in decoded]
        split = (f"the folder's training part (all but the held-out {training_data.HELDOUT_FRACTION:.0%} of each "
                 "class)")
    else:
        if samples_per_class is None and dataset.source == "synthetic":
            raise UsageError("The synthetic training stream is endless: pass samples_per_class.")
        want = np.full(num_classes, np.inf if samples_per_class is None else samples_per_class)
        have = np.zeros(num_classes, np.int64)
        batches = []
        for images, labels in data.load(dataset, "train", image_size=image_size, batch_size=256, shuffle=False,
                                        random_flip=False, repeat=False):
            labels = labels.numpy().astype(np.int32)
            keep = np.zeros(len(labels), bool)
            for i, label in enumerate(labels):
                if have[label] < want[label]:
                    keep[i], have[label] = True, have[label] + 1
            if keep.any():
                _check_memory(int(have.sum()), image_size, "real training images")
                batches.append((to_uint8(images.numpy()[keep]), labels[keep]))
            if np.all(have >= want):
                break
        split = "the first images of the training stream" if dataset.source == "synthetic" else (
            "the 'train' split, in order")
    if not batches:
        raise UsageError(f"No real training image of {dataset.name} could be read for the CAS's real reference.")
    return (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]).astype(np.int32),
            split)


def generated_images(sample, counts, image_size, seed=0, batch_size=250):
    """`counts[c]` images of each class c from `sample(labels, rng)`, as 8-bit images, with a NumPy generator of
    `seed`.

    Returns:
      (images uint8 [sum(counts), s, s, 3], labels int32: class 0's first, then class 1's, ...).
    """
    _check_memory(int(np.sum(counts)), image_size, "generated images")
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    rng = np.random.default_rng(seed)
    images = np.empty((len(labels), image_size, image_size, 3), np.uint8)
    for start in range(0, len(labels), batch_size):
        stop = min(start + batch_size, len(labels))
        batch = to_uint8(sample(labels[start:stop], rng))
        if batch.shape != (stop - start, image_size, image_size, 3):
            raise ValueError(f"sample returned images of shape {batch.shape}; expected "
                             f"{(stop - start, image_size, image_size, 3)}")
        images[start:stop] = batch
    return images, labels


def _training_batches(images, labels, batch_size, image_size, seed):
    """An endless, shuffled, augmented (the domain classifier's augmentation) stream of batches in [-1, 1]."""
    import tensorflow as tf

    from sagan_tf.data import preprocessing

    batches = tf.data.Dataset.from_tensor_slices((images, labels))
    batches = batches.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
    batches = batches.batch(min(batch_size, len(labels)), drop_remainder=True)
    batches = batches.map(lambda x, y: (tf.cast(x, tf.float32) / 127.5 - 1.0, y))
    return preprocessing.without_autotune(
        training_data.augmented_batches(batches, image_size, rotation=False, seed=seed).prefetch(2))


def topk_accuracies(model, heldout, num_classes):
    """Top-1 and top-`TOP_K` accuracy (None with `TOP_K` classes or fewer) of `model` ([features, logits]) on the
    (images, labels) batches of `heldout`."""
    import keras

    top1 = topk = seen = 0
    for images, labels in heldout:
        _, logits = model(images, training=False)
        logits = keras.ops.convert_to_numpy(logits)
        labels = np.asarray(labels)
        top1 += int(np.sum(np.argmax(logits, axis=-1) == labels))
        if num_classes > TOP_K:
            best = np.argpartition(-logits, TOP_K - 1, axis=-1)[:, :TOP_K]
            topk += int(np.sum(np.any(best == labels[:, None], axis=-1)))
        seen += len(labels)
    if not seen:
        raise UsageError("No held-out image could be read to test the CAS classifiers.")
    return top1 / seen, (topk / seen if num_classes > TOP_K else None)


def train_and_test(images, labels, heldout, num_classes, image_size, config, steps, log):
    """Trains a domain classifier from scratch on (images, labels) and tests it on `heldout`.

    Returns:
      {"top1", "top5" (None with 5 classes or fewer), "seconds"}.
    """
    import keras

    start = time.perf_counter()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        keras.utils.set_random_seed(config.seed)  # the same initial weights for both classifiers
        model = network.build_domain_classifier(image_size, num_classes, name="cas_classifier")
        epoch = math.ceil(len(labels) / min(config.batch_size, len(labels)))  # steps per pass over the images
        train.fit_classifier(model, _training_batches(images, labels, config.batch_size, image_size, config.seed),
                             steps, config.learning_rate, max(epoch, math.ceil(steps / 30)), log)
        top1, top5 = topk_accuracies(model, heldout, num_classes)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return {"top1": top1, "top5": top5, "seconds": time.perf_counter() - start}


def _ratio(value, reference):
    return None if value is None or not reference else value / reference


def classification_accuracy_score(sample, dataset, image_size, config=None, print_fn=print):
    """The CAS of the images `sample` draws, beside the real reference (module docstring).

    Args:
      sample: `sample(labels int32 [n], rng)` -> images [n, image_size, image_size, 3] in [-1, 1] of those classes
        (`generator_sampler` of a generator); `rng` is a NumPy Generator to draw from.
      dataset: the labelled `sagan_tf.data.Dataset` the generator learned.
      image_size: side length of the generated images.
      config: a `CASConfig` (None: the defaults).
      print_fn: where progress lines go.

    Returns:
      {"figures": {"cas/top1", "cas/top5", "cas/real_top1", "cas/real_top5", "cas/ratio_top1", "cas/ratio_top5",
      "cas/chance_top1"} (top-5 figures None with 5 classes or fewer, real and ratio None without the reference),
      "provenance": {...}, "seconds": float, "images": images trained on and tested, in all}.

    Raises:
      UsageError: an unlabelled dataset, no held-out split, too many images for memory.
    """
    config = CASConfig() if config is None else config
    start = time.perf_counter()
    say = print_fn or (lambda line: None)
    info = dataset.info
    if not info.conditional:
        raise UsageError(f"The CAS needs a labelled dataset, and {dataset.name} has no classes.")
    check_heldout_split(dataset)
    num_classes = info.num_classes
    per_class = config.samples_per_class
    if per_class is None and dataset.source == "synthetic":
        per_class = SYNTHETIC_SAMPLES_PER_CLASS
    heldout = training_data.classifier_data(dataset, image_size, config.batch_size, config.seed)

    real_images, real_labels, train_split = real_training_images(dataset, image_size, per_class, config.seed)
    real_counts = np.bincount(real_labels, minlength=num_classes)
    counts = real_counts if per_class is None else np.full(num_classes, per_class)
    say(f"CAS: generating {int(counts.sum())} images ({_describe_counts(counts)} per class).")
    began = time.perf_counter()
    images, labels = generated_images(sample, counts, image_size, config.seed, config.generation_batch_size)
    generation_seconds = time.perf_counter() - began
    batch_size = min(config.batch_size, len(labels))  # as `_training_batches` batches
    steps = config.steps or train.default_steps(len(labels), batch_size)
    epochs = steps * batch_size / len(labels)
    say(f"CAS: generated in {generation_seconds:.1f} s; training a classifier on them for {steps} steps of "
        f"{batch_size} ({epochs:.1f} epochs), tested on {heldout.num_heldout} real held-out images.")
    generated = train_and_test(images, labels, heldout.heldout, num_classes, image_size, config, steps,
                               lambda line: say(f"CAS (generated) {line}"))
    say(f"CAS: top-1 {generated['top1']:.4f}" + _top5_text(generated) + f" ({generated['seconds']:.0f} s)")
    del images
    real = None
    if config.real_reference:
        say(f"CAS: training the real reference on {len(real_labels)} real training images "
            f"({_describe_counts(real_counts)} per class), the same steps and seed.")
        if np.any(real_counts < counts):
            say(f"CAS: note: the real training split holds fewer images of some classes than were generated "
                f"({_describe_counts(real_counts)} against {_describe_counts(counts)}).")
        real = train_and_test(real_images, real_labels, heldout.heldout, num_classes, image_size, config, steps,
                              lambda line: say(f"CAS (real) {line}"))
        say(f"CAS: real reference top-1 {real['top1']:.4f}" + _top5_text(real) + f" ({real['seconds']:.0f} s)")
    seconds = time.perf_counter() - start
    figures = {
        "cas/top1": generated["top1"], "cas/top5": generated["top5"],
        "cas/real_top1": real and real["top1"], "cas/real_top5": real and real["top5"],
        "cas/ratio_top1": _ratio(generated["top1"], real and real["top1"]),
        "cas/ratio_top5": _ratio(generated["top5"], real and real["top5"]),
        "cas/chance_top1": 1.0 / num_classes,
    }
    provenance = {
        "method": "Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained only on generated "
                  "images, tested on real held-out images; beside it the same classifier trained on real images",
        "dataset": dataset.name,
        "classes": list(dataset.class_names() or [str(c) for c in range(num_classes)]),
        "image_size": image_size,
        "generated_per_class": [int(c) for c in counts],
        "real_per_class": [int(c) for c in real_counts] if config.real_reference else None,
        "samples_per_class": config.samples_per_class,
        "train_split": train_split,
        "heldout_split": _heldout_description(dataset, heldout.num_heldout),
        "num_heldout": heldout.num_heldout,
        "heldout_seen_by_generator": dataset.source == "folder",
        "majority_accuracy": heldout.majority_accuracy,
        "seed": config.seed,
        "classifier": {"builder": "sagan_tf.evaluation.classifiers.network.build_domain_classifier",
                       "widths": list(network.default_widths(image_size)), "convs_per_stage": 2,
                       "initial_weights": f"keras.utils.set_random_seed({config.seed}), the same for both"},
        "training": {"steps": steps, "epochs": epochs, "batch_size": batch_size,
                     "learning_rate": config.learning_rate, "optimizer": "Adam", "schedule": "cosine decay to 2%",
                     "augmentation": heldout.augmentation, "storage": "8-bit images"},
        "seconds": {"generation": generation_seconds, "generated_classifier": generated["seconds"],
                    "real_classifier": real and real["seconds"], "total": seconds},
    }
    images_used = int(counts.sum()) + heldout.num_heldout + (len(real_labels) + heldout.num_heldout if real else 0)
    return {"figures": figures, "provenance": provenance, "seconds": seconds, "images": images_used}


def _top5_text(result):
    return "" if result["top5"] is None else f", top-{TOP_K} {result['top5']:.4f}"


def _describe_counts(counts):
    low, high = int(np.min(counts)), int(np.max(counts))
    return f"{low}" if low == high else f"{low} to {high}"


def _heldout_description(dataset, count):
    if dataset.source == "folder":
        return (f"the folder's held-out {training_data.HELDOUT_FRACTION:.0%} of each class (at least 2; chosen by a "
                "hash of the path, as the domain classifier's), which the GAN trained on")
    if dataset.source == "synthetic":
        return f"the first {count} images of the 'test' split, which no training stream contains"
    split = "test" if "test" in dataset.info.splits else "validation"
    return f"the first {count} images of the '{split}' split"


def summary_line(record):
    """One line of a CAS record: "CAS top-1 0.8084 (real 0.9992, ratio 0.809)[, top-5 ...]; chance 0.2500; 1000
    generated images, 5000 held-out, 469 steps, 232 s"."""
    figures = record["figures"]

    def part(k):
        value = figures[f"cas/top{k}"]
        if value is None:
            return ""
        real = figures[f"cas/real_top{k}"]
        reference = "" if real is None else f" (real {real:.4f}, ratio {figures[f'cas/ratio_top{k}']:.3f})"
        return f"top-{k} {value:.4f}{reference}"

    parts = [p for p in (part(1), part(TOP_K)) if p]
    provenance = record["provenance"]
    return (f"CAS {', '.join(parts)}; chance {figures['cas/chance_top1']:.4f}; "
            f"{sum(provenance['generated_per_class'])} generated images, {provenance['num_heldout']} held-out, "
            f"{provenance['training']['steps']} steps, {record['seconds']:.0f} s")


__all__ = ["CASConfig", "classification_accuracy_score", "generator_sampler", "generated_images",
           "real_training_images", "check_heldout_split", "topk_accuracies", "train_and_test", "summary_line",
           "SYNTHETIC_SAMPLES_PER_CLASS", "MAX_TRAINING_BYTES", "TOP_K"]
