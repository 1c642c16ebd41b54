"""sagan_tf.cli: every entry point reports bad input the same way (one paragraph, exit status 2), and prints its own
lines, not TensorFlow's (the entry point end to end: tests/training/test_run_cli.py)."""

import logging
import os
import subprocess

import pytest

from sagan_tf import cli
from sagan_tf.errors import CheckpointError, CheckpointUnavailableError, DatasetError, WorkerLostError
from tests.tiny import PYTHON, ROOT, subprocess_environment


def test_usage_errors_become_one_paragraph_and_status_2(capsys):
    @cli.main_wrapper
    def main(argv, values=None):
        raise DatasetError(f"No such\n   folder {values}.")

    assert main(["prog"], "x") == cli.USAGE_ERROR_STATUS == 2
    assert capsys.readouterr().err == "Error: No such folder x.\n"


@pytest.mark.parametrize("error_class", [WorkerLostError, CheckpointUnavailableError])
def test_temporary_failures_become_one_paragraph_and_status_75(capsys, error_class):
    @cli.main_wrapper
    def main(argv):
        raise error_class("Try\n   again.")

    assert main(["prog"]) == error_class.exit_status == 75
    assert capsys.readouterr().err == "Error: Try again.\n"


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


# Lines as TensorFlow 2.21 writes them on import (BUILD.md fact 12), and lines that must get through.
LOADING_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796171431.662758    3530 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796171438.371774    3530 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "I0000 00:00:1733089305.123456  140278 port.cc:153] oneDNN custom operations are on.",
    "W0000 00:00:1733089305.123456  140278 cpu_allocator_impl.cc:83] Allocation of 1073741824 exceeds 10% of free "
    "system memory.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
]
KEPT_LINES = [
    "F0000 00:00:1796171431.662758    3530 cpu_feature_guard.cc:100] The TensorFlow library was compiled to use AVX "
    "instructions, but these aren't available on your machine.",
    "Traceback (most recent call last):",
    "step 100/2000 (  5.0%)  d_loss 1.53",
]


def test_loading_noise_is_dropped_and_everything_else_kept(capfd):
    with cli.stderr_without_loading_noise():
        os.write(2, "".join(line + "\n" for line in LOADING_LINES[:2] + KEPT_LINES[:1] + LOADING_LINES[2:]
                            + KEPT_LINES[1:]).encode())
    assert capfd.readouterr().err.splitlines() == KEPT_LINES


def test_tensorflow_logs_are_wanted_with_verbosity_or_the_variable():
    assert not cli.tensorflow_logs_wanted(["prog", "--train_steps=2"], {})
    for argv in (["prog", "--verbosity=1"], ["prog", "--verbosity", "2"], ["prog", "-v", "1"], ["prog", "-v=1"]):
        assert cli.tensorflow_logs_wanted(argv, {}), argv
    assert not cli.tensorflow_logs_wanted(["prog", "--verbosity=0"], {})
    assert not cli.tensorflow_logs_wanted(["prog", "-v", "test_x.py"], {})  # not a number: not absl's flag
    assert cli.tensorflow_logs_wanted(["prog"], {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert cli.requested_verbosity(["prog", "--verbosity=-1"]) == -1 and cli.requested_verbosity(["prog"]) is None


def test_log_records_print_as_plain_lines():
    def record(level, message, pathname):
        return logging.LogRecord("absl", level, pathname, 1, message, (), None)

    formatter = cli.PlainFormatter()
    own = os.path.join(cli._OWN_DIRECTORIES[0], "callbacks.py")
    assert formatter.format(record(logging.INFO, "step 100/500", own)) == "step 100/500"
    assert formatter.format(record(logging.WARNING, "Step 100: ...", own)) == "Warning: Step 100: ..."
    assert formatter.format(record(logging.ERROR, "No update", own)) == "Error: No update"
    # INFO of another library (TensorFlow's "Sharding callback duration") is left out; its warnings are not.
    other = "/usr/lib/python3/site-packages/tensorflow/python/checkpoint/functional_saver.py"
    assert cli._own_or_important(record(logging.INFO, "step", own))
    assert not cli._own_or_important(record(logging.INFO, "Sharding callback duration: 177 microseconds", other))
    assert cli._own_or_important(record(logging.WARNING, "deprecated", other))


def test_a_command_keeps_tensorflow_error_lines_and_drops_its_start_up_lines():
    # TF_CPP_MIN_LOG_LEVEL=2: INFO and WARNING C++ lines off, ERROR lines (cuDNN, NCCL, out of memory) on; it was 3,
    # which hid them. The start-up lines, "failed call to cuInit" on a CPU machine with CUDA libraries included, are
    # dropped while TensorFlow loads and looks for GPUs.
    program = ("import os, sys\n"
               "from sagan_tf import cli\n"
               "def main(argv):\n"
               "    import tensorflow as tf\n"
               "    print('level', os.environ['TF_CPP_MIN_LOG_LEVEL'], len(tf.config.list_physical_devices('CPU')))\n"
               "    return 0\n"
               "cli.run(main, argv=['prog'])\n")
    env = subprocess_environment(TF_CPP_MIN_LOG_LEVEL=None, CUDA_VISIBLE_DEVICES=None)
    result = subprocess.run([PYTHON, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["level 2 1"]
    assert result.stderr == ""


# A command whose main logs through TensorFlow's logger, as TensorFlow's own code does (e.g.
# MultiWorkerMirroredStrategy's "Collective all_reduce ..." INFO lines).
TF_LOGGING_COMMAND = """
from sagan_tf import cli

def main(argv):
    import tensorflow as tf
    tf.get_logger().warning("a TensorFlow warning")
    tf.get_logger().info("a TensorFlow INFO line")
    return 0

cli.run(main)
"""


def test_tensorflow_records_are_printed_once_and_its_info_left_out():
    """TensorFlow gives its logger a handler of its own while it loads: its records came out twice ("WARNING:
    tensorflow:..." and "Warning: ...") and its INFO lines past the filter."""
    result = subprocess.run([PYTHON, "-c", TF_LOGGING_COMMAND], cwd=ROOT, env=subprocess_environment(
        TF_CPP_MIN_LOG_LEVEL=None), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["Warning: a TensorFlow warning"], result.stderr
