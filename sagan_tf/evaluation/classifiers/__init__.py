"""The classifiers that measure quality: images in [-1, 1] -> (pool features, logits), the feature extractors of
FID, KID, IS and precision/recall (`sagan_tf.evaluation.metrics` computes the figures from their outputs).

- `classifier`: `Classifier`, the interface (resizing, batching, identity: name, content hash, tag, card).
- `sources`: `load_classifier`: TF-GAN's Inception (TF-Hub or a local SavedModel), any SavedModel or `.keras` file,
  the shipped synthetic classifier ("synthetic").
- `network`: `build_domain_classifier`, the small CNN of every domain classifier; `synthetic`: the one shipped for
  the embedded synthetic dataset.
- `training_data`, `train`: the images a domain classifier learns from (labels, or the rotation pretext for an
  unlabelled dataset; a held-out split) and the training loop. `python -m training.train_classifier` runs it.
- `fingerprint`, `card`, `cache`: what identifies a dataset's images, the card written beside each trained
  classifier, and the cache of trained classifiers (`ensure_domain_classifier`: `--classifier=domain` trains the
  dataset's classifier once, then reuses it).
- `cas`: the Classification Accuracy Score of a class-conditional generator (a classifier of the domain classifier's
  architecture trained on generated images, tested on real held-out ones; `training.evaluate --cas`).

    python -m training.train_classifier --dataset=folder:/data/icons --image_size=32    # trains, caches, writes card
    python -m training.run --dataset=folder:/data/icons --image_size=32 --classifier=domain

What a domain classifier learns: the dataset's labels when it has classes; for an unlabelled dataset, a
self-supervised pretext (Gidaris et al., ICLR 2018): which of 4 rotations (0, 90, 180, 270 degrees) was applied. Its
logits are then rotation logits, so its Inception Score only says how confidently upright images look (close to 1 for
upright images); FID, KID, precision and recall use the features and keep their meaning.

Importing this package is cheap: the submodules (TensorFlow, Keras, TF-Hub) load on first use.
"""

from sagan_tf._lazy import lazy_exports

_EXPORTS = {
    "Classifier": "classifier",
    "load_classifier": "sources",
    "INCEPTION_HANDLE": "sources",
    "INCEPTION_CLASSIFIER": "sources",
    "SYNTHETIC_CLASSIFIER": "sources",
    "DOMAIN_CLASSIFIER": "sources",
    "build_domain_classifier": "network",
    "dataset_fingerprint": "fingerprint",
    "SYNTHETIC_CLASSIFIER_PATH": "synthetic",
    "SYNTHETIC_FEATURE_DIM": "synthetic",
    "build_synthetic_classifier": "synthetic",
    "cache_path": "cache",
    "ensure_domain_classifier": "cache",
    "train_domain_classifier": "train",
    "train_synthetic_classifier": "train",
    "classification_accuracy_score": "cas",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
