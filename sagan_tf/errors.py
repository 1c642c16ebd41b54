"""Every error sagan_tf raises for what a user asked for, as opposed to bugs: one class per kind of failure.

Entry points report a `UsageError` (and so each subclass) as one paragraph naming the problem and the fix, with
exit status 2 and no traceback (`sagan_tf.cli.main_wrapper`); a `RetryableError` (not bad input: a fault that the
same command, run again, gets past: a lost worker, a checkpoint that storage did not serve, a run lock that could not
be decided in time) as one paragraph with exit status `RETRY_EXIT_STATUS` (138); anything else is a bug and keeps its
traceback.
This module imports nothing, so that a thin client (e.g. `export.client` over REST) can use it without TensorFlow.
"""


#: The exit status of a `RetryableError`: 138 = 128 + SIGUSR1 (10 on Linux x86 and ARM), the status Kubeflow's training
#: operator keeps for user-defined retryable errors under `restartPolicy: ExitCode` (pkg/util/train/train_util.go:
#: 130, 137, 138 and 143 as first written, kubeflow/tf-operator#518; every status from 128 up in v1.7 and later);
#: there, bad input's 2 is permanent. Kubernetes' `restartPolicy: OnFailure` restarts on any non-zero status.
RETRY_EXIT_STATUS = 138


class UsageError(ValueError):
    """Bad input from the user: an argument, a flag, a file or a directory. The message says how to fix it."""


class ConfigError(UsageError):
    """A configuration (preset plus overrides) that does not describe a buildable, trainable model."""


class CheckpointError(UsageError):
    """A run directory or checkpoint that is missing, damaged, or that does not fit the model its config describes."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read back (truncated, corrupt or missing data): resuming falls back to an
    older one; inference commands name it and the intact ones to choose from."""


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
    """A run directory that another training run writes into (`sagan_tf.run.run_lock`): the message names the holder
    (host, process, command, start) and what to do; also raised in a run whose lock another one took over."""


class WriteFailedError(UsageError):
    """A file that could not be written: no space left, no permission, a read-only filesystem
    (`sagan_tf.run.write_failures`).

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


class RetryableError(Exception):
    """A fault that running the same command again gets past, not bad input: a lost worker (`WorkerLostError`), a run
    lock whose holder could be proven neither alive nor gone in time (`RunLockWaitError`), a checkpoint that storage did
    not serve after retries (`CheckpointUnavailableError`).

    Commands report it as one paragraph, without a traceback, with exit status `exit_status` (`RETRY_EXIT_STATUS`,
    138), apart from bad input's 2, so that a scheduler's restart policy relaunches the command (README.md, Exit
    statuses).
    """

    exit_status = RETRY_EXIT_STATUS


class WorkerLostError(RetryableError):
    """A multi-worker run lost one of its workers (killed, crashed or unreachable): relaunching every worker resumes.

    Attributes: `lost_tasks` (e.g. ["worker 1"]; empty when TensorFlow's error names none) and `last_checkpoint` (the
    checkpoint a relaunch resumes from; None when none was written yet).
    """

    def __init__(self, message, lost_tasks=(), last_checkpoint=None):
        super().__init__(message)
        self.lost_tasks = list(lost_tasks)
        self.last_checkpoint = last_checkpoint


class CheckpointUnavailableError(RetryableError):
    """A checkpoint that storage did not serve (unavailable, deadline exceeded) even after retries
    (`sagan_tf.run.checkpoint.read_checkpoint`): not damaged, so nothing falls back to an older one, and not bad input.

    Commands report it as one paragraph with exit status `exit_status` (`RETRY_EXIT_STATUS`), as a lost worker.
    Attributes: `path` (the checkpoint, when known) and `tasks` (in a multi-worker run, the other workers that could
    not read it, e.g. ["worker 1"]; empty when it is this one).
    """

    def __init__(self, message, path=None, tasks=()):
        super().__init__(message)
        self.path = path
        self.tasks = list(tasks)


class RunLockWaitError(RetryableError):
    """A training start waited as long as it may (`sagan_tf.run.run_lock.WAIT_SECONDS`) for a run lock whose holder runs
    where it cannot be checked (another machine or PID namespace) and which neither went stale, nor was released, nor
    was refreshed (which would prove its holder alive) meanwhile. The message names the holder and when the lock
    counts as stale."""


__all__ = ["UsageError", "ConfigError", "CheckpointError", "DamagedCheckpointError", "CheckpointUnavailableError",
           "TrainingDivergedError", "DatasetError", "ClassifierUnavailableError", "ClassifierCardError",
           "InsufficientAccuracyError", "ServingError", "RunLockedError", "WriteFailedError", "RetryableError",
           "WorkerLostError", "RunLockWaitError", "RETRY_EXIT_STATUS"]
