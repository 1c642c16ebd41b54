"""One writer per run directory: the lock a training run holds on its directory while it writes into it.

    lock = run_lock.take_run_directory(run_dir)     # RunLockedError while another live run holds it
    try:
        ...                                         # train; LockWatch(lock) among the fit callbacks
    finally:
        lock.release()

The lock is the file <model_dir>/training.lock (`RunDirectory.lock_path`). It names its holder: host, process id,
the process's start time (Linux: from /proc/<pid>/stat) and the machine's boot id, the command, when it was taken,
and the holder's staleness rule. It is created atomically: written to a temporary file, then hard-linked into place,
and the link fails when the lock exists, so of two runs started at the same moment exactly one gets it (on a
filesystem without hard links: `O_CREAT | O_EXCL`). The holder refreshes the file's modification time every
`heartbeat_seconds` (60 s) from a background thread and removes the file when training ends (normally, by an
error, or stopped by SIGTERM/Ctrl-C); a killed process leaves it behind.

A start that finds the lock held takes it over with a warning when its holder is gone, refuses to train
(`RunLockedError`, naming the holder and what to do; exit status 2) when its holder provably runs, and waits when
neither can be told yet:

- holder on this machine (same host name, boot id and PID namespace): gone when no process runs with its PID and
  start time (a killed run; a recycled PID has another start time; a zombie counts as gone), else alive;
- holder on another machine, or in another PID namespace (a container, e.g. the same pod restarted), where its PID
  says nothing here: gone when the lock has not been refreshed for the holder's `stale_seconds` (3 heartbeats,
  3 minutes; locks of earlier versions declare 10 minutes): its host crashed, lost the filesystem, or this is the
  same job relaunched by a scheduler. Until then the start waits, printing one line that says until when and why,
  and looks at the lock every `POLL_SECONDS`: it takes the lock once it is released or stale, and refuses once it
  is refreshed (a refresh after the wait began proves its holder alive). A wait that runs out (`WAIT_SECONDS`,
  15 minutes: a holder that declares a longer staleness time, or a clock running ahead) ends with
  `RunLockWaitError`, whose exit status (138) schedulers retry. This needs the hosts' clocks to agree to well within
  a heartbeat (NTP). A machine with the same host name but another boot id counts as another machine (a rebooted
  host waits out the staleness too).

Taking over is race-free as well: a second file, <model_dir>/training.lock.takeover, created the same atomic way,
admits one taker at a time (one `TAKEOVER_STALE_SECONDS`, 10 s, old is a dead taker's and is cleared; a start keeps
trying as long); it re-reads the lock and replaces it only if it still holds the stale record, and a plain start that
wins the lock in between makes the taker refuse. A holder whose lock was taken over anyway (its heartbeat
was judged stale: e.g. a process stopped for longer than the staleness time) or removed by hand notices at its next
heartbeat, or before its next step when the heartbeat is overdue (`RunLock.check`), and `LockWatch` ends its
training before the next step instead of writing beside the new holder.

What it guarantees: on a local filesystem and on NFS (where hard links are atomic), at most one live process holds
the lock at any time. Object stores (gs://, s3://: a `tf.io.gfile` path with a scheme) have no atomic exclusive
create, so there the lock is written and read back: two runs started within the same second may both start
training, and the one whose record was overwritten stops at its first heartbeat (at most `heartbeat_seconds` of
writing side by side).

Only the training chief takes the lock (under multi-worker training only the chief writes the run). The readers,
`training.evaluate`, `training.visualize` and `export.run`, never write into checkpoints/ and ignore the lock: they
work on a run that is training.
"""

import atexit
import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import uuid

import keras
import tensorflow as tf
from absl import logging

from sagan_tf.run import write_failures
from sagan_tf.run.checkpoint_store import CheckpointStore
from sagan_tf.errors import RETRY_EXIT_STATUS, RunLockWaitError, RunLockedError

#: Seconds between two refreshes of a held lock.
HEARTBEAT_SECONDS = 60
#: Seconds without a refresh after which a lock of another machine counts as stale: three heartbeats, so a live holder
#: would have had to miss two refreshes in a row (NFS attribute caching delays what another client sees of one by up
#: to a minute).
STALE_SECONDS = 3 * HEARTBEAT_SECONDS
#: The longest a start waits for a lock whose holder cannot be checked to be released, go stale or be refreshed
#: (`RunLock.acquire`): long enough for the staleness time of this version and of earlier ones (10 minutes); then it
#: ends with `RunLockWaitError` (exit status 138, which schedulers retry).
WAIT_SECONDS = 900
#: Seconds between two looks at the lock while waiting.
POLL_SECONDS = 5
TAKEOVER_SUFFIX = ".takeover"
#: A takeover file this old was left by a process that died while taking a lock over; `acquire` keeps trying this
#: long (while other processes take and release the lock around it), so it outlasts a dead taker's takeover file.
TAKEOVER_STALE_SECONDS = 10
#: Errors of `os.link` on filesystems without hard links.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


