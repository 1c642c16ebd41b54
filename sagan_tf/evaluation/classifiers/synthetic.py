"""The domain classifier that stands in for Inception on the embedded `synthetic` dataset.

Inception's weights cannot be had offline, and its ImageNet features say little about four classes of drawn
scenes anyway. FID and IS of a model trained on `synthetic` (Heusel et al. 2017; Salimans et al. 2016) are
therefore computed with this small CNN, trained by `python -m training.train_classifier` (the training loop is
`train.train_synthetic_classifier`) and shipped inside the package at `SYNTHETIC_CLASSIFIER_PATH`;
`load_classifier("synthetic")` loads it.

The network is a plain Keras functional model made of `keras.layers` only, so the `.keras` file loads with
any Keras 3 backend and without importing sagan_tf. It is the domain classifier architecture
(`network.build_domain_classifier`, which every dataset can have) at 32x32:

    images [n, 32, 32, 3] in [-1, 1]
      -> 3 stages of (3x3 conv, batch norm, ReLU) x 2, 2x2 max-pool between stages (widths 32, 64, 128)
      -> global average pooling                 -> "features" [n, 128]   (what FID and KID compare)
      -> dense                                  -> "logits"   [n, 4]     (what IS uses)

The features are the pooled ReLU activations of the last stage, not a low-dimensional bottleneck, so they
describe more than the class: colours, sizes, positions and the sharpness of edges all move them.
"""

import os

from sagan_tf.evaluation.classifiers.network import build_domain_classifier

#: Where the shipped classifier lives inside the installed package.
SYNTHETIC_CLASSIFIER_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "assets", "synthetic_classifier.keras"
)
#: Input side length of the shipped classifier; other sizes are resized to it by `Classifier`.
SYNTHETIC_CLASSIFIER_IMAGE_SIZE = 32
#: Dimension of the feature vector (the first output) of the shipped classifier.
SYNTHETIC_FEATURE_DIM = 128
DEFAULT_WIDTHS = (32, 64, SYNTHETIC_FEATURE_DIM)


def build_synthetic_classifier(image_size=32, num_classes=4, widths=DEFAULT_WIDTHS, convs_per_stage=2):
    """Builds the (untrained) synthetic-domain classifier: `network.build_domain_classifier` with the
    shipped file's widths and name.

    Args:
        image_size: input side length (a multiple of 4, so that the two 2x2 poolings divide it evenly).
        num_classes: number of logits.
        widths: channels of each stage; the last one is the feature dimension. A max-pool halves the
            resolution between consecutive stages.
        convs_per_stage: 3x3 convolutions (each followed by batch norm and ReLU) per stage.

    Returns:
        A functional `keras.Model` named "synthetic_classifier" mapping images [n, image_size, image_size, 3]
        in [-1, 1] to `[features, logits]`, float32 [n, widths[-1]] and [n, num_classes].
    """
    return build_domain_classifier(image_size, num_classes, widths, convs_per_stage, name="synthetic_classifier")


def evaluate_accuracy(model, image_size=32, num_examples=None, batch_size=256):
    """Fraction of the synthetic 'test' split (its first `num_examples`, default all) classified correctly.

    Args:
        model: a model returning `[features, logits]` (e.g. `build_synthetic_classifier()`).
        image_size: side length of the test images (the model's input size).
        num_examples: how many test images to use (None: the whole split, 10,240).
        batch_size: images per batch.

    Returns:
        The accuracy as a Python float.
    """
    import keras
    import numpy as np

    from sagan_tf.data import synthetic

    total = synthetic.TEST_SIZE if num_examples is None else min(num_examples, synthetic.TEST_SIZE)
    correct = seen = 0
    for start in range(0, total, batch_size):
        indices = np.arange(start, min(start + batch_size, total))
        images, labels = synthetic.generate(indices, image_size, "test")
        _, logits = model(images, training=False)
        predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        seen += len(indices)
    return correct / seen

