"""`load_classifier`: a `Classifier` from a TF-Hub handle, a SavedModel directory, a `.keras` file (a domain
classifier when it has a card), or the shipped synthetic-domain classifier ("synthetic")."""

import hashlib
import os

from sagan_tf.evaluation.classifiers import card as card_module
from sagan_tf.evaluation.classifiers import synthetic
from sagan_tf.evaluation.classifiers.classifier import Classifier
from sagan_tf.errors import ClassifierUnavailableError

#: TF-GAN's Inception network (the one used for SAGAN's FID/IS): images in [-1, 1] at 299x299 ->
#: {"pool_3": [n, 2048], "logits": [n, 1008]}.
INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_IMAGE_SIZE = 299
_REMOTE_PREFIXES = ("http://", "https://", "gs://")
#: The spec that names the classifier shipped for the embedded synthetic dataset (see `synthetic`).
SYNTHETIC_CLASSIFIER = "synthetic"
#: The spec that names TF-GAN's Inception from TF-Hub (`INCEPTION_HANDLE`); None means the same.
INCEPTION_CLASSIFIER = "inception"
#: The spec that names the domain classifier of the evaluated dataset and image size (`cache`); the
#: evaluation finds it in the cache (`sagan_tf.evaluation.load_classifier_for`), the commands train it when missing.
DOMAIN_CLASSIFIER = "domain"


def _offline_instructions(handle):
    cache_name = hashlib.sha1(handle.encode("utf-8")).hexdigest()
    return (
        "To use it without network access: (1) on a machine with network access run\n"
        f"    python -c \"import tensorflow_hub as hub; print(hub.resolve('{handle}'))\"\n"
        "which downloads the module and prints its directory (it holds saved_model.pb and variables/); "
        "(2) copy that directory here; (3) pass the directory instead of the handle, e.g. "
        "load_classifier('/path/to/inception'). Alternatively put the directory at "
        f"$TFHUB_CACHE_DIR/{cache_name} (TF-Hub's cache name of this handle) and keep the handle."
    )


def _load_saved_model(location):
    try:
        import tensorflow_hub as hub
    except ImportError:
        hub = None
    if hub is not None:
        return hub.load(location)  # Also reads the deprecated TF1 Hub format.
    if location.startswith(_REMOTE_PREFIXES):
        raise ImportError("Loading a TF-Hub handle needs `pip install tensorflow-hub`.")
    import tensorflow as tf

    return tf.saved_model.load(location)


def _input_spec(function):
    """The TensorSpec of the single image input of a signature or restored function, or None."""
    try:
        candidates = getattr(function, "concrete_functions", None) or [function]
        args, kwargs = candidates[0].structured_input_signature
        specs = list(args) + list(kwargs.values())
        return specs[0] if len(specs) == 1 else None
    except Exception:  # Restored functions without traces, or unusual signatures: size comes from args.
        return None


def _split_outputs(outputs, feature_key, logits_key, where):
    if isinstance(outputs, dict):
        missing = [k for k in (feature_key, logits_key) if k not in outputs]
        if missing:
            raise ValueError(
                f"The classifier {where} returns a dict without {missing}; pass feature_key= and "
                f"logits_key= to load_classifier. Received: keys={sorted(outputs)}"
            )
        return outputs[feature_key], outputs[logits_key]
    if isinstance(outputs, (list, tuple)) and len(outputs) == 2:
        return outputs[0], outputs[1]
    raise ValueError(
        f"The classifier {where} must return (features, logits) or a dict with "
        f"'{feature_key}' and '{logits_key}'. Received: {type(outputs).__name__}"
    )


def _static_size(shape):
    """(height, width) from a [n, h, w, c] input shape when both are known, else None."""
    if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    return (int(shape[1]), int(shape[2]))


def _resolve_size(static, image_size, where):
    if image_size is None:
        return static or (INCEPTION_IMAGE_SIZE, INCEPTION_IMAGE_SIZE)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if static is not None and size != static:
        raise ValueError(
            f"The classifier {where} takes {static[0]}x{static[1]} images. Received: image_size={image_size}"
        )
    return size


def _from_saved_model(obj, where, signature, feature_key, logits_key, image_size):
    import tensorflow as tf

    signatures = dict(getattr(obj, "signatures", {}) or {})
    if signature is None and callable(obj):
        function = obj.__call__
        call = lambda x: function(x)  # noqa: E731
    else:
        name = signature or next((s for s in ("serving_default", "default") if s in signatures), None)
        if name not in signatures:
            raise ValueError(
                f"The SavedModel {where} is not callable and has no signature "
                f"{signature or 'serving_default'!r}; pass signature=. "
                f"Received: signatures={sorted(signatures)}"
            )
        function = signatures[name]
        _, kwargs = function.structured_input_signature
        if len(kwargs) != 1:
            raise ValueError(
                f"The signature {name!r} of {where} must take one image input. "
                f"Received: inputs={sorted(kwargs)}"
            )
        input_name = next(iter(kwargs))
        call = lambda x: function(**{input_name: x})  # noqa: E731
    spec = _input_spec(function)
    dtype = spec.dtype if spec is not None else tf.float32

    def fn(images, _loaded=obj):  # Holding `obj` keeps its variables alive while `fn` is used.
        outputs = call(tf.cast(images, dtype))
        features, logits = _split_outputs(outputs, feature_key, logits_key, where)
        return features.numpy(), logits.numpy()

    shape = None if spec is None or spec.shape.rank is None else tuple(spec.shape)
    return fn, _resolve_size(_static_size(shape), image_size, where)


