"""What a multi-worker run does when one of its workers is told to stop, or is lost.

Under `MultiWorkerMirroredStrategy` every train step is one collective computation of all workers: a worker that
stops on its own (the one-process `callbacks.GracefulStop`) leaves the others waiting in a collective that cannot
complete, and they fail with a traceback and without the checkpoint the signal was meant to save.

- **A stop signal** (SIGTERM, as schedulers and spot/preemptible machines send one worker ahead of its end, or
  SIGINT) to any worker: `CoordinatedStop` makes every worker stop after the same step, where `CheckpointEvery`
  saves one checkpoint, and exit cleanly. The agreement is TensorFlow's
  `tf.distribute.experimental.PreemptionCheckpointHandler`: the signalled worker posts the step to stop at through
  the cluster's coordination service, and waits until every worker has acknowledged it before it runs that step, so
  no worker can be past it. Between signals each worker only checks a local event before a step: no cross-worker
  traffic per step.
- **A lost worker** (killed, crashed, its machine gone): the collective of the next step fails on every surviving
  worker within seconds. `lost_worker_error` turns that error into a `WorkerLostError`: one paragraph naming the
  lost task, the newest checkpoint and the way to resume (relaunch every worker with the same flags), reported by
  the command with the exit status that schedulers retry (`WorkerLostError.exit_status`, 138).
"""

import logging
import re
import signal
import threading

import tensorflow as tf

from sagan_tf import callbacks
from sagan_tf.run import checkpoint_store
from sagan_tf.errors import WorkerLostError

#: The exit status of a worker stopped because another worker received a stop signal: 128 + SIGTERM, the status
#: TensorFlow's own preemption setup (on Google Cloud) gives every worker after the preemption checkpoint.
PEER_STOP_SIGNAL = signal.SIGTERM
#: Errors of a collective step whose peer is gone: connection reset or refused (Unavailable), aborted or cancelled
#: collectives, missed deadlines and heartbeats.
_LOST_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                     tf.errors.DeadlineExceededError)
#: Messages of other error types that TensorFlow raises when a peer of a collective is gone.
_LOST_PEER_MESSAGES = re.compile(r"Collective ops is aborted|coordination service|heartbeat|Connection reset|"
                                 r"Socket closed|failed to connect", re.IGNORECASE)
_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def _not_the_handlers_own_deprecation(record):
    # TensorFlow 2.21's handler reads its own deprecated `total_run_calls` when it stops, and logs that deprecation
    # to its users, who did not call it.
    return "PreemptionCheckpointHandler.total_run_calls" not in record.getMessage()


#: The names of the threads the handler starts (TF 2.21): one polls this worker's signal, one waits for the step.
_HANDLER_THREADS = ("WorkerTerminationSignalWatcher-", "PeerTerminationWatcher-")


def _quiet_handler_threads(previous):
    """A `threading.excepthook` that leaves out the traceback of a handler thread whose wait on the coordination
    service fails because the chief (which hosts it) is gone: the training loop reports that lost worker."""
    def hook(args):
        if not (args.thread is not None and args.thread.name.startswith(_HANDLER_THREADS)
                and issubclass(args.exc_type, tf.errors.OpError)):
            previous(args)
    hook.quiets_handler_threads = True
    return hook


