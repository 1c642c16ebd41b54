"""What every command-line entry point shares: bad input becomes one paragraph and exit status 2.

A fault that rerunning the command gets past (`sagan_tf.errors.RetryableError`: a lost worker of a multi-worker run, a
checkpoint that storage did not serve after retries, a run lock whose holder could not be proven alive or gone in
time) is one paragraph too, with exit status 138 (`errors.RETRY_EXIT_STATUS`): a scheduler restarts on 138 and 143 (a
stop signal), and not on 2 (README.md, Exit statuses).

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
warns when an NVIDIA driver or TensorFlow's CUDA libraries are there and no GPU is visible), drops the one known
ERROR line of a healthy run (grappler's "remapper failed: ... Mutation::Apply error", `_BENIGN_LINES`), prints absl
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

from sagan_tf.errors import RetryableError, UsageError

#: The exit status of a command refused for bad input, a bad or missing flag included.
USAGE_ERROR_STATUS = 2
#: absl's help flags: each prints the flags and ends the command, which then exits 0.
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")
#: absl flags the README tells users to pass, listed by --help beside the command's own.
SHOWN_ABSL_FLAGS = ("verbosity",)


def report(error, stream=None):
    """Prints a `UsageError` as the one-line paragraph "Error: <message>" (whitespace collapsed)."""
    print(f"Error: {' '.join(str(error).split())}", file=stream or sys.stderr)


def main_wrapper(main):
    """Wraps an absl `main(argv)`: refuses positional arguments, and turns a `UsageError` into a printed paragraph
    and exit status `USAGE_ERROR_STATUS` (no traceback), a `RetryableError` into a paragraph and its
    `exit_status`. Other exceptions are bugs and keep their traceback."""

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
        except RetryableError as error:
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
#: The C++ lines TensorFlow writes while a healthy command runs that report nothing wrong with it: grappler's remapper
#: giving up on a graph, as "E0000 00:00:1796634086.406060    4369 meta_optimizer.cc:967] remapper failed:
#: INVALID_ARGUMENT: Mutation::Apply error: fanout 'discriminator_1/Relu' exist for missing node
#: 'discriminator_1/block2_1/add'." On CPU its oneDNN fusion of Conv2D + BiasAdd + Add into one op loses a consumer of
#: the Add when that Add's result is used again by another fusion or by the gradient (the residual discriminators of
#: cifar32 and imagenet128); the graph then runs as the earlier optimizers left it, as with the remapper off. Its other
#: failures, and every other ERROR line, stay.
_BENIGN_LINES = (rb"^E\d{4} [\d:.]+ +\d+ meta_optimizer\.cc:\d+\] remapper failed: INVALID_ARGUMENT: "
                 rb"Mutation::Apply error: fanout '[^']*' exist for missing node '[^']*'\.$")
#: Run by a child process: copies stdin to stdout without the lines that match the pattern in argv[1]. A child, so that
#: what it has read reaches the terminal even if TensorFlow aborts the process; it ignores Ctrl-C (SIGINT reaches the
#: whole foreground process group) so that the command's own lines about stopping still get through.
_FILTER = ("import re, signal, sys\n"
           "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
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


def stderr_without_loading_noise():
    """Within the block, what is written to file descriptor 2 (C++ code included) reaches it without the
    `_LOADING_NOISE` lines (see `stderr_without`)."""
    return stderr_without(_LOADING_NOISE)


def stderr_without_benign_lines():
    """Within the block, what is written to file descriptor 2 reaches it without the `_BENIGN_LINES`
    (see `stderr_without`)."""
    return stderr_without(_BENIGN_LINES)


@contextlib.contextmanager
def stderr_without(pattern):
    """Within the block, what is written to file descriptor 2 (C++ code included) reaches it without the lines that
    match `pattern`; a line-filtering child process sits in between (where none can start, nothing is filtered).

    Args:
      pattern: a regular expression (bytes) that a whole line, without its line break, matches.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    try:
        child = subprocess.Popen([sys.executable, "-S", "-c", _FILTER, pattern.decode()],
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


def parse_flags(argv, flag_values=None):
    """Parses `argv` into absl's flags as `absl.app.run` does, but the way our commands end: a bad value, an unknown or
    a missing required flag is one "Error: ..." paragraph and exit status `USAGE_ERROR_STATUS` (absl: a "FATAL Flags
    parsing error" and 1), and `--help` exits 0 (absl: 1).

    Args:
      argv: the command line, program name first.
      flag_values: the `FlagValues` to parse into; default `flags.FLAGS`.

    Returns:
      The arguments left after the flags (program name first), as absl's parser returns them.
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    try:
        return flag_values(argv)
    except flags.Error as error:
        report(UsageError(f"{str(error).rstrip('.')}. `{_command_name(argv)} --help` lists every flag."))
        sys.exit(USAGE_ERROR_STATUS)
    except SystemExit as stop:  # absl's help flags print the help, then exit 1
        if stop.code == 1 and any(arg.split("=", 1)[0] in HELP_FLAGS for arg in argv[1:]):
            sys.exit(0)
        raise


def _command_name(argv):
    """"python -m training.run" for a module run with -m, else the program's file name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name}" if spec is not None and spec.name else os.path.basename(argv[0])


def _show_absl_flags_in_help(flag_values):
    """Lists `SHOWN_ABSL_FLAGS` in `--help` (absl lists only the flags of the program's own module there)."""
    for name in SHOWN_ABSL_FLAGS:
        if name in flag_values:
            flag_values.register_key_flag_for_module(sys.argv[0], flag_values[name])


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
    from absl import flags
    _show_absl_flags_in_help(flags.FLAGS)
    with stderr_without_benign_lines() if _quiet else contextlib.nullcontext():
        app.run(main, argv=argv, flags_parser=parse_flags)


__all__ = ["main_wrapper", "report", "USAGE_ERROR_STATUS", "run", "parse_flags", "import_tensorflow",
           "requested_verbosity", "tensorflow_logs_wanted", "stderr_without", "stderr_without_loading_noise",
           "stderr_without_benign_lines", "PlainFormatter"]
