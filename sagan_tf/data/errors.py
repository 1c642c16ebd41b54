"""The error raised for bad input-pipeline arguments and missing data."""


class DatasetError(ValueError):
    """A dataset cannot be loaded as asked.

    The message is one paragraph that names the problem and says how to fix it (which files to put where,
    which names or values are accepted). It subclasses `ValueError`, so callers that already catch bad
    arguments keep working.
    """
