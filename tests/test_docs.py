"""What a newcomer reads is true: every cited file exists, and every documented command runs with the flags it shows.

- Citations: a path into the repository (`sagan_tf/callbacks/health.py`, `tests/conftest.py`), a Markdown file
  (`BUILD.md`), a "BUILD.md fact N", a module or object (`sagan_tf.sampling.latents.truncated_latents`) or a file of
  an installed dependency (`tensorflow_gan/__init__.py`), wherever a docstring, comment, Markdown file or the notebook
  names one, must exist. Design notes kept outside the repository are not citable.
- Commands: every `python -m <entry point> ...` of README.md, BUILD.md, export/README.md and the notebook uses only
  flags that entry point defines (on a fresh `flags.FlagValues()`, through its `define_flags`), and every
  `--model_dir=runs/...` the README reads is a directory a `python -m training.run` command of the README trains
  into (`sagan_tf.run.run_dir.default_model_dir`).
"""

import ast
import importlib
import importlib.util
import io
import json
import pathlib
import re
import shlex
import tokenize

from absl import flags

from sagan_tf.config import presets
from sagan_tf.run import run_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The repository's top level (BUILD.md, "How the pieces fit"): what a path citation can start with.
TOP_LEVEL = ("sagan_tf", "training", "export", "tests", "benchmarks", "examples", ".ci", "BUILD.md", "README.md",
             "setup.py", "pytest.ini")
SKIPPED_PARTS = {"__pycache__", ".venv", ".git", "build", "dist"}
DOCUMENTS = ("README.md", "BUILD.md", "export/README.md", "examples/colab_quickstart.ipynb")
ENTRY_POINTS = ("training.run", "training.evaluate", "training.visualize", "training.train_classifier", "export.run",
                "export.client")
#: Flags absl defines for every program (`--help`, logging's `--verbosity`, ...).
ABSL_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "verbosity", "v", "logtostderr", "alsologtostderr",
              "log_dir", "stderrthreshold", "showprefixforinfo")

_REPO_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(re.escape(name) for name in TOP_LEVEL) + r")(?:/[\w.*-]+)*/?)"
                        r"(?![\w-])")
_MARKDOWN = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
_FACT = re.compile(r"\b([\w/]+\.md),? facts? (\d+)")
_SECTION = re.compile(r"\b(BUILD\.md|README\.md), ([A-Z][a-z]+(?: [a-z]+)*)")
_DOTTED = re.compile(r"(?<![\w./-])((?:sagan_tf|training|export|tests)(?:\.[A-Za-z_]\w*)+)")
_PACKAGE_FILE = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*(?:/[\w.-]+)+\.py)\b")


def repository_files():
    """Every source and documentation file of the repository (not what a checkout builds or caches)."""
    files = []
    for name in TOP_LEVEL:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [p for p in candidates if p.is_file() and not SKIPPED_PARTS & set(p.relative_to(ROOT).parts)
                  and p.suffix in (".py", ".md", ".ipynb", ".ini", ".template", "") and ".egg-info" not in str(p)]
    return files


def prose(path):
    """What a reader reads in `path`: a Markdown file whole; a Python file's comments and docstrings; a notebook's
    Markdown cells and its code cells' comments."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return text
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        return "\n".join("".join(cell["source"]) if cell["cell_type"] == "markdown"
                         else _comments("".join(cell["source"])) for cell in cells)
    if path.suffix == ".py":
        docstrings = [ast.get_docstring(node, clean=False) for node in ast.walk(ast.parse(text))
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        return "\n".join([_comments(text)] + [doc for doc in docstrings if doc])
    return _comments(text) if path.name == "run" or path.suffix == ".template" else ""


def _comments(source):
    try:
        return "\n".join(token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
                         if token.type == tokenize.COMMENT)
    except (tokenize.TokenError, SyntaxError):  # a shell script or template: its "#" lines
        return "\n".join(line for line in source.splitlines() if line.lstrip().startswith("#"))


def resolves(dotted):
    """Whether a dotted name is a module of this repository, or an attribute chain of one."""
    parts = dotted.split(".")
    for length in range(len(parts), 0, -1):
        module = ".".join(parts[:length])
        if importlib.util.find_spec(parts[0]) is None:
            return False
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        value = importlib.import_module(module)
        for attribute in parts[length:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def build_facts():
    """{number: text} of the numbered facts of BUILD.md's "Measured facts about the dependencies"."""
    text = (ROOT / "BUILD.md").read_text(encoding="utf-8")
    section = text.split("### Measured facts about the dependencies", 1)[1].split("\n### ", 1)[0]
    return {int(number): line for number, line in re.findall(r"^(\d+)\. (.*)$", section, flags=re.MULTILINE)}


