"""Per-class evaluation of a class-conditional run: does each class look like its class?

    record = per_class_evaluator.evaluate_per_class("runs/synthetic32", evaluation.EvalConfig(),
                                                     samples_per_class=500, classes=None)

For each class (all of them, or a seeded subset of `classes`), `samples_per_class` images are generated with that
label (z ~ N(0, I) drawn from `numpy.random.default_rng([seed, class])`, so a class gets the same images whether
or not it is in a subset) and up to `samples_per_class` real images of the class are read from the real split (the
split's first images of the class, unshuffled; a class with fewer has what it has, and its count is reported). Both
go through the evaluation's classifier (`evaluation.load_classifier_for`), and
`sagan_tf.evaluation.metrics.per_class` gives per class: FID, KID, precision and recall against the class's real
images, and the accuracy (top-1, top-5 with more than 5 classes) of the classifier on the generated images against the
label they were generated with, beside its accuracy on the real held-out images of the class (the ceiling: the domain
classifier's held-out split, `classifiers.training_data`) and chance (1 / classes).

Class accuracy needs logits that are the dataset's classes: the shipped synthetic classifier on `synthetic`, a
domain classifier trained on the dataset's labels, or TF-GAN's Inception on imagenet2012 through its synset map
(`per_class.inception_logit_indices`). With any other classifier the accuracies are None and the record says why.

Writes into `<model_dir>/eval/`:

    per_class_step_<step, 8 digits>.json   the record: the mean figures, one row per class, the provenance
    per_class_step_<step>.csv              the table: class, name, counts, FID, KID, accuracy, precision, recall
    per_class_step_<step>.png              the worst and the best classes by FID: per class a row of generated
                                           images above a row of real ones, labelled with the class name

("_noema" before the extension for the raw generator.)
"""

import csv
import io
import os
import time

import numpy as np

from sagan_tf import data, errors
from sagan_tf.evaluation import evaluator as evaluation
from sagan_tf.evaluation.class_logits import class_logits
from sagan_tf.sampling import images
from sagan_tf.evaluation.metrics import per_class

#: Images generated (and real images read at most) per class by default.
DEFAULT_SAMPLES_PER_CLASS = 500
#: Classes shown at each end (worst, best) of the picture, and images per row.
PICTURE_CLASSES = 3
PICTURE_IMAGES = 8
#: Columns of the CSV table, in order.
CSV_COLUMNS = ("class", "name", "count_generated", "count_real", "fid", "kid", "accuracy", "accuracy_top5",
               "real_heldout_accuracy", "precision", "recall", "rank_deficient")


def choose_classes(num_classes, count=None, seed=0):
    """The classes evaluated: all of them (`count` None or 0), or `count` of them drawn without replacement with
    `seed`, ascending.

    Raises:
      UsageError: `count` is negative or more than the classes.
    """
    if not count:
        return np.arange(num_classes)
    if count < 0 or count > num_classes:
        raise errors.UsageError(f"--classes takes a number of classes between 1 and {num_classes} (the run's "
                                f"classes), or 0 for all. Received: classes={count}")
    return np.sort(np.random.default_rng(seed).choice(num_classes, count, replace=False))


def _generate(sample, latent_dim, label, count, batch_size, seed):
    """Images of class `label` in [-1, 1]: `count` of them, z from `default_rng([seed, label])`, by `sample`
    (`evaluator.inference_sampler`: one traced function for every class and batch)."""
    rng = np.random.default_rng([seed, int(label)])
    z = rng.standard_normal((count, latent_dim)).astype("float32")
    labels = np.full(count, label, "int32")
    return [np.asarray(sample(z[i:i + batch_size], labels[i:i + batch_size])) for i in range(0, count, batch_size)]


