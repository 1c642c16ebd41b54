"""Errors caused by what a user asked for, as opposed to bugs.

Entry points catch `UsageError` and print its message (one paragraph naming the problem and the fix) without a
traceback; anything else is a bug and keeps its traceback.
"""


class UsageError(ValueError):
    """Bad input from the user: an argument, a flag, a file or a directory. The message says how to fix it."""


class ConfigError(UsageError):
    """A configuration (preset plus overrides) that does not describe a buildable, trainable model."""


class CheckpointError(UsageError):
    """A run directory or checkpoint that is missing, or that does not fit the model its config describes."""
