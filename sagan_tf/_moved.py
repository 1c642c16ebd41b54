"""The import paths of sagan_tf 0.1's flat layout, kept working for one release (to be removed in 0.3).

`import sagan_tf.run_dir`, `from sagan_tf import presets`, `from sagan_tf.metrics import scores`, ... still import,
with a DeprecationWarning naming the new path; the module they give forwards every name to the module that owns it
now. New code imports the new paths (the table below; README "Library layout").
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: old module -> the module that owns its names now.
MOVED = {
    "sagan_tf.run_dir": "sagan_tf.run.run_dir",
    "sagan_tf.run_lock": "sagan_tf.run.run_lock",
    "sagan_tf.atomic_write": "sagan_tf.run.atomic_write",
    "sagan_tf.write_failures": "sagan_tf.run.write_failures",
    "sagan_tf.checkpoint": "sagan_tf.run.checkpoint",
    "sagan_tf.restore": "sagan_tf.run.restore",
    "sagan_tf.metrics": "sagan_tf.evaluation.metrics",
    "sagan_tf.classifiers": "sagan_tf.evaluation.classifiers",
    "sagan_tf.classifiers.loader": "sagan_tf.evaluation.classifiers.sources",
    "sagan_tf.latents": "sagan_tf.sampling.latents",
    "sagan_tf.images": "sagan_tf.sampling.images",
    "sagan_tf.interpolation": "sagan_tf.sampling.interpolation",
    "sagan_tf.plots": "sagan_tf.sampling.plots",
    "sagan_tf.summaries": "sagan_tf.sampling.summaries",
    "sagan_tf.visualize": "sagan_tf.sampling.attention_maps",
    "sagan_tf.serving_memory": "sagan_tf.serving.memory",
    "sagan_tf.class_names": "sagan_tf.serving.class_names",
    "sagan_tf.presets": "sagan_tf.config.presets",
    "sagan_tf.choices": "sagan_tf.config.choices",
    "sagan_tf.losses": "sagan_tf.models.losses",
    "sagan_tf.regularizers": "sagan_tf.models.regularizers",
    "sagan_tf.augment": "sagan_tf.models.augment",
    "sagan_tf.health": "sagan_tf.callbacks.health",
}
#: Names an old module handed on from another module (0.1's `sagan_tf.metrics` re-exported the classifiers').
FORWARDED = {
    "sagan_tf.metrics": ("sagan_tf.evaluation.classifiers",
                         ("Classifier", "load_classifier", "INCEPTION_HANDLE", "INCEPTION_CLASSIFIER",
                          "SYNTHETIC_CLASSIFIER", "DOMAIN_CLASSIFIER", "build_domain_classifier",
                          "dataset_fingerprint", "SYNTHETIC_CLASSIFIER_PATH", "SYNTHETIC_FEATURE_DIM",
                          "build_synthetic_classifier")),
}


def new_name(old):
    """The module that owns `old`'s names now (a submodule of a moved package too), or None if it did not move."""
    for before, after in sorted(MOVED.items(), key=lambda item: -len(item[0])):  # the longest match
        if old == before or old.startswith(before + "."):
            return after + old[len(before):]
    return None


class _MovedModule(types.ModuleType):
    """Stands at an old path and forwards every name to the module that owns it now."""

    def __init__(self, old, new):
        super().__init__(old, f"Moved to {new}.")
        self.__path__ = []  # lets `import old.submodule` reach the finder
        self._new = new

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        owner, names = FORWARDED.get(self.__name__, (None, ()))
        module = importlib.import_module(owner if name in names else self._new)
        return getattr(module, name)

    def __dir__(self):
        return dir(importlib.import_module(self._new))


class _Loader(importlib.abc.Loader):
    def __init__(self, new):
        self._new = new

    def create_module(self, spec):
        return _MovedModule(spec.name, self._new)

    def exec_module(self, module):
        warnings.warn(f"{module.__name__} moved to {self._new}; the old path goes in sagan_tf 0.3.",
                      DeprecationWarning, stacklevel=2)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname) if fullname.startswith("sagan_tf.") else None
        return importlib.util.spec_from_loader(fullname, _Loader(new)) if new else None


def install():
    """Puts the old paths' finder on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