def test_every_cited_file_exists():
    missing = []
    markdown_names = {path.name for path in repository_files() if path.suffix == ".md"}
    for path in repository_files():
        where = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        for match in _REPO_PATH.finditer(text):
            cited = match[1].rstrip(".").rstrip("/")
            if not (list(ROOT.glob(cited)) if "*" in cited else (ROOT / cited).exists()):
                missing.append(f"{where}: {match[1]}")
        for match in _MARKDOWN.finditer(text):
            if match[1] not in markdown_names:
                missing.append(f"{where}: {match[1]}")
        if re.search(r"\bseeds/\d", text):
            missing.append(f"{where}: a seeds/ note (outside the repository)")
        for match in _PACKAGE_FILE.finditer(prose(path)):
            package = match[1].split("/", 1)[0]
            if package in TOP_LEVEL or importlib.util.find_spec(package) is None:
                continue  # a repository path (checked above), or a file of another project named by that project
            base = pathlib.Path(importlib.util.find_spec(package).submodule_search_locations[0]).parent
            if not (base / match[1]).exists():
                missing.append(f"{where}: {match[1]} (not in the installed {package})")
    assert missing == []


def test_every_cited_fact_section_and_module_exists():
    facts = build_facts()
    assert sorted(facts) == list(range(1, len(facts) + 1)) and len(facts) >= 12
    headings = {name: re.findall(r"^#+ (.*)$", (ROOT / name).read_text(encoding="utf-8"), flags=re.MULTILINE)
                for name in ("BUILD.md", "README.md")}
    missing = []
    for path in repository_files():
        where, text = path.relative_to(ROOT), prose(path)
        for document, number in _FACT.findall(text):
            if document != "BUILD.md" or int(number) not in facts:
                missing.append(f"{where}: {document} fact {number}")
        for document, section in _SECTION.findall(text):
            if not any(heading.startswith(section) for heading in headings[document]):
                missing.append(f"{where}: {document}, {section}")
        for dotted in _DOTTED.findall(text):
            if dotted.rstrip(".").endswith((".lock", ".lock.takeover")):
                continue  # the run directory's lock files (sagan_tf.run.run_dir.LOCK_FILE), not modules
            if not resolves(dotted.rstrip(".")):
                missing.append(f"{where}: {dotted}")
    assert missing == []


def test_the_checks_catch_what_they_are_for():
    cited = _REPO_PATH.findall("see sagan_tf/callbacks/health.py and tests/conftest.py.")
    assert [path.rstrip(".") for path in cited] == ["sagan_tf/callbacks/health.py", "tests/conftest.py"]
    outside = "DESIGN" + ".md"  # spelled apart: this file cites nothing outside the repository either
    assert _MARKDOWN.findall(f"({outside} fact 4)") == [outside] and _FACT.findall("BUILD.md fact 4") == [
        ("BUILD.md", "4")]
    assert resolves("sagan_tf.sampling.latents.truncated_latents") and not resolves("sagan_tf.domain_classifier")
    assert resolves("training.train_lib") and not resolves("training.no_such_module")
    assert prose(ROOT / "sagan_tf" / "cli.py").count("TF_CPP_MIN_LOG_LEVEL") >= 1


def documented_commands():
    """[(document, module, [argument, ...])] of every `python -m <entry point>` in the documents."""
    commands = []
    for name in DOCUMENTS:
        text = (ROOT / name).read_text(encoding="utf-8")
        if name.endswith(".ipynb"):
            text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
        text = text.replace("\\\n", " ")
        for match in re.finditer(r"python -m ((?:training|export)\.\w+)([^\n`]*)", text):
            words = shlex.split(match[2].split("#", 1)[0].split("&&", 1)[0].replace("|", " "), posix=True)
            commands.append((name, match[1], [word for word in words if word.startswith("-")]))
    return commands