def _from_keras_model(model, where, feature_key, logits_key, image_size):
    import keras
    import numpy as np

    shape = None
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # A subclassed model without symbolic inputs: the size comes from image_size.
    size = _resolve_size(_static_size(shape), image_size, where)
    tensorflow_backend = keras.backend.backend() == "tensorflow"

    def fn(images):
        inputs = images if tensorflow_backend else np.asarray(images)
        outputs = model(inputs, training=False)
        features, logits = _split_outputs(outputs, feature_key, logits_key, where)
        return keras.ops.convert_to_numpy(features), keras.ops.convert_to_numpy(logits)

    return fn, size


def _saved_model_id(path):
    import tensorflow as tf

    try:
        return f"savedmodel:{tf.saved_model.experimental.read_fingerprint(path).saved_model_checksum}"
    except Exception:  # SavedModels written before TF 2.12 have no fingerprint.pb.
        return f"savedmodel:{os.path.abspath(path)}"


def _load_keras_file(path):
    """`keras.saving.load_model(path)`, with a damaged file reported as `ClassifierUnavailableError`."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # zipfile.BadZipFile, ValueError, OSError ...: the file is not a loadable model.
        raise ClassifierUnavailableError(
            f"The classifier file {path!r} cannot be loaded: it is corrupt or not a Keras model "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Replace it: train it "
            "again (`python -m training.train_classifier`; for a cached domain classifier delete the file and its "
            ".card.json and the next --classifier=domain run trains it again) or copy a good one.") from None


def _load_synthetic(image_size, classifier_id, batch_size):
    path = synthetic.SYNTHETIC_CLASSIFIER_PATH
    if not os.path.isfile(path):
        raise ClassifierUnavailableError(
            f"The synthetic-domain classifier is not installed: no file at {path!r}. Create it with "
            "`python -m training.train_classifier` (a few minutes on a CPU), which trains it on the synthetic "
            "dataset and writes it there, or pass the path of another .keras classifier."
        )
    digest = card_module.file_sha256(path)
    model = _load_keras_file(path)
    fn, size = _from_keras_model(model, repr(path), "pool_3", "logits", image_size)
    return Classifier(fn, size, classifier_id or f"synthetic-classifier:{digest[:16]}", batch_size,
                      name="synthetic", content_hash=digest)


def _load_keras_classifier(location, feature_key, logits_key, image_size, classifier_id, batch_size):
    """A `.keras` file; one with a card (`card.card_path`) is a domain classifier, checked against it."""
    digest = card_module.file_sha256(location)
    card = card_module.read_card(location)
    if card is not None:
        card_module.check_file(card, location, digest)
    model = _load_keras_file(location)
    fn, size = _from_keras_model(model, repr(location), feature_key, logits_key, image_size)
    if card is None:
        return Classifier(fn, size, classifier_id or f"keras:{digest[:16]}", batch_size, name="keras",
                          content_hash=digest)
    return Classifier(fn, size, classifier_id or f"domain:{digest[:16]}", batch_size, name="domain",
                      content_hash=digest, card=card)


def load_classifier(
    spec=None,
    *,
    image_size=None,
    feature_key="pool_3",
    logits_key="logits",
    signature=None,
    classifier_id=None,
    batch_size=None,
):
    """Loads the classifier used for FID, IS and KID.

    `spec` may be:
    - None or "inception": TF-GAN's Inception (`INCEPTION_HANDLE`) from TF-Hub, loaded now. Without
      network access this raises `ClassifierUnavailableError` explaining how to supply it offline.
    - another TF-Hub handle (http://, https://, gs://).
    - a local SavedModel directory (e.g. the downloaded Inception module). A callable SavedModel is
      called directly (as TF-GAN does with Inception); otherwise its `signature` (default
      "serving_default", then "default") is used. Outputs: a dict with `feature_key` and `logits_key`,
      or a (features, logits) pair.
    - a `.keras` file of a Keras model returning (features, logits) or such a dict.
      A `.keras` file with a card beside it (`<name>.card.json`, see `card`) is a domain
      classifier: named "domain", its card attached, and refused (`ClassifierCardError`) when the file's SHA-256
      is not the one the card records.
    - "synthetic": the small domain classifier shipped with the package for the embedded synthetic
      dataset (`SYNTHETIC_CLASSIFIER_PATH`; 32x32 inputs, 128 features, 4 logits), with the id
      "synthetic-classifier:<first 16 hex digits of the file's SHA-256>". Without the file this raises
      `ClassifierUnavailableError` saying to run `python -m training.train_classifier`.
    - a `keras.Model` or an existing `Classifier` (returned as is).

    "domain" is not loaded here: it names the classifier of a dataset, which `sagan_tf.evaluation` finds.

    The `Classifier` gets a `name` ("inception", "tfhub", "savedmodel", "keras", "domain", "synthetic",
    "keras_model") and a `content_hash` (the file's SHA-256, the SavedModel's fingerprint checksum, or a SHA-256 of
    the handle), which make its `tag`.

    Args:
        spec: what to load, as above.
        image_size: the network's input size; by default read from the model's input signature, or
            299 (Inception) when that is not static. Images are resized bilinearly to it.
        feature_key: output holding the pool features (TF-GAN's Inception: "pool_3").
        logits_key: output holding the logits (TF-GAN's Inception: "logits").
        signature: SavedModel signature to use instead of calling the model.
        classifier_id: identifier for the real-statistics cache; by default the handle, the SavedModel's
            fingerprint checksum, or the `.keras` file's SHA-256 prefix (for "synthetic":
            "synthetic-classifier:" and that prefix).
        batch_size: largest number of images per network call.

    Returns:
        A `Classifier`.

    Raises:
        ClassifierUnavailableError: the path does not exist, the file is damaged, the TF-Hub handle cannot be
            fetched, or `spec` is "domain".
        ClassifierCardError: a `.keras` file that does not match its card.
    """
    if isinstance(spec, Classifier):
        return spec
    if isinstance(spec, str) and spec == SYNTHETIC_CLASSIFIER:
        return _load_synthetic(image_size, classifier_id, batch_size)
    if isinstance(spec, str) and spec == DOMAIN_CLASSIFIER:
        raise ClassifierUnavailableError(
            "'domain' names the domain classifier of a dataset and image size; load it with "
            "sagan_tf.evaluation.load_classifier_for(dataset, 'domain', image_size=...), or pass the path of its "
            ".keras file (train one with `python -m training.train_classifier --dataset=... --image_size=...`).")
    if spec is None or spec == INCEPTION_CLASSIFIER:
        spec = INCEPTION_HANDLE
    import keras

    if isinstance(spec, keras.Model):
        where = f"model {spec.name!r}"
        fn, size = _from_keras_model(spec, where, feature_key, logits_key, image_size)
        return Classifier(fn, size, classifier_id or f"keras-model:{spec.name}", batch_size, name="keras_model")

    location = os.fspath(spec)
    if location.startswith(_REMOTE_PREFIXES):
        try:
            obj = _load_saved_model(location)
        except ImportError:
            raise
        except Exception as e:  # URLError, OSError, ValueError ...: all mean "not available here".
            raise ClassifierUnavailableError(
                f"Could not load the classifier TF-Hub module {location!r} "
                f"({type(e).__name__}: {e}). {_offline_instructions(location)}"
            ) from e
        fn, size = _from_saved_model(
            obj, repr(location), signature, feature_key, logits_key, image_size
        )
        name = "inception" if location == INCEPTION_HANDLE else "tfhub"
        return Classifier(fn, size, classifier_id or location, batch_size, name=name,
                          content_hash=hashlib.sha256(location.encode("utf-8")).hexdigest())

    location = os.path.expanduser(location)
    if location.endswith(".keras"):
        if not os.path.isfile(location):
            raise ClassifierUnavailableError(
                f"No such .keras classifier file: {location!r}. Pass the path of a Keras model saved "
                "with model.save('classifier.keras') that returns (pool features, logits)."
            )
        return _load_keras_classifier(location, feature_key, logits_key, image_size, classifier_id, batch_size)

    if not os.path.isdir(location) or not any(
        os.path.exists(os.path.join(location, name)) for name in ("saved_model.pb", "saved_model.pbtxt")
    ):
        raise ClassifierUnavailableError(
            f"No SavedModel directory at {location!r} (expected saved_model.pb in it). Pass a TF-Hub "
            "handle, a SavedModel directory or a .keras file. If you meant TF-GAN's Inception module: "
            f"{_offline_instructions(INCEPTION_HANDLE)}"
        )
    obj = _load_saved_model(location)
    fn, size = _from_saved_model(obj, repr(location), signature, feature_key, logits_key, image_size)
    saved_id = _saved_model_id(location)
    return Classifier(fn, size, classifier_id or saved_id, batch_size, name="savedmodel",
                      content_hash=hashlib.sha256(saved_id.encode("utf-8")).hexdigest())