class CoordinatedStop(callbacks.GracefulStop):
    """`GracefulStop` for a run of several workers: a signal to any worker stops every worker after the same step.

    The signal is only recorded where it arrives (`signal_received`); a `PreemptionCheckpointHandler` (polling that
    record once a second) agrees on a step with every worker, and before that step each worker sets
    `model.stop_training`: `fit` runs it and ends, and `CheckpointEvery` saves the checkpoint of that step on every
    worker (the chief's is the one kept). A worker stopped for another worker's signal sets `signal_received` to
    `PEER_STOP_SIGNAL` and `stopped_for_peer`. A second signal to a worker ends that worker at once (the others then
    report it lost).

    Args:
      strategy: the `tf.distribute.MultiWorkerMirroredStrategy` of the run (its cluster resolver names the workers).
      signals: the signal numbers to catch.
      print_fn: where the "stopping" messages go; default `print`.
    """

    def __init__(self, strategy, signals=(signal.SIGTERM, signal.SIGINT), print_fn=None):
        super().__init__(signals=signals, print_fn=print_fn)
        self.stopped_for_peer = False
        self._stop_pending = False
        config = tf.distribute.experimental.TerminationConfig(
            termination_watcher_fn=lambda: self.signal_received is not None, exit_fn=self._stop_every_worker,
            grace_period=0, save_fn=lambda: None)  # CheckpointEvery saves when fit ends
        tf_logger = logging.getLogger("tensorflow")
        if _not_the_handlers_own_deprecation not in tf_logger.filters:
            tf_logger.addFilter(_not_the_handlers_own_deprecation)
        if not getattr(threading.excepthook, "quiets_handler_threads", False):
            threading.excepthook = _quiet_handler_threads(threading.excepthook)
        # The handler wants a checkpoint manager to restore from when it starts; this run restores its own.
        with checkpoint_store.empty_manager() as manager:
            self.handler = tf.distribute.experimental.PreemptionCheckpointHandler(strategy.cluster_resolver, manager,
                                                                                  termination_config=config)

    def _handle(self, signum, frame):
        if self.signal_received is None:
            self.signal_received = signum
            self.print_fn(f"Received {signal.Signals(signum).name}: every worker stops after the same step and "
                          "saves a checkpoint there (send it again to stop this worker at once).")
        self._restore(signum)

    def _stop_every_worker(self):
        # Called by the handler, on every worker, before the agreed step (TensorFlow's TerminationConfig.exit_fn).
        self._stop_pending = True

    def on_train_begin(self, logs=None):
        # A signal received before this fit is acted on at the agreed step, like one during it: a worker that stopped
        # at once would leave the others waiting in the step's collectives.
        signal_received, self.signal_received = self.signal_received, None
        try:
            super().on_train_begin(logs)
        finally:
            self.signal_received = signal_received

    def on_train_batch_begin(self, batch, logs=None):
        self.handler.save_checkpoint_if_preempted()  # counts the call: every worker counts the same steps
        if self._stop_pending and not self.model.stop_training:
            self.model.stop_training = True  # fit runs this step on every worker, then ends
            if self.signal_received is None:
                self.signal_received = PEER_STOP_SIGNAL
                self.stopped_for_peer = True
                self.print_fn("Another worker received a stop signal: every worker stops after the next step and "
                              "saves a checkpoint there.")


def is_lost_worker(error):
    """Whether `error`, raised by a multi-worker step or callback, says that another worker is gone."""
    if isinstance(error, _LOST_PEER_ERRORS):
        return True
    return isinstance(error, tf.errors.OpError) and bool(_LOST_PEER_MESSAGES.search(str(error)))


def lost_tasks(error, own_task):
    """The tasks other than `own_task` that `error`'s message names, e.g. ["worker 1"], in order."""
    found = []
    for job, index in _TASK.findall(str(error)):
        name = f"{job} {index}"
        if name != own_task and name not in found:
            found.append(name)
    return found


def lost_worker_error(error, own_task, last_checkpoint):
    """The `WorkerLostError` that reports `error` (a lost peer of a multi-worker run) in one paragraph.

    Args:
      error: the `tf.errors.OpError` (see `is_lost_worker`).
      own_task: this process's task, e.g. "worker 0".
      last_checkpoint: the newest checkpoint of the run (its path), or None when none was written yet.

    Returns:
      A `WorkerLostError`.
    """
    tasks = lost_tasks(error, own_task)
    lost = f"Lost {' and '.join(tasks)}" if tasks else "Lost another worker"
    first_line = " ".join(str(error).split("\n", 1)[0].split())
    if len(first_line) > 300:
        first_line = first_line[:297] + "..."
    resume = (f"the run resumes from {last_checkpoint}" if last_checkpoint else
              "no checkpoint was written yet, so the run starts over")
    return WorkerLostError(
        f"{lost} of this multi-worker run (killed, crashed or unreachable); {own_task} stopped. Relaunch every "
        f"worker with the same flags and TF_CONFIG: {resume}. (TensorFlow reported {type(error).__name__}: "
        f"{first_line})", lost_tasks=tasks, last_checkpoint=last_checkpoint)


__all__ = ["CoordinatedStop", "PEER_STOP_SIGNAL", "is_lost_worker", "lost_tasks", "lost_worker_error"]
