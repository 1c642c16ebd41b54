"""What every command-line entry point shares: bad input becomes one paragraph and exit status 2.

A lost worker of a multi-worker run (`sagan_tf.errors.WorkerLostError`) and a checkpoint that storage did not serve
(`sagan_tf.errors.CheckpointUnavailableError`) are one paragraph too, with exit status 75 (their `exit_status`): a
cluster manager can restart on 75 and 143 (a stop signal) and not on 2.

Each entry point (`training/run.py`, `training/evaluate.py`, `training/visualize.py`, `training/train_classifier.py`,
`export/run.py`, `export/client.py`) is written the same way:

    def define_flags(flag_values=flags.FLAGS):        # called only when the module runs as a program
        flags.DEFINE_string("model_dir", None, "...", flag_values=flag_values)

    @cli.main_wrapper
    def main(argv, values=None):                        # values: a FlagValues (tests); None: flags.FLAGS
        values = flags.FLAGS if values is None else values
        ...                                             # raises sagan_tf.errors.UsageError for bad input
        return 0

    if __name__ == "__main__":
        define_flags()
        app.run(main)

Defining the flags in a function keeps importing one entry point's functions from another (or from a test) free of
duplicate-flag errors. No flag is defined here: flags live only in entry points.

The console: a command prints its own lines, plainly ("step 100/2000 ...", "Warning: ..."), not TensorFlow's
(BUILD.md fact 12). `run` sets `TF_CPP_MIN_LOG_LEVEL=2` before TensorFlow is imported (INFO and WARNING C++ lines
off; ERROR lines of training, e.g. cuDNN, NCCL or out of memory, always show), drops the C++ lines TensorFlow writes
while it loads and looks for GPUs (they come before absl's logging is initialised, out of that variable's reach; a
GPU that cannot be used, "failed call to cuInit", is said in the command's own words instead: `training.distribute`
warns when an NVIDIA driver or TensorFlow's CUDA libraries are there and no GPU is visible), prints absl
log records without absl's "I1201 21:41:26.883657 140278019074944 file.py:330]" prefix and leaves out INFO records
of other libraries (TensorFlow's "Sharding callback duration", TFDS's "Load dataset info"). TensorFlow's lines come
back when asked for: `--verbosity=1` (absl's flag, also `-v 1`) shows everything as TensorFlow and absl print it;
`TF_CPP_MIN_LOG_LEVEL` set in the environment (e.g. 0) is left as it is and the loading lines are kept.
"""

import contextlib
import functools
import logging
import os
import re
import subprocess
import sys

from sagan_tf.errors import CheckpointUnavailableError, UsageError, WorkerLostError

#: The exit status of a command refused for bad input (absl's own flag errors use 1).
USAGE_ERROR_STATUS = 2


def report(error, stream=None):
    """Prints a `UsageError` as the one-line paragraph "Error: <message>" (whitespace collapsed)."""
    print(f"Error: {' '.join(str(error).split())}", file=stream or sys.stderr)


def main_wrapper(main):
    """Wraps an absl `main(argv)`: refuses positional arguments, and turns a `UsageError` into a printed paragraph
    and exit status `USAGE_ERROR_STATUS` (no traceback), a `WorkerLostError` or `CheckpointUnavailableError` into a
    paragraph and its `exit_status`. Other exceptions are bugs and keep their traceback."""

    @functools.wraps(main)
    def wrapped(argv, *args, **kwargs):
        if len(argv) > 1:
            report(UsageError(f"Unexpected arguments: {' '.join(argv[1:])}. Every option is a --flag=value; see "
                              "--help."))
            return USAGE_ERROR_STATUS
        try:
            return main(argv, *args, **kwargs)
        except UsageError as error:
            report(error)
            return USAGE_ERROR_STATUS
        except (WorkerLostError, CheckpointUnavailableError) as error:
            report(error)
            return error.exit_status

    return wrapped


#: The lines TensorFlow's C++ code writes while it loads and looks for GPUs (absl's notice, and INFO, WARNING and ERROR
#: lines such as "I0000 00:00:1796171431.662758    3530 cudart_stub.cc:31] Could not find cuda drivers ..." or
#: "cuda_platform.cc:52] failed call to cuInit", which CPU machines with CUDA libraries print on every start); FATAL
#: lines stay.
_LOADING_NOISE = (rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                  rb"|[IWE]\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] .*"
                  rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler "
                  rb"flags\.)$")
#: Run by a child process while TensorFlow loads: copies stdin to stdout without the `_LOADING_NOISE` lines. A child,
#: so that what it has read reaches the terminal even if TensorFlow aborts the process while loading.
_FILTER = ("import re, sys\n"
           "noise = re.compile(sys.argv[1].encode())\n"
           "for line in sys.stdin.buffer:\n"
           "    if not noise.match(line.rstrip(b'\\r\\n')):\n"
           "        sys.stdout.buffer.write(line)\n"
           "        sys.stdout.buffer.flush()\n")
