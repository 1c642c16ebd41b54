"""What every command-line entry point shares: bad input becomes one paragraph and exit status 2.

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
"""

import functools
import sys

from sagan_tf.errors import UsageError

#: The exit status of a command refused for bad input (absl's own flag errors use 1).
USAGE_ERROR_STATUS = 2


def report(error, stream=None):
    """Prints a `UsageError` as the one-line paragraph "Error: <message>" (whitespace collapsed)."""
    print(f"Error: {' '.join(str(error).split())}", file=stream or sys.stderr)


def main_wrapper(main):
    """Wraps an absl `main(argv)`: refuses positional arguments, and turns a `UsageError` into a printed paragraph
    and exit status `USAGE_ERROR_STATUS` (no traceback). Other exceptions are bugs and keep their traceback."""

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

    return wrapped


__all__ = ["main_wrapper", "report", "USAGE_ERROR_STATUS"]
