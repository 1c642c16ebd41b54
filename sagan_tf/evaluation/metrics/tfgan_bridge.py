"""Imports TF-GAN's evaluation functions without importing the `tensorflow_gan` package.

Why this module exists (BUILD.md fact 1): tensorflow-gan 2.1.0 is the last release, and
`import tensorflow_gan` fails on TensorFlow >= 2.16 with "module 'tensorflow' has no attribute
'estimator'", because `tensorflow_gan/__init__.py` imports its estimator and train modules, which need
`tf.estimator` (removed in TF 2.16). Its evaluation module `tensorflow_gan/python/eval/
classifier_metrics.py` only needs TensorFlow, TensorFlow Probability and `eval_utils.py`, and works in
TF 2.x eager mode.

So `classifier_metrics()` imports that one file directly: it registers empty placeholder modules for
the three parent packages (`tensorflow_gan`, `tensorflow_gan.python`, `tensorflow_gan.python.eval`) in
`sys.modules`, each with the `__path__` of the real package directory, so that Python finds the
submodules there without running any package `__init__`. The placeholders are removed again afterwards
(the imported module keeps its own references to what it needs), so a later `import tensorflow_gan`
behaves as it would have without us. The result is cached; nothing is imported until the first call.

TensorFlow Probability needs the `tf_keras` package to import; we never set `TF_USE_LEGACY_KERAS`.

The module's KID (`kernel_classifier_distance_and_std_from_activations`) calls `tf.map_fn(..., back_prop=False)`,
for which TensorFlow logs a 7-line "calling map_fn_v2 ... with back_prop=False is deprecated" warning on first use;
it is about TF-GAN's code, which no user can change, so `classifier_metrics()` drops exactly that record (a filter on
the "tensorflow" logger, `_drop_tfgan_map_fn_deprecation`); every other warning stays.

Use it as:

    cm = tfgan_bridge.classifier_metrics()
    fid = cm.frechet_classifier_distance_from_activations(real, fake)
"""

import importlib
import importlib.util
import logging
import os
import sys
import threading
import types

_INSTALL_HINT = (
    "The metrics in sagan_tf.evaluation.metrics are computed by TF-GAN's evaluation functions. Install them with "
    "`pip install tensorflow-gan==2.1.0 tensorflow-probability tf-keras` (tensorflow-probability must "
    "match your TensorFlow version; tf-keras is needed by tensorflow-probability)."
)
_PACKAGES = ("tensorflow_gan", "tensorflow_gan.python", "tensorflow_gan.python.eval")
_MODULE = "tensorflow_gan.python.eval.classifier_metrics"

_lock = threading.Lock()
_classifier_metrics = None


def _package_root():
    """Returns the directory of the installed `tensorflow_gan` package, without importing it."""
    if _PACKAGES[0] in sys.modules and getattr(sys.modules[_PACKAGES[0]], "__path__", None):
        return list(sys.modules[_PACKAGES[0]].__path__)[0]
    spec = importlib.util.find_spec(_PACKAGES[0])
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"The `tensorflow_gan` package is not installed. {_INSTALL_HINT}")
    return list(spec.submodule_search_locations)[0]


def _drop_tfgan_map_fn_deprecation(record):
    """A filter of the "tensorflow" logger: False for TensorFlow's deprecation warning about `map_fn`'s `back_prop`
    argument when TF-GAN's `classifier_metrics.py` makes the call, True for every other record.

    TensorFlow logs it as `"From %s: calling %s (from %s) with %s=%s is deprecated ..."` with the arguments (call
    location "<file>:<line>", "map_fn_v2", "tensorflow.python.ops.map_fn", "back_prop", False, ...).
    """
    args = record.args if isinstance(record.args, tuple) else ()
    return not (len(args) >= 4 and str(record.msg).startswith("From %s: calling %s (from %s) with %s")
                and os.path.basename(str(args[0]).rsplit(":", 1)[0]) == "classifier_metrics.py"
                and args[1] == "map_fn_v2" and args[3] == "back_prop")


def _import_classifier_metrics():
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    root = _package_root()
    saved = {name: sys.modules.get(name) for name in _PACKAGES}
    try:
        for name in _PACKAGES:
            if saved[name] is not None:
                continue  # The real package (or an earlier placeholder) is already importable.
            path = os.path.join(root, *name.split(".")[1:])
            placeholder = types.ModuleType(name, "Placeholder package registered by sagan_tf.")
            placeholder.__path__ = [path]
            sys.modules[name] = placeholder
        return importlib.import_module(_MODULE)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)


def classifier_metrics():
    """Returns TF-GAN 2.1.0's `classifier_metrics` module, imported without the package `__init__`.

    The module provides `frechet_classifier_distance_from_activations`, `classifier_score_from_logits`,
    `kernel_classifier_distance_from_activations`, `trace_sqrt_product` and their streaming (TF1
    graph-mode) variants.

    Returns:
        The `tensorflow_gan.python.eval.classifier_metrics` module.

    Raises:
        ImportError: if tensorflow-gan or one of its dependencies cannot be imported; the message says
            what to install.
    """
    global _classifier_metrics
    if _classifier_metrics is not None:
        return _classifier_metrics
    with _lock:
        if _classifier_metrics is None:
            try:
                _classifier_metrics = _import_classifier_metrics()
                logging.getLogger("tensorflow").addFilter(_drop_tfgan_map_fn_deprecation)
            except Exception as e:  # TFP and TF-GAN fail with AttributeError etc., not only ImportError.
                raise ImportError(
                    f"Could not import TF-GAN's evaluation module ({type(e).__name__}: {e}). "
                    f"{_INSTALL_HINT}"
                ) from e
    return _classifier_metrics