#: Where this project's code lives: INFO records from elsewhere are another library's.
_OWN_DIRECTORIES = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name) + os.sep
                         for name in ("sagan_tf", "training", "export"))


def requested_verbosity(argv):
    """The value of absl's `--verbosity` (`-v`) flag in `argv`, or None when it is not given (or not a number)."""
    for index, argument in enumerate(argv[1:], start=1):
        match = re.fullmatch(r"--?(?:verbosity|v)(?:=(.*))?", argument)
        if match:
            value = match[1] if match[1] is not None else (argv[index + 1] if index + 1 < len(argv) else "")
            try:
                return int(value)
            except ValueError:
                return None
    return None


def tensorflow_logs_wanted(argv, environ):
    """Whether TensorFlow's own log lines were asked for: `--verbosity >= 1`, or `TF_CPP_MIN_LOG_LEVEL` in `environ`
    (the C++ lines only)."""
    verbosity = requested_verbosity(argv)
    return (verbosity is not None and verbosity >= 1) or "TF_CPP_MIN_LOG_LEVEL" in environ


class PlainFormatter(logging.Formatter):
    """A log record as a command prints it: the message, after "Warning: " or "Error: " from WARNING up."""

    def format(self, record):
        message = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"Error: {message}"
        if record.levelno >= logging.WARNING:
            return f"Warning: {message}"
        return message


def _own_or_important(record):
    """Keeps WARNING and above from anywhere, INFO and below only from this project's code."""
    return record.levelno >= logging.WARNING or os.path.abspath(record.pathname).startswith(_OWN_DIRECTORIES)


#: Whether this process is a command run by `run` that filters TensorFlow's loading lines (see `import_tensorflow`).
_quiet = False


@contextlib.contextmanager
def stderr_without_loading_noise():
    """Within the block, what is written to file descriptor 2 (C++ code included) reaches it without the
    `_LOADING_NOISE` lines; a line-filtering child process sits in between (where none can start, nothing is
    filtered)."""
    sys.stderr.flush()
    terminal = os.dup(2)
    try:
        child = subprocess.Popen([sys.executable, "-S", "-c", _FILTER, _LOADING_NOISE.decode()],
                                 stdin=subprocess.PIPE, stdout=terminal)
    except OSError:
        os.close(terminal)
        yield
        return
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        child.stdin.close()
        child.wait()


def import_tensorflow(quiet=None):
    """Imports TensorFlow; in a command run by `run`, with the C++ lines it writes while loading left out of stderr.

    Args:
      quiet: whether to leave those lines out; None: as `run` decided for this process (False outside commands).

    Returns:
      The `tensorflow` module.
    """
    quiet = _quiet if quiet is None else quiet
    if "tensorflow" in sys.modules or not quiet:
        import tensorflow
        return tensorflow
    with stderr_without_loading_noise():
        import tensorflow
        # Looking for GPUs (cuInit) is the last of the start-up lines; it leaves the runtime unconfigured, so logical
        # devices can still be set up afterwards.
        tensorflow.config.list_physical_devices("GPU")
    return tensorflow


def _drop_tensorflow_handler():
    """Leaves TensorFlow's records to the root logger's handler alone (absl's, set up by `app.run`).

    TensorFlow gives its "tensorflow" logger a handler of its own when the logger is first used before the root
    logger has one, as it is while TensorFlow loads: each of its records was then printed twice, once as
    "WARNING:tensorflow:..." past the filter above (INFO records too, e.g. MultiWorkerMirroredStrategy's "Collective
    all_reduce ..." lines, one per traced all-reduce).
    """
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)


def run(main, define_flags=None, tensorflow=True, argv=None):
    """Runs an entry point's `main` as a command: the console set up as the module docstring says, then
    `define_flags()` and `absl.app.run(main)`.

    Args:
      main: the entry point's `main(argv)`.
      define_flags: the entry point's `define_flags`, called with no arguments (on `flags.FLAGS`); None: none.
      tensorflow: import TensorFlow first (False for a command that may not need it, e.g. a REST client, which
        then imports it with `import_tensorflow()` where it does).
      argv: the command line; default `sys.argv`.
    """
    from absl import app
    from absl import logging as absl_logging

    global _quiet
    argv = sys.argv if argv is None else argv
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _quiet = not tensorflow_logs_wanted(argv, os.environ)
    if _quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # ERROR lines always show
    verbosity = requested_verbosity(argv)
    if verbosity is None or verbosity < 1:
        handler = absl_logging.get_absl_handler()
        handler.setFormatter(PlainFormatter())
        handler.addFilter(_own_or_important)
    if tensorflow:
        import_tensorflow()
        _drop_tensorflow_handler()
    if define_flags is not None:
        define_flags()
    app.run(main, argv=argv)


__all__ = ["main_wrapper", "report", "USAGE_ERROR_STATUS", "run", "import_tensorflow", "requested_verbosity",
           "tensorflow_logs_wanted", "stderr_without_loading_noise", "PlainFormatter"]
