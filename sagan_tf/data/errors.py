"""The error raised for bad input-pipeline arguments and missing data."""

from sagan_tf.errors import UsageError


class DatasetError(UsageError):
    """A dataset cannot be loaded as asked.

    The message is one paragraph that names the problem and says how to fix it (which files to put where,
    which names or values are accepted). It subclasses `UsageError` (a `ValueError`), which
    entry points report without a traceback.
    """
