"""Every command of README.md runs as written, in order, in a fresh directory: each command's `main` in this process,
with the substitutions a CPU test without network needs, listed in `substituted`. Slow (every training run, the
domain classifiers and the exports: minutes); its fast sibling, tests/test_docs.py
(`test_readme_commands_in_order_do_not_refuse_each_other`), decides in seconds whether one command refuses another.
"""

import hashlib
import importlib

import pytest
from absl import flags as absl_flags

from sagan_tf.run import restore
from sagan_tf.evaluation.classifiers import synthetic
from tests.test_docs import readme_commands
from tests.tiny import tiny_image_folder

#: Datasets that download (TFDS) and the local copy of Inception (the paper protocol's, ImageNet's per-class
#: accuracy) are not here.
UNAVAILABLE = ("--dataset=cifar10", "--dataset=imagenet2012", "--dataset=lsun/church_outdoor", "--protocol=paper",
               "--classifier=/models/tfgan_inception")
#: What makes a command small, per entry point (later flags win).
SMALL = {"training.run": ["--train_steps=2", "--batch_size=4", "--eval_samples=24", "--log_every=1",
                          "--sample_every=1000", "--checkpoint_every=1000"],
         "training.evaluate": ["--num_samples=24", "--num_real=64"],
         "training.train_classifier": []}


def substituted(module, arguments):
    """The command's arguments as this test runs them: small (`SMALL`), the default run's export version is its step
    here (2, not 2000), and the shipped classifier's retraining writes into the current directory."""
    arguments = [a.replace("exports/synthetic32/2000", "exports/synthetic32/2").replace("--num_samples=50000", "")
                 for a in arguments]
    arguments = [a for a in arguments if a] + SMALL.get(module, [])
    if module == "training.train_classifier" and not any(a.startswith("--dataset=") for a in arguments):
        # The shipped classifier's retraining: into a file here, not into the package, and briefly.
        arguments += ["--output=synthetic_classifier.keras", "--steps=20", "--eval_examples=64", "--min_accuracy=0"]
    return arguments


@pytest.mark.slow
def test_every_readme_command_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for folder in ("data/icons", "path/to/images"):  # readme_commands() makes the README's folders relative
        tiny_image_folder(tmp_path / folder, per_class=12, size=16)
    shipped = hashlib.sha256(open(synthetic.SYNTHETIC_CLASSIFIER_PATH, "rb").read()).hexdigest()
    ran = []
    for module, arguments in readme_commands():
        if any(a in UNAVAILABLE for a in arguments):
            continue
        if "--keras_file=g.keras" in arguments:  # the README's comment: the user saves it
            restore.restore_generator("runs/synthetic32").generator.save("g.keras")
        values = absl_flags.FlagValues()
        entry_point = importlib.import_module(module)
        entry_point.define_flags(values)
        values(["prog", *substituted(module, arguments)])
        status = entry_point.main(["prog"], values)
        output = capsys.readouterr()
        assert status == 0, (module, arguments, output.err[-2000:])
        ran.append(module)
    assert ran.count("training.run") >= 7 and {"export.run", "export.client", "training.evaluate",
                                               "training.visualize", "training.train_classifier"} <= set(ran)
    # The best checkpoint of 2 steps may be step 0's: one version, whichever step it is.
    assert len(list((tmp_path / "exports" / "synthetic32-best").iterdir())) == 1 and (tmp_path / "out").is_dir()
    assert hashlib.sha256(open(synthetic.SYNTHETIC_CLASSIFIER_PATH, "rb").read()).hexdigest() == shipped
