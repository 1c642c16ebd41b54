"""The library's top level reads as a table of contents, and the import paths it had before keep working for a
release (sagan_tf._moved)."""

import ast
import importlib
import os
import re
import subprocess
import sys
import warnings

import pytest

from sagan_tf import _moved

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "sagan_tf")
#: Modules that may stand directly under sagan_tf/: shared by every package, or the package's own plumbing.
TOP_LEVEL_MODULES = {"__init__.py", "cli.py", "errors.py", "_lazy.py", "_moved.py"}


def _packages():
    return sorted(name for name in os.listdir(LIBRARY)
                  if os.path.isfile(os.path.join(LIBRARY, name, "__init__.py")))


def test_the_top_level_holds_packages_and_a_few_shared_modules():
    modules = {name for name in os.listdir(LIBRARY) if name.endswith(".py")}
    assert modules <= TOP_LEVEL_MODULES, f"{sorted(modules - TOP_LEVEL_MODULES)}: put them in a package"


def test_the_package_docstring_lists_every_package_and_each_package_says_what_it_owns():
    contents = ast.get_docstring(ast.parse(open(os.path.join(LIBRARY, "__init__.py")).read()))
    listed = set(re.findall(r"^    (\w+)/", contents, re.M))
    assert listed == set(_packages())
    for package in _packages():
        for directory, _, files in os.walk(os.path.join(LIBRARY, package)):
            if "__init__.py" in files:
                source = open(os.path.join(directory, "__init__.py")).read()
                assert ast.get_docstring(ast.parse(source)), f"{directory}/__init__.py says nothing of what it owns"


def _module_names(directory):
    names = []
    for path, _, files in os.walk(os.path.join(ROOT, directory)):
        names += [os.path.join(path, name) for name in files if name.endswith(".py")]
    return names


def test_no_project_code_imports_an_old_path():
    old_modules = "|".join(re.escape(name) for name in _moved.MOVED)
    old_names = "|".join(name.split(".")[1] for name in _moved.MOVED if name.count(".") == 1)
    old = re.compile(rf"\b(?:from|import) ({old_modules})\b|\bfrom sagan_tf import [\w, ]*\b({old_names})\b")
    files = [path for directory in ("sagan_tf", "training", "export", "benchmarks", "tests")
             for path in _module_names(directory) if not path.endswith(("_moved.py", "test_layout.py"))]
    found = [f"{os.path.relpath(path, ROOT)}: {match.group(0)}" for path in files
             for match in old.finditer(open(path).read())]
    assert not found


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_each_old_path_still_imports_with_a_deprecation_warning(old):
    new = importlib.import_module(_moved.MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old} moved to {_moved.MOVED[old]}")):
        module = importlib.import_module(old)
    public = [name for name in dir(new) if not name.startswith("_")]
    assert public and all(getattr(module, name) is getattr(new, name) for name in public)


def test_old_forms_of_import_resolve_to_the_new_objects():
    from sagan_tf.evaluation import classifiers
    from sagan_tf.evaluation.metrics import scores
    from sagan_tf.run.run_dir import RunDirectory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sagan_tf import run_dir as old_run_dir
        from sagan_tf.metrics import load_classifier, scores as old_scores  # 0.1 re-exported the classifiers here
        import sagan_tf.classifiers.network as old_network

    assert old_run_dir.RunDirectory is RunDirectory and old_scores.frechet_distance is scores.frechet_distance
    assert load_classifier is classifiers.load_classifier
    assert old_network.build_domain_classifier is classifiers.build_domain_classifier
    assert _moved.new_name("sagan_tf.metrics.scores") == "sagan_tf.evaluation.metrics.scores"
    assert _moved.new_name("sagan_tf.classifiers.loader") == "sagan_tf.evaluation.classifiers.sources"
    assert _moved.new_name("sagan_tf.models") is None and _moved.new_name("sagan_tf.metricsx") is None


def test_the_new_layout_imports_without_a_deprecation_warning():
    """In a fresh process, so that nothing this session imported hides a warning."""
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning); import sagan_tf; "
            "from sagan_tf import models, callbacks, data, cli, errors; from sagan_tf.callbacks import health; "
            "from sagan_tf.run import restore, run_dir, run_lock, checkpoint; "
            "from sagan_tf.evaluation import Evaluator, cache_dir, metrics, classifiers; "
            "from sagan_tf.sampling import attention_maps, images, interpolation, latents; "
            "from sagan_tf.serving import export_run, memory, class_names; "
            "from sagan_tf.config import ExperimentConfig, presets, choices")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
