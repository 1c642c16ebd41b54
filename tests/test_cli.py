"""sagan_tf.cli: every entry point reports bad input the same way (one paragraph, exit status 2)."""

import pytest

from sagan_tf import cli
from sagan_tf.errors import CheckpointError, DatasetError


def test_usage_errors_become_one_paragraph_and_status_2(capsys):
    @cli.main_wrapper
    def main(argv, values=None):
        raise DatasetError(f"No such\n   folder {values}.")

    assert main(["prog"], "x") == cli.USAGE_ERROR_STATUS == 2
    assert capsys.readouterr().err == "Error: No such folder x.\n"


def test_success_positional_arguments_and_bugs(capsys):
    @cli.main_wrapper
    def main(argv):
        if argv[0] == "bug":
            raise RuntimeError("a bug keeps its traceback")
        return 0

    assert main(["prog"]) == 0
    assert main(["prog", "stray", "words"]) == 2
    assert capsys.readouterr().err.startswith("Error: Unexpected arguments: stray words.")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["bug"])
    assert main.__name__ == "main"


def test_report_collapses_whitespace(capsys):
    cli.report(CheckpointError("a\n\tb  c"))
    assert capsys.readouterr().err == "Error: a b c\n"