def _is_local(path):
    return "://" not in path or path.startswith("file://")


def _local(path):
    return path[len("file://"):] if path.startswith("file://") else path


def _read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_stat(pid):
    """(state, start time in clock ticks since boot) of a process from /proc/<pid>/stat, or None without one."""
    text = _read_text(f"/proc/{int(pid)}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)", which may hold spaces: state is field 3
    return fields[0], int(fields[19])  # field 22: starttime


def _pid_namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def this_process():
    """The holder fields of this process: host, pid, process_start, boot_id, pid_namespace, command."""
    stat = _proc_stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": stat[1] if stat else None,
            "boot_id": _read_text("/proc/sys/kernel/random/boot_id"), "pid_namespace": _pid_namespace(),
            "command": " ".join([os.path.basename(sys.executable), *sys.argv])}


def on_this_machine(holder):
    """Whether a holder record was written on this machine, where its PID can be checked."""
    mine = this_process()
    if holder.get("host") != mine["host"]:
        return False
    return all(not holder.get(key) or not mine[key] or holder[key] == mine[key] for key in ("boot_id", "pid_namespace"))


def process_alive(pid, process_start=None):
    """Whether process `pid` of this machine runs, and is the one that started at `process_start` (clock ticks
    since boot, as /proc/<pid>/stat says; None: any process with that PID)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        return state not in ("Z", "X") and (process_start is None or start == process_start)
    if os.path.isdir("/proc/self"):  # Linux, and no such process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clock(seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _duration(seconds):
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def describe_holder(holder):
    """"process 4242 on host vm (python3 .../training/run.py --model_dir=runs/x), since 2025-12-02 00:31:10 UTC"."""
    if not holder:
        return "an unknown process (the lock file cannot be read)"
    text = f"process {holder.get('pid')} on host {holder.get('host')}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    if holder.get("started"):
        text += f", since {_clock(holder['started'])}"
    return text


class RunLock:
    """The lock of one run directory (see the module docstring).

    Args:
      path: the lock file (`RunDirectory.lock_path`; any `tf.io.gfile` path).
      heartbeat_seconds: seconds between refreshes while held.
      stale_seconds: the staleness time this holder declares: a start on another machine takes the lock over after
        this long without a refresh.
      wait_seconds: the longest `acquire` waits for a lock whose holder cannot be checked.
      warn_fn: where the warnings go (a takeover, a wait, a lost lock); default `absl.logging.warning`.
    """

    def __init__(self, path, heartbeat_seconds=HEARTBEAT_SECONDS, stale_seconds=STALE_SECONDS,
                 wait_seconds=WAIT_SECONDS, warn_fn=None):
        if not 0 < heartbeat_seconds < stale_seconds:
            raise ValueError(f"Need 0 < heartbeat_seconds < stale_seconds. Received: {heartbeat_seconds}, "
                             f"{stale_seconds}")
        self.path = str(path)
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.wait_seconds = wait_seconds
        self.warn_fn = warn_fn or logging.warning
        self.local = _is_local(self.path)
        self.record = None  # this holder's record while the lock is held
        self.lost = None  # why the lock is no longer this run's, once it is not
        self._stop = threading.Event()
        self._thread = None
        self._confirmed = None  # time.monotonic() when the lock was last seen to be this run's

    def __repr__(self):
        return f"RunLock({self.path!r}, held={self.held})"

    @property
    def held(self):
        return self.record is not None and self.lost is None

    def read(self, path=None):
        """(record, modification time, text) of the lock file (or of `path`), or None when there is none. The
        record is {} for a file that is not a lock record."""
        path = path or self.path
        try:
            if self.local:
                with open(_local(path)) as f:
                    text = f.read()
                mtime = os.stat(_local(path)).st_mtime
            else:
                with tf.io.gfile.GFile(path) as f:
                    text = f.read()
                mtime = tf.io.gfile.stat(path).mtime_nsec / 1e9
        except (FileNotFoundError, tf.errors.NotFoundError):
            return None
        try:
            record = json.loads(text)
        except ValueError:
            record = {}
        return (record if isinstance(record, dict) else {}), mtime, text

    def _last_refresh(self, found):
        """(when the lock file `found` was last refreshed, the staleness time its holder declared)."""
        holder, mtime, _ = found
        stale = float(holder.get("stale_seconds") or self.stale_seconds)
        return max(mtime, float(holder.get("refreshed") or 0)), stale

    def holder_state(self, found, watching_since=None):
        """What is known of the holder of a lock file as `read` returns it, and the sentence saying why.

        Args:
          found: the lock file, as `read` returns it.
          watching_since: when this start began to wait for the lock (`time.time()`; None: it has not): a refresh
            since then proves its holder alive.

        Returns:
          (state, why): state "gone" (it may be taken over), "alive" (its holder provably runs) or "unknown" (its
          holder runs where its process cannot be checked, and the lock is not stale yet).
        """
        holder = found[0]
        refreshed, stale = self._last_refresh(found)
        age = time.time() - refreshed
        if holder.get("token") and on_this_machine(holder):
            if process_alive(holder.get("pid"), holder.get("process_start")):
                return "alive", "it still runs on this machine"
            return "gone", (f"no process {holder.get('pid')} that started then runs on this machine any more (it ended "
                            "without releasing the lock, e.g. killed)")
        if age >= stale:
            return "gone", (f"the lock was last refreshed {_duration(age)} ago, longer than the {_duration(stale)} "
                            "after which a lock of another machine counts as stale")
        if not holder.get("token"):
            return "unknown", (f"the file is no lock record, written {_duration(age)} ago: a run may be starting; it "
                               f"counts as stale from {_clock(refreshed + stale)}")
        if watching_since is not None and refreshed > watching_since:
            took = float(holder.get("started") or 0) > watching_since
            return "alive", (f"it {'took' if took else 'refreshed'} the lock at {_clock(refreshed)}, while this start "
                             "waited for it to go stale, so it runs")
        where = "its host" if holder.get("host") != socket.gethostname() else "another boot or PID namespace"
        return "unknown", (f"it runs on {where}, from where its process cannot be checked, and refreshed the lock "
                           f"{_duration(age)} ago; the lock counts as stale from {_clock(refreshed + stale)} "
                           f"({_duration(stale)} without a refresh)")

    def _refusal(self, found, why):
        holder = found[0]
        path, directory = self.path, os.path.dirname(self.path) or "."
        stop = ""
        if holder.get("token") and on_this_machine(holder):
            if holder.get("pid") == os.getpid():
                stop = (" It is this very process: a Trainer of that directory that has not trained yet (its train() "
                        "releases the lock).")
            else:
                stop = (f" To stop it: kill {holder.get('pid')} (SIGTERM: it saves a checkpoint and exits), then rerun "
                        "this command to resume.")
        elif holder.get("host"):
            stop = f" To stop it, send SIGTERM to process {holder.get('pid')} on {holder.get('host')}."
        return (f"{directory} is in use by another training run: its lock {path} is held by "
                f"{describe_holder(holder)}; {why}. Two runs writing into one directory overwrite each other's "
                "checkpoints, so this one stops "
                f"before writing anything. Wait for that run to end, or train into another --model_dir.{stop} If you "
                f"are sure that run is gone, delete {path}. Reading the run (training.evaluate, training.visualize, "
                "export.run) needs no lock.")

    def _create(self, path, record):
        """Creates the file `path` holding `record` unless it exists; returns whether it did."""
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        if not self.local:  # no atomic exclusive create: write, then read back (see the module docstring)
            if tf.io.gfile.exists(path):
                return False
            with tf.io.gfile.GFile(path, "w") as f:
                f.write(text)
            found = self.read(path)
            return found is not None and found[0].get("token") == record["token"]
        path = _local(path)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        try:  # the temporary file goes also when writing it fails (a full disk)
            with open(temporary, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.link(temporary, path)  # complete the moment it appears, and only if nothing is there
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:
            if not os.path.isdir(os.path.dirname(path) or "."):
                raise
            # The holder's start removed this temporary file as an interrupted write's (`take_run_directory`): the
            # lock exists, or existed a moment ago.
            return False
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "w") as f:
                f.write(text)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def _remove(self, path):
        try:
            if self.local:
                os.unlink(_local(path))
            else:
                tf.io.gfile.remove(path)
        except (FileNotFoundError, tf.errors.NotFoundError):
            pass

    def _take_over(self, stale, record):
        """Replaces the stale lock `stale` (as `read` returned it) by `record`, one taker at a time; returns whether
        this process now holds the lock."""
        guard = self.path + TAKEOVER_SUFFIX
        if not self._create(guard, record):
            found = self.read(guard)
            if found is None or time.time() - found[1] < TAKEOVER_STALE_SECONDS:
                return False
            self._remove(guard)  # its taker died half-way
            if not self._create(guard, record):
                return False
        try:
            current = self.read()
            if current is not None and current[2] != stale[2]:
                return False  # taken (or released and taken) since it was read
            if current is not None:
                self._remove(self.path)
            return self._create(self.path, record)  # False when a plain start won it in between
        finally:
            self._remove(guard)

    def acquire(self):
        """Takes the lock, or a stale one over (with a warning); returns self.

        A lock whose holder runs where it cannot be checked (another machine or PID namespace) and is not stale yet
        makes it wait, with one warning saying until when and why, at most `wait_seconds`: a lock released or gone
        stale meanwhile is taken; one refreshed meanwhile proves its holder alive.

        Raises:
          RunLockedError: a live run holds it (the message names it and what to do).
          RunLockWaitError: the wait ran out with the holder neither proven alive nor gone.
          WriteFailedError: the lock cannot be written (no space, no permission, a read-only filesystem).
        """
        if self.record is not None:
            raise RuntimeError(f"{self!r} is held already")
        directory = os.path.dirname(self.path)
        deadline = time.monotonic() + TAKEOVER_STALE_SECONDS
        watching_since = wait_deadline = None
        with write_failures.reporting("run lock", self.path):
            if directory:
                tf.io.gfile.makedirs(directory)
            last = False
            while not last:
                # The last try starts after the deadline: a takeover file that was there when this call (or its last
                # wait) began is stale by then.
                last = time.monotonic() >= deadline
                record = {**this_process(), "token": uuid.uuid4().hex, "started": time.time(),
                          "refreshed": time.time(), "heartbeat_seconds": self.heartbeat_seconds,
                          "stale_seconds": self.stale_seconds}
                if self._create(self.path, record):
                    return self._hold(record)
                looked_at = time.time()
                found = self.read()
                if found is None:
                    continue  # released in between: try again
                state, why = self.holder_state(found, watching_since)
                if state == "alive":
                    raise RunLockedError(self._refusal(found, why))
                if state == "gone":
                    if self._take_over(found, record):
                        self.warn_fn(f"Took over the lock {self.path} of {describe_holder(found[0])}: {why}.")
                        return self._hold(record)
                    if not last:
                        time.sleep(0.05 + 0.1 * (uuid.uuid4().int % 10) / 10)  # another taker: let it finish
                    continue
                refreshed, stale = self._last_refresh(found)
                if watching_since is None:  # from this look on, a refresh proves the holder alive
                    watching_since, wait_deadline = looked_at, time.monotonic() + self.wait_seconds
                    self.warn_fn(self._waiting(found, why, refreshed + stale, time.time() + self.wait_seconds))
                left = wait_deadline - time.monotonic()
                if left <= 0:
                    raise RunLockWaitError(self._wait_ran_out(found, why))
                time.sleep(max(0.0, min(POLL_SECONDS, left, refreshed + stale - time.time())))
                deadline, last = time.monotonic() + TAKEOVER_STALE_SECONDS, False
        raise RunLockedError(f"Could not take the lock {self.path}: other processes kept taking it over for "
                             f"{TAKEOVER_STALE_SECONDS} s. Check what else trains into {directory or '.'}, then rerun.")

    def _waiting(self, found, why, stale_at, give_up_at):
        """The line a start prints when it begins to wait for the lock `found`."""
        if stale_at <= give_up_at:
            until, then = stale_at, "takes the lock over then (or once it is released)"
        else:
            until, then = give_up_at, (f"takes it if it is released by then, else ends with exit status "
                                       f"{RETRY_EXIT_STATUS} for a scheduler to retry")
        return (f"Waiting until {_clock(until)} for the lock {self.path} of {describe_holder(found[0])}: {why}. This "
                f"start {then}; if that run refreshes the lock meanwhile, it runs, and this start stops.")

    def _wait_ran_out(self, found, why):
        return (f"Waited {_duration(self.wait_seconds)} for the lock {self.path} of {describe_holder(found[0])}, which "
                f"was neither released nor refreshed meanwhile: {why}. This start ends before writing anything; run "
                f"the same command again later (a scheduler retries this exit status, {RETRY_EXIT_STATUS}), or, if "
                f"you are sure that run is gone, delete {self.path} first.")

    def _hold(self, record):
        self.record, self.lost, self._confirmed = record, None, time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat of {self.path}", daemon=True)
        self._thread.start()
        atexit.register(self.release)
        return self

    def _beat(self):
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                if not self.refresh():
                    return
            except (OSError, tf.errors.OpError) as error:  # e.g. the filesystem is away for a moment: try again
                self.warn_fn(f"Could not refresh the lock {self.path} ({error}); trying again in "
                             f"{self.heartbeat_seconds} s.")

    def refresh(self):
        """Marks the held lock alive now. Returns False, setting `lost` and warning, when the lock file is gone or
        holds another run's record."""
        current = self.read()
        if current is None or current[0].get("token") != self.record["token"]:
            taker = "it was removed" if current is None else f"it is held by {describe_holder(current[0])}"
            self.lost = (f"This run lost its lock {self.path}: {taker}, so another run may be writing into "
                         f"{os.path.dirname(self.path) or '.'}. Training stops before its next step; check which run "
                         "should continue, and rerun it.")
            self.warn_fn(self.lost)
            return False
        if self.local:
            os.utime(_local(self.path))
        else:
            self.record = {**self.record, "refreshed": time.time()}
            with tf.io.gfile.GFile(self.path, "w") as f:
                f.write(json.dumps(self.record, indent=2, sort_keys=True) + "\n")
        self._confirmed = time.monotonic()
        return True

    def check(self):
        """Raises `RunLockedError` once the lock is no longer this run's (see `refresh`). When the heartbeat is
        overdue (this process was stopped or starved for more than two heartbeats, close to the staleness time after
        which another start takes the lock over), it first refreshes the lock itself, so that such a run finds out
        before its next step rather than at its next heartbeat."""
        if self.held and time.monotonic() - self._confirmed > 2 * self.heartbeat_seconds:
            with contextlib.suppress(OSError, tf.errors.OpError):  # the heartbeat retries and warns
                self.refresh()
        if self.lost is not None:
            raise RunLockedError(self.lost)

    def release(self):
        """Stops the heartbeat and removes the lock file if it is still this run's. Never raises."""
        if self.record is None:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        atexit.unregister(self.release)
        try:
            current = self.read()
            if current is not None and current[0].get("token") == self.record["token"]:
                self._remove(self.path)
        except (OSError, tf.errors.OpError) as error:
            self.warn_fn(f"Could not remove the lock {self.path} ({error}); the next run takes it over as its "
                         "holder is gone.")
        self.record = None


