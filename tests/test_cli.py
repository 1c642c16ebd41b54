"""sagan_tf.cli: every entry point reports bad input the same way (one paragraph, exit status 2), and prints its own
lines, not TensorFlow's (the entry point end to end: tests/training/test_run_cli.py)."""

import logging
import os
import subprocess

import pytest

from sagan_tf import cli
from sagan_tf.errors import CheckpointError, CheckpointUnavailableError, DatasetError, RunLockWaitError, WorkerLostError
from tests.tiny import PYTHON, ROOT, subprocess_environment


def test_usage_errors_become_one_paragraph_and_status_2(capsys):
    @cli.main_wrapper
    def main(argv, values=None):
        raise DatasetError(f"No such\n   folder {values}.")

    assert main(["prog"], "x") == cli.USAGE_ERROR_STATUS == 2
    assert capsys.readouterr().err == "Error: No such folder x.\n"


@pytest.mark.parametrize("error_class", [WorkerLostError, CheckpointUnavailableError, RunLockWaitError])
def test_temporary_failures_become_one_paragraph_and_status_138(capsys, error_class):
    @cli.main_wrapper
    def main(argv):
        raise error_class("Try\n   again.")

    assert main(["prog"]) == error_class.exit_status == 138
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


# ERROR lines TensorFlow writes while a healthy run goes on (grappler's remapper giving up on cifar32's and
# imagenet128's discriminators), and real ERROR lines, which must get through.
BENIGN_LINES = [
    "E0000 00:00:1796634086.406060    4369 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::Apply "
    "error: fanout 'StatefulPartitionedCall/discriminator_1/Relu' exist for missing node "
    "'StatefulPartitionedCall/discriminator_1/block2_1/add'.",
    "E0000 00:00:1796634622.646824   11537 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::Apply "
    "error: fanout 'gradient_tape/discriminator_1/block1_1/sn_shortcut_conv_1/shortcut_conv_1/convolution/ShapeN' "
    "exist for missing node 'discriminator_1/block0_1/add'.",
]
ERROR_LINES = [
    "E0000 00:00:1796634086.406060    4369 cuda_dnn.cc:535] Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR",
    "E0000 00:00:1796634086.406060    4369 bfc_allocator.cc:490] Allocator (GPU_0_bfc) ran out of memory trying to "
    "allocate 2.00GiB (rounded to 2147483648) requested by op Conv2D",
    "E0000 00:00:1796634086.406060    4369 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
    "MutableGraphView::MutableGraphView error: node 'loss/mul' has self cycle fanin 'loss/mul'.",
    "E0000 00:00:1796634086.406060    4369 meta_optimizer.cc:967] layout failed: INVALID_ARGUMENT: Size of values 0 "
    "does not match size of permutation 4.",
]


def test_benign_run_lines_are_dropped_and_real_error_lines_kept(capfd):
    with cli.stderr_without_benign_lines():
        os.write(2, "".join(line + "\n" for line in BENIGN_LINES[:1] + ERROR_LINES[:2] + BENIGN_LINES[1:]
                            + ERROR_LINES[2:] + KEPT_LINES).encode())
    assert capfd.readouterr().err.splitlines() == ERROR_LINES + KEPT_LINES


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


# A command whose graph makes TensorFlow write a benign ERROR line, and which writes a real one to file descriptor 2 as
# TensorFlow's C++ code would.
ERROR_LINES_COMMAND = """
import os
from sagan_tf import cli

def residual(tf, x, kernel, bias):
    return tf.nn.bias_add(tf.nn.conv2d(tf.nn.relu(x), kernel, 1, "SAME"), bias) + x

def main(argv):
    import tensorflow as tf
    # Two residual blocks in a row, as in cifar32's discriminator: on CPU, grappler's remapper fails on this graph with
    # "remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout 'Relu_2' exist for missing node 'add'."
    blocks = tf.function(lambda x, kernel, bias: tf.nn.relu(residual(tf, residual(tf, x, kernel, bias), kernel, bias)))
    blocks(tf.ones((1, 4, 4, 4)), tf.ones((3, 3, 4, 4)), tf.ones(4))
    os.write(2, REAL_ERROR_LINE.encode() + b"\\n")
    print("level", os.environ["TF_CPP_MIN_LOG_LEVEL"], len(tf.config.list_physical_devices("CPU")))
    return 0

REAL_ERROR_LINE = {!r}
cli.run(main, argv=["prog"])
""".format(ERROR_LINES[0])


