"""Which classifiers' logits are a dataset's classes, and how to read them in label order (`class_logits`).

Class accuracy (`sagan_tf.evaluation.metrics.per_class.class_accuracy`) needs logits whose columns are the dataset's
classes: the shipped synthetic classifier on `synthetic`, a domain classifier trained on the dataset's labels (its
card's task "labels" and one class per label), or TF-GAN's Inception on imagenet2012 through its synset map
(`per_class.inception_logit_indices`). Any other pairing (Inception on another dataset, a rotation classifier) has no
such logits. Used by the in-training evaluation (`evaluator.Evaluator`) and the per-class one
(`per_class_evaluator`).
"""

import numpy as np

from sagan_tf import data
from sagan_tf.evaluation.metrics import per_class


def class_logits(classifier, dataset, class_names, num_classes):
    """(function logits -> [n, num_classes] logits in label order, or None; what the mapping is, or why there is
    none) for `classifier`'s logits on `dataset`."""
    name = data.name_of(dataset)
    if classifier.name == "savedmodel" and name == "imagenet2012":  # a local copy of Inception, by its logits
        logits = classifier(np.zeros((1, *classifier.image_size, 3), "float32"))[1]
        inception = logits.shape[1] == per_class.INCEPTION_NUM_LOGITS
    else:
        inception = classifier.name == "inception"
    if inception:
        if name != "imagenet2012":
            return None, f"Inception's logits are ImageNet's classes, not those of {name}"
        try:
            indices = per_class.inception_logit_indices(class_names, per_class.inception_label_map())
        except ValueError as error:  # class names that are not ImageNet synsets
            return None, str(error)
        return (lambda logits: per_class.inception_imagenet_logits(logits, indices),
                "TF-GAN Inception logit label_map[synset of the label] (sagan_tf/evaluation/classifiers/assets/"
                "inception_imagenet_label_map.txt); background (0) and unused (1001-1007) logits dropped")
    card = classifier.card or {}
    labelled = (classifier.name == "synthetic" and name == "synthetic") or (
        classifier.name == "domain" and card.get("task") == "labels" and len(card.get("classes", ())) == num_classes)
    if labelled:
        return (lambda logits: np.asarray(logits)[:, :num_classes],
                f"logit j is label j ({classifier.name} classifier of {name})")
    return None, (f"the logits of the {classifier.name} classifier ({classifier.tag}) are not known to be the "
                  f"classes of {name}")


__all__ = ["class_logits"]