class LockWatch(keras.callbacks.Callback):
    """Ends `fit` with the `RunLockedError` of a lost lock (`RunLock.check`) before the next step and before the
    end-of-training callbacks write, so a run whose lock was taken over writes nothing more. Put it first. It has
    no `on_train_batch_end`, which would turn off Keras's asynchronous dispatch of the steps."""

    def __init__(self, lock):
        super().__init__()
        self.lock = lock

    def on_train_batch_begin(self, batch, logs=None):
        self.lock.check()

    def on_train_end(self, logs=None):
        self.lock.check()


def take_run_directory(run_dir, warn_fn=None, **lock_options):
    """Locks a run directory (a `RunDirectory`) for this training run, then removes what interrupted writes left
    there (`CheckpointStore.interrupted_writes` and `write_failures.interrupted_writes`: only the holder may, as a
    live writer's temporary files look the same), with a warning naming them. Returns the held `RunLock`;
    `lock_options` go to it.

    Raises:
      RunLockedError: another live run holds the directory.
      WriteFailedError: the lock cannot be written.
    """
    warn_fn = warn_fn or logging.warning
    lock = RunLock(run_dir.lock_path, warn_fn=warn_fn, **lock_options).acquire()
    try:
        removed = write_failures.remove(sorted({*CheckpointStore(run_dir).interrupted_writes(),
                                                *write_failures.interrupted_writes(run_dir)}))
    except BaseException:
        lock.release()
        raise
    if removed:
        names = ", ".join(os.path.relpath(path, run_dir.path) if _is_local(path) else path for path in removed)
        warn_fn(f"Removed what interrupted writes left in {run_dir.path}: {names}. They were never complete, so no "
                "checkpoint or record was lost with them; training resumes from the newest complete checkpoint.")
    return lock


__all__ = ["RunLock", "LockWatch", "take_run_directory", "describe_holder", "this_process", "on_this_machine",
           "process_alive", "HEARTBEAT_SECONDS", "STALE_SECONDS", "TAKEOVER_SUFFIX", "TAKEOVER_STALE_SECONDS"]