def _real_images(dataset, split, image_size, chosen, per_class_count, batch_size):
    """{class: up to `per_class_count` real images of `split`} of the `chosen` classes, in the split's order."""
    wanted = {int(c): [] for c in chosen}
    folder = dataset.source == "folder"
    total = dataset.num_images if folder else None
    batches = data.load(dataset, split, image_size=image_size, batch_size=batch_size, shuffle=False,
                        random_flip=False, repeat=folder)  # a folder's loader drops a last partial batch
    seen = 0
    for real, labels in batches:
        real, labels = np.asarray(real), np.asarray(labels)
        if total is not None:
            real, labels = real[:total - seen], labels[:total - seen]
        seen += len(labels)
        for c, kept in wanted.items():
            room = per_class_count - sum(len(x) for x in kept)
            if room > 0:
                kept.append(real[labels == c][:room])
        if all(sum(len(x) for x in kept) >= per_class_count for kept in wanted.values()):
            break
        if total is not None and seen >= total:
            break
    return {c: (np.concatenate(kept) if kept else np.zeros((0, image_size, image_size, 3), "float32"))
            for c, kept in wanted.items()}


def _heldout_accuracy(dataset, image_size, classifier, to_class_logits, chosen):
    """({class: top-1 accuracy of the classifier on its held-out real images}, count of them, what the split is), or
    ({}, 0, why not)."""
    from sagan_tf.evaluation.classifiers import training_data

    try:
        heldout = training_data.classifier_data(dataset, image_size).heldout
    except errors.DatasetError as error:
        return {}, 0, f"no held-out images ({error})"
    logits, labels = [], []
    for batch, batch_labels in heldout:
        logits.append(to_class_logits(classifier(batch)[1]))
        labels.append(np.asarray(batch_labels))
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    accuracy = per_class.class_accuracy(logits, labels, classes=chosen)
    return ({c: row["top1"] for c, row in accuracy["per_class"].items()}, len(labels),
            "the held-out images of sagan_tf.evaluation.classifiers.training_data (a folder's hashed held-out share, "
            "a TFDS test or validation split, the synthetic test split)")


def _table_csv(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: "" if row[column] is None else row[column] for column in CSV_COLUMNS})
    return buffer.getvalue()


def picture(rows, generated, real):
    """The worst and best `PICTURE_CLASSES` classes by FID: a row of generated images above a row of real ones per
    class, labelled "<name> generated (FID x)" and "<name> real"; a uint8 array."""
    ranked = [row for row in sorted(rows, key=lambda row: -row["fid"]) if row["fid"] is not None]
    shown = ranked if len(ranked) <= 2 * PICTURE_CLASSES else ranked[:PICTURE_CLASSES] + ranked[-PICTURE_CLASSES:]
    tiles, labels = [], []
    blank = None
    for row in shown:
        for kind, source in (("generated", generated), ("real", real)):
            pixels = images.to_uint8(source[row["class"]][:PICTURE_IMAGES])
            blank = np.full(pixels.shape[1:], 255, "uint8") if blank is None else blank
            tiles += list(pixels) + [blank] * (PICTURE_IMAGES - len(pixels))
            place = "worst" if ranked.index(row) < len(ranked) / 2 else "best"
            labels.append(f"{row['name']} {kind}" + (f" (FID {row['fid']:.1f}, {place})" if kind == "generated"
                                                    else ""))
    return images.make_grid(np.stack(tiles), len(labels), PICTURE_IMAGES, row_labels=labels)