def test_a_command_keeps_tensorflow_error_lines_and_drops_its_start_up_and_benign_lines():
    # TF_CPP_MIN_LOG_LEVEL=2: INFO and WARNING C++ lines off, ERROR lines (cuDNN, NCCL, out of memory) on; it was 3,
    # which hid them. The start-up lines, "failed call to cuInit" on a CPU machine with CUDA libraries included, are
    # dropped while TensorFlow loads and looks for GPUs; the remapper's benign ERROR line while the command runs.
    env = subprocess_environment(TF_CPP_MIN_LOG_LEVEL=None, CUDA_VISIBLE_DEVICES=None)
    result = subprocess.run([PYTHON, "-c", ERROR_LINES_COMMAND], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["level 2 1"]
    assert result.stderr.splitlines() == ERROR_LINES[:1]


# A command whose main logs through TensorFlow's logger, as TensorFlow's own code does (e.g.
# MultiWorkerMirroredStrategy's "Collective all_reduce ..." INFO lines), and computes a KID as an evaluation does.
TF_LOGGING_COMMAND = """
import numpy as np
from sagan_tf import cli

def main(argv):
    import tensorflow as tf
    from sagan_tf.evaluation.metrics import scores
    tf.get_logger().warning("a TensorFlow warning")
    tf.get_logger().info("a TensorFlow INFO line")
    scores.kernel_distance(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)[::-1])
    return 0

cli.run(main)
"""


def test_tensorflow_records_are_printed_once_and_its_info_left_out():
    """TensorFlow gives its logger a handler of its own while it loads: its records came out twice ("WARNING:
    tensorflow:..." and "Warning: ...") and its INFO lines past the filter. TF-GAN's KID printed TensorFlow's 7-line
    "calling map_fn_v2 ... with back_prop=False is deprecated" warning (the filter itself:
    tests/evaluation/metrics/test_scores.py)."""
    result = subprocess.run([PYTHON, "-c", TF_LOGGING_COMMAND], cwd=ROOT, env=subprocess_environment(
        TF_CPP_MIN_LOG_LEVEL=None), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["Warning: a TensorFlow warning"], result.stderr


def test_bad_and_missing_flags_are_one_paragraph_and_status_2(capsys):
    # absl's own parser printed "FATAL Flags parsing error: ..." and exited 1.
    from absl import flags

    def flag_values():  # fresh ones each time: parsed values stay
        values = flags.FlagValues()
        flags.DEFINE_enum("strategy", "auto", ["auto", "mirrored"], "", flag_values=values)
        flags.DEFINE_integer("train_steps", None, "", lower_bound=1, flag_values=values)
        flags.DEFINE_string("model_dir", None, "", flag_values=values)
        flags.mark_flag_as_required("model_dir", flag_values=values)
        return values

    for argv, said in ((["prog", "--model_dir=a", "--strategy=foo"], "flag --strategy=foo: value should be one of"),
                       (["prog", "--model_dir=a", "--train_steps=abc"], "flag --train_steps=abc: invalid literal"),
                       (["prog", "--model_dir=a", "--train_steps=0"], "flag --train_steps=0: 0 is not"),
                       (["prog"], "flag --model_dir=None: Flag --model_dir must have a value other than None"),
                       (["prog", "--model_dir=a", "--no_such_flag=1"], "Unknown command line flag 'no_such_flag'")):
        with pytest.raises(SystemExit) as stop:
            cli.parse_flags(argv, flag_values())
        assert stop.value.code == cli.USAGE_ERROR_STATUS == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"Error: {said}") and err.count("\n") == 1 and "--help` lists every flag" in err, err
    values = flag_values()
    assert cli.parse_flags(["prog", "--model_dir=a", "--train_steps=3"], values) == ["prog"]
    assert values.train_steps == 3


def test_a_command_exits_0_on_help_and_2_on_a_bad_flag():
    # The REST client's command imports no TensorFlow, so its processes take a second; cli.run is every command's.
    environment = subprocess_environment()
    result = subprocess.run([PYTHON, "-m", "export.client", "--help"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--verbosity" in result.stdout and "--saved_model_dir" in result.stdout  # the README tells users to pass it
    result = subprocess.run([PYTHON, "-m", "export.client", "--seed=abc"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["Error: flag --seed=abc: invalid literal for int() with base 10: 'abc'. "
                                          "`python -m export.client --help` lists every flag."]