def flag_names(module):
    values = flags.FlagValues()
    importlib.import_module(module).define_flags(values)
    return values


def test_documented_commands_use_only_flags_their_entry_point_defines():
    commands = documented_commands()
    assert {module for _, module, _ in commands} == set(ENTRY_POINTS)
    assert len(commands) >= 30
    defined = {module: flag_names(module) for module in ENTRY_POINTS}
    unknown = []
    for document, module, arguments in commands:
        for argument in arguments:
            name = argument.lstrip("-").split("=", 1)[0]
            values = defined[module]
            known = name in values or name in ABSL_FLAGS or (
                name.startswith("no") and name[2:] in values and values[name[2:]].boolean)
            if not known:
                unknown.append(f"{document}: python -m {module} ... {argument}")
    assert unknown == []


def readme_commands():
    """[(module, [argument, ...])] of the README's `python -m` commands, in the order a reader meets them, with the
    substitutions a test on this machine needs: the example folders `/data/icons` and `/path/to/images` become
    folders below the current directory (the run directory's name is the same), `--data_dir=...` is left out. Left
    out: `--help` (tests/test_cli.py), commands with a placeholder value (`--export_dir=...`) and runs into an object
    store (gs://)."""
    commands = []
    for document, module, arguments in documented_commands():
        if document != "README.md" or "--help" in arguments or any("=gs://" in a for a in arguments):
            continue
        arguments = [a.replace("folder:/", "folder:") for a in arguments if a != "--data_dir=..."]
        if not any(a.endswith("=...") for a in arguments):
            commands.append((module, arguments))
    return commands


def test_readme_commands_in_order_do_not_refuse_each_other(tmp_path, monkeypatch):
    """The README's commands, run in order in a fresh directory, as far as one decides whether another is refused:
    every training command's run directory takes its config (`RunDirectory.check_resumable`, what a rerun with other
    settings fails on), every export version is new, and every run, export or file a command reads was made by a
    command before it (or is one the README says the user makes: `g.keras`). Training itself is not run here."""
    from tests.tiny import tiny_image_folder
    from training import run as run_cli

    monkeypatch.chdir(tmp_path)
    for folder in ("data/icons", "path/to/images"):
        tiny_image_folder(tmp_path / folder, per_class=2, size=8)
    commands = readme_commands()
    assert sum(module == "training.run" for module, _ in commands) >= 8 and len(commands) >= 18
    trained, exported, refused = {}, set(), []
    for index, (module, arguments) in enumerate(commands, start=1):
        command = f"{index}: python -m {module} {' '.join(arguments)}"
        values = flag_names(module)
        values(["prog", *arguments])
        if module == "training.run":
            config, options = run_cli.config_and_options(values)
            run = run_dir.RunDirectory(options.model_dir)
            try:
                run.check_resumable(config)
            except ValueError as error:  # ConfigError
                refused.append(f"{command}: {error}")
            if not run.has_config():
                run.write_config(config)
            trained[options.model_dir.rstrip("/")] = config.training.train_steps
        elif module in ("training.evaluate", "training.visualize") or (module == "export.run" and values.model_dir):
            if values.model_dir.rstrip("/") not in trained:
                refused.append(f"{command}: no command before it trains {values.model_dir}")
        if module == "export.run":
            # A run's export is numbered by its checkpoint's step; the last checkpoint is also the best one of a
            # run that improves until its end (the default run's), so both are numbered train_steps.
            version = values.version or trained.get(values.model_dir.rstrip("/") if values.model_dir else None)
            if (values.export_dir, version) in exported:
                refused.append(f"{command}: version {version} of {values.export_dir} exists already")
            exported.add((values.export_dir, version))
        if module == "export.client" and values.saved_model_dir:
            folder, version = values.saved_model_dir.rstrip("/").rsplit("/", 1)
            if (folder, int(version)) not in exported:
                refused.append(f"{command}: no command before it exports {values.saved_model_dir}")
    assert refused == []
    assert {"runs/synthetic32", "runs/cifar32-folder_data_icons", "runs/icons-ada"} <= set(trained)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"into `runs/synthetic32/`", readme)  # the prose names the default run's directory too