def evaluate_per_class(model_dir, config, samples_per_class=DEFAULT_SAMPLES_PER_CLASS, classes=None,
                       checkpoint=None, use_ema=True, data_dir=None, print_fn=print):
    """Per-class FID, KID, precision, recall and class accuracy of a class-conditional run (module docstring);
    writes eval/per_class_step_<step>.json, .csv and .png and returns the record.

    Args:
      model_dir: the training run directory.
      config: the `evaluation.EvalConfig` (its classifier, split, batch_size, seed, nearest_k, cache dirs).
      samples_per_class: images generated per class, and real images read at most per class (>= 2).
      classes: None or 0 (all classes), or the size of a subset drawn with `config.seed`.
      checkpoint, use_ema, data_dir: as `training.evaluate.evaluate_run`.
      print_fn: where progress lines go.

    Raises:
      UsageError: an unconditional run, bad counts, and what the evaluation raises (no run, no classifier).
    """
    from sagan_tf.run import atomic_write, restore, write_failures
    from sagan_tf.evaluation.classifiers import cache as classifier_cache
    from sagan_tf.run.run_dir import RunDirectory, write_json_atomically

    if not model_dir:
        raise errors.UsageError("--model_dir is required: the directory `python -m training.run` trained into.")
    run = RunDirectory(model_dir)
    run_config = run.read_config()
    if not run_config.model.conditional:
        raise errors.UsageError(
            f"--per_class measures each class of a class-conditional generator, and {model_dir} trained an "
            f"unconditional one (num_classes=0, dataset {run_config.training.dataset}): it draws no image for a "
            "given class, so there is nothing to compare class by class. Evaluate it without --per_class (FID, "
            "KID, precision and recall over all images), or train a conditional run on a dataset with classes.")
    if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, (int, np.integer)) \
            or samples_per_class < 2:
        raise errors.UsageError("--per_class_samples takes the images per class, at least 2 (FID and KID need 2). "
                                f"Received: per_class_samples={samples_per_class!r}")
    num_classes = run_config.model.num_classes
    chosen = choose_classes(num_classes, classes, config.seed)
    restored = restore.restore_generator(model_dir, checkpoint, use_ema=use_ema, data_dir=data_dir)
    image_size, latent_dim = run_config.model.image_size, run_config.model.latent_dim
    dataset = data.resolve(run_config.training.dataset, data_dir)
    classifier_cache.ensure_domain_classifier(dataset, image_size, config, print_fn=print_fn)
    classifier = evaluation.load_classifier_for(dataset, config.classifier, config.batch_size, image_size=image_size,
                                                classifier_dir=config.classifier_dir)
    names = list(restored.class_names)
    to_class_logits, mapping = class_logits(classifier, dataset, names, num_classes)
    start = time.perf_counter()
    print_fn(f"Per-class evaluation of {restored.checkpoint} (step {restored.step}): {len(chosen)} of {num_classes} "
             f"classes, {samples_per_class} generated and at most {samples_per_class} real images each.")

    progress_every = max(1, len(chosen) // 10)
    generated, generated_features, generated_logits = {}, {}, {}
    sample = evaluation.inference_sampler(restored.generator, latent_dim)
    for index, c in enumerate(chosen, 1):
        batches = _generate(sample, latent_dim, c, samples_per_class, config.batch_size, config.seed)
        outputs = [classifier(batch) for batch in batches]
        generated[int(c)] = batches[0][:PICTURE_IMAGES]
        generated_features[int(c)] = np.concatenate([f for f, _ in outputs])
        generated_logits[int(c)] = np.concatenate([l for _, l in outputs])
        if index % progress_every == 0 or index == len(chosen):
            print_fn(f"  generated and classified {index}/{len(chosen)} classes "
                     f"({time.perf_counter() - start:.1f} s)")
    real = _real_images(dataset, config.split, image_size, chosen, samples_per_class, config.batch_size)
    real_features = {c: (classifier(x)[0] if len(x) else np.zeros((0, generated_features[c].shape[1])))
                     for c, x in real.items()}
    print_fn(f"  read and classified {sum(len(x) for x in real.values())} real images "
             f"({time.perf_counter() - start:.1f} s)")

    accuracy, ceiling, heldout_count, heldout_source = None, {}, 0, None
    if to_class_logits is not None:
        labels = np.concatenate([np.full(len(generated_logits[int(c)]), c) for c in chosen])
        logits = to_class_logits(np.concatenate([generated_logits[int(c)] for c in chosen]))
        accuracy = per_class.class_accuracy(logits, labels, classes=chosen)
        ceiling, heldout_count, heldout_source = _heldout_accuracy(dataset, image_size, classifier, to_class_logits,
                                                                   chosen)
    rows = []
    for index, c in enumerate(chosen, 1):
        figures = per_class.per_class_figures(real_features[int(c)], generated_features[int(c)], k=config.nearest_k,
                                              kid_max_block_size=evaluation.KID_MAX_BLOCK_SIZE)
        class_accuracy = accuracy["per_class"][int(c)] if accuracy else {"top1": None, "top5": None}
        rows.append({"class": int(c), "name": images.class_name(c, names), **figures,
                     "accuracy": class_accuracy["top1"], "accuracy_top5": class_accuracy["top5"],
                     "real_heldout_accuracy": ceiling.get(int(c))})
        if index % progress_every == 0 or index == len(chosen):
            print_fn(f"  figures of {index}/{len(chosen)} classes ({time.perf_counter() - start:.1f} s)")
    feature_dim = generated_features[int(chosen[0])].shape[1]
    tag = classifier.tag
    summary = {
        "intra_fid": per_class.mean_over_classes(row["fid"] for row in rows),
        "intra_kid": per_class.mean_over_classes(row["kid"] for row in rows),
        "class_accuracy": accuracy["top1"] if accuracy else None,
        "class_accuracy_top5": accuracy["top5"] if accuracy else None,
        "real_heldout_accuracy": per_class.mean_over_classes(ceiling.values()) if ceiling else None,
        "chance": 1.0 / num_classes,
        "intra_precision": per_class.mean_over_classes(row["precision"] for row in rows),
        "intra_recall": per_class.mean_over_classes(row["recall"] for row in rows),
    }
    suffix = "" if restored.ema else "_noema"
    record = {
        **restore.describe(restored),
        "model_dir": run.path,
        "dataset": dataset.name,
        "classifier": config.classifier or evaluation.default_classifier(dataset.name),
        "classifier_tag": tag,
        "figures": {f"{tag}/{name}": value for name, value in summary.items()},
        "classes": rows,
        "rank_deficient_classes": [row["name"] for row in rows if row["rank_deficient"]],
        "seconds": time.perf_counter() - start,
        "provenance": {
            "classifier": classifier.describe(),
            "resize": evaluation.describe_resize(image_size, classifier),
            "dataset": dataset.name,
            "real_split": f"{config.split} (the split's first images of each class, unshuffled, at most "
                          f"{samples_per_class} each)",
            "generated_per_class": int(samples_per_class),
            "real_per_class_at_most": int(samples_per_class),
            "classes": {"evaluated": len(chosen), "of": int(num_classes),
                        "subset_seed": config.seed if classes else None, "ids": [int(c) for c in chosen]},
            "latents": "z ~ N(0, I) from numpy.random.default_rng([seed, class]), untruncated",
            "seed": config.seed,
            "nearest_k": config.nearest_k,
            "feature_dim": int(feature_dim),
            "rank_deficient": f"a class with fewer than {feature_dim + 1} images on a side has a rank-deficient "
                              "covariance: its FID is inflated",
            "class_logits": mapping,
            "heldout": {"count": heldout_count, "source": heldout_source},
            "step": restored.step,
            "generator": "ema" if restored.ema else "raw",
        },
    }
    stem = os.path.join(run.eval_dir, f"per_class_step_{restored.step:08d}{suffix}")
    with write_failures.reporting("per-class evaluation", stem, last_good=restored.checkpoint):
        write_json_atomically(stem + ".json", record, "per-class evaluation record")
        atomic_write.write_atomically(stem + ".csv", _table_csv(rows), "per-class table")
        images.save_png(picture(rows, generated, real), stem + ".png", "per-class picture")
    print_fn(f"Wrote {stem}.json, .csv and .png.")
    return record


__all__ = ["DEFAULT_SAMPLES_PER_CLASS", "CSV_COLUMNS", "choose_classes", "picture",
           "evaluate_per_class"]
