"""Every error sagan_tf raises for what a user asked for, as opposed to bugs: one class per kind of failure.

Entry points report a `UsageError` (and so each subclass) as one paragraph naming the problem and the fix, with
exit status 2 and no traceback (`sagan_tf.cli.main_wrapper`); a `WorkerLostError` (not bad input: a cluster fault)
or a `CheckpointUnavailableError` (storage that did not answer) as one paragraph with its own exit status; anything
else is a bug and keeps its traceback.
This module imports nothing, so that a thin client (e.g. `export.client` over REST) can use it without TensorFlow.
"""


class UsageError(ValueError):
    """Bad input from the user: an argument, a flag, a file or a directory. The message says how to fix it."""


class ConfigError(UsageError):
    """A configuration (preset plus overrides) that does not describe a buildable, trainable model."""


class CheckpointError(UsageError):
    """A run directory or checkpoint that is missing, damaged, or that does not fit the model its config describes."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read back (truncated, corrupt or missing data): resuming falls back to an
    older one; inference commands name it and the intact ones to choose from."""


class CheckpointUnavailableError(Exception):
    """A checkpoint that storage did not serve (unavailable, deadline exceeded) even after retries
    (`sagan_tf.checkpoint.read_checkpoint`): not damaged, so nothing falls back to an older one, and not bad input.

    Commands report it as one paragraph with exit status `exit_status` (75: EX_TEMPFAIL of sysexits.h, "temporary
    failure, try again"), as a lost worker. Attributes: `path` (the checkpoint, when known) and `tasks` (in a
    multi-worker run, the other workers that could not read it, e.g. ["worker 1"]; empty when it is this one).
    """

    exit_status = 75

    def __init__(self, message, path=None, tasks=()):
        super().__init__(message)
        self.path = path
        self.tasks = list(tasks)


class TrainingDivergedError(UsageError):
    """A training step produced a non-finite loss or weight (the hyperparameters let training diverge).

    The message names the step, the last good checkpoint and what to try. Attributes: `step` (the first non-finite
    step) and `values` (the losses logged at that step).
    """

    def __init__(self, message, step=None, values=None):
        super().__init__(message)
        self.step = step
        self.values = dict(values or {})


class DatasetError(UsageError):
    """A dataset cannot be loaded as asked: an unknown name or split, missing data, or bad pipeline arguments.

    The message names the problem and says how to fix it (which files to put where, which names or values are
    accepted).
    """


class ClassifierUnavailableError(UsageError):
    """The classifier behind FID/IS/KID cannot be loaded here: no such file, or no network for a TF-Hub handle."""


class ClassifierCardError(UsageError):
    """A domain classifier whose card does not fit: other images or image size, or a file that is not the one its
    card describes (corrupt or replaced)."""


class InsufficientAccuracyError(UsageError):
    """A freshly trained classifier is less accurate than required, so it was not saved."""


class ServingError(UsageError):
    """A request to an exported generator that cannot be made, or that the model or server refused."""


class RunLockedError(UsageError):
    """A run directory that another training run writes into (`sagan_tf.run_lock`): the message names the holder
    (host, process, command, start) and what to do; also raised in a run whose lock another one took over."""


class WriteFailedError(UsageError):
    """A file that could not be written: no space left, no permission, a read-only filesystem
    (`sagan_tf.write_failures`).

    The message names the file, the cause and the last good checkpoint. Attributes: `what` (e.g. "checkpoint"),
    `path`, `cause` (e.g. "no space left on device"), `last_good` (a checkpoint path; "" when none was written yet;
    None when not known where the write failed) and `removed` (the partial files of the failed write, removed).
    """

    def __init__(self, message, what=None, path=None, cause=None, last_good=None, removed=()):
        super().__init__(message)
        self.what = what
        self.path = path
        self.cause = cause
        self.last_good = last_good
        self.removed = tuple(removed)


class WorkerLostError(Exception):
    """A multi-worker run lost one of its workers (killed, crashed or unreachable): a fault to retry, not bad input.

    Commands report it as one paragraph, without a traceback, with exit status `exit_status` (75: EX_TEMPFAIL of
    sysexits.h, "temporary failure, try again"), apart from bad input's 2, so that a cluster manager's restart policy
    can relaunch the workers on it. Attributes: `lost_tasks` (e.g. ["worker 1"]; empty when TensorFlow's error names
    none) and `last_checkpoint` (the checkpoint a relaunch resumes from; None when none was written yet).
    """

    exit_status = 75

    def __init__(self, message, lost_tasks=(), last_checkpoint=None):
        super().__init__(message)
        self.lost_tasks = list(lost_tasks)
        self.last_checkpoint = last_checkpoint


__all__ = ["UsageError", "ConfigError", "CheckpointError", "DamagedCheckpointError", "CheckpointUnavailableError",
           "TrainingDivergedError",
           "DatasetError", "ClassifierUnavailableError", "ClassifierCardError", "InsufficientAccuracyError",
           "ServingError", "RunLockedError", "WriteFailedError", "WorkerLostError"]
