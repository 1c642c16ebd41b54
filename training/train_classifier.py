r"""Trains a domain classifier, the feature extractor of FID/KID/IS/precision/recall on any dataset.

    python -m training.train_classifier    # sagan_tf/evaluation/classifiers/assets/synthetic_classifier.keras
    python -m training.train_classifier --output=/tmp/c.keras --steps=500
    python -m training.train_classifier --dataset=folder:/data/icons --image_size=32     # any dataset, with a card

With the default --dataset=synthetic it (re)makes the classifier shipped for the embedded synthetic dataset: it
trains on the synthetic 'train' stream with mild noise, prints progress and the accuracy on the held-out 'test'
split, and writes the model only if that accuracy is at least --min_accuracy (default 0.95; else: a one-paragraph
error, exit status 2, and any existing file at --output is left untouched).
`sagan_tf.evaluation.classifiers.load_classifier("synthetic")` loads the shipped file.

For any other dataset (a TFDS name or folder:DIR) it trains a domain classifier (`sagan_tf.evaluation.classifiers`)
on the dataset's train split at --image_size: on its labels, or, for an unlabelled dataset, on which of 4 rotations
was applied (`sagan_tf.evaluation.classifiers.training_data` says which images are held out). It prints progress and
the held-out accuracy, refuses a classifier no better than always answering the most frequent class (or below
--min_accuracy), and writes the model with its card (dataset fingerprint, classes, image size, preprocessing, held-out
accuracy, training time) to --output, by default the cache that `--classifier=domain` of training.run and
training.evaluate reads (`$SAGAN_TF_CACHE/domain_classifiers`), so those commands then reuse it. Both kinds share one
training loop (`sagan_tf.evaluation.classifiers.train.fit_classifier`) and one network
(`sagan_tf.evaluation.classifiers.network`); this module only turns flags into a call of
`sagan_tf.evaluation.classifiers.train`.
"""

import time

from absl import flags

from sagan_tf import cli

#: The dataset whose classifier ships with the package (the default of --dataset).
SHIPPED_DATASET = "synthetic"


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("dataset", SHIPPED_DATASET, "synthetic (the shipped classifier) or any other dataset name, "
                        "e.g. folder:/data/icons or cifar10 (a domain classifier with a card).",
                        flag_values=flag_values)
    flags.DEFINE_integer("image_size", None, "Image size of a domain classifier: the size the GAN trains at. Default: "
                         "the dataset's default size (32 for synthetic).", flag_values=flag_values)
    flags.DEFINE_string("output", None, "The .keras file to write. Default: the file shipped inside the package for "
                        "synthetic; for other datasets the cache that --classifier=domain reads.",
                        flag_values=flag_values)
    flags.DEFINE_integer("steps", None, "Optimizer steps. Default: 2000 for synthetic; for other datasets 30 epochs of "
                         "the training images, between 300 and 3000.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 64, "Images per step.", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, augmentation and the training stream.",
                         flag_values=flag_values)
    flags.DEFINE_float("learning_rate", 2e-3, "Peak Adam learning rate (cosine decay over --steps).",
                       flag_values=flag_values)
    flags.DEFINE_integer("eval_examples", None, "Held-out synthetic test images to measure accuracy on. Default: all "
                         "10,240.", flag_values=flag_values)
    flags.DEFINE_float("min_accuracy", None, "Refuse to write a model with a lower held-out accuracy. Default: 0.95 "
                       "for synthetic; for other datasets only a classifier no better than always answering the most "
                       "frequent class is refused.", flag_values=flag_values)
    flags.DEFINE_integer("log_every", 100, "Steps between progress lines.", flag_values=flag_values)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (also the base of relative folder: paths).",
                        flag_values=flag_values)


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    start = time.time()

    def log(line):
        print(f"[{time.time() - start:7.1f}s] {line}", flush=True)

    from sagan_tf import data
    from sagan_tf.evaluation import cache_dirs
    from sagan_tf.evaluation.classifiers import cache, card, network, synthetic, train

    if values.dataset == SHIPPED_DATASET and values.image_size in (None, 32):
        output = values.output or synthetic.SYNTHETIC_CLASSIFIER_PATH
        min_accuracy = 0.95 if values.min_accuracy is None else values.min_accuracy
        accuracy = train.train_synthetic_classifier(
            output, values.steps or 2000, values.batch_size, values.seed, learning_rate=values.learning_rate,
            eval_examples=values.eval_examples, min_accuracy=min_accuracy, log_every=values.log_every, log_fn=log)
        print(f"held-out accuracy: {accuracy:.4f}; wrote {output} in {time.time() - start:.0f} s")
        return 0
    dataset = data.resolve(values.dataset, values.data_dir)  # once: a folder is scanned once
    image_size = values.image_size or dataset.info.default_image_size
    # Checked before the cache path is made of it (the fingerprint would scan a folder first).
    network.check_positive_int("image_size", image_size)
    output = values.output or cache.cache_path(cache_dirs.cache_dir(cache_dirs.DOMAIN_CLASSIFIERS), dataset.name,
                                               image_size, dataset.fingerprint())
    path, written = train.train_domain_classifier(
        dataset, image_size, output, steps=values.steps, batch_size=values.batch_size, seed=values.seed,
        learning_rate=values.learning_rate, min_accuracy=values.min_accuracy, log_every=values.log_every, log_fn=log)
    print(f"held-out accuracy: {written['heldout_accuracy']:.4f} ({written['task']}, {len(written['classes'])} "
          f"classes, {written['num_heldout']} held-out images); wrote {path} and {card.card_path(path)} in "
          f"{time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
