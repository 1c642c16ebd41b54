"""run_lock: one writer per run directory; a second holder refused naming the first; stale locks taken over."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from sagan_tf import cli
from sagan_tf.run import run_lock
from sagan_tf.errors import RETRY_EXIT_STATUS, RunLockedError, RunLockWaitError, WorkerLostError, WriteFailedError
from sagan_tf.run.run_dir import RunDirectory


def lock_at(directory, **options):
    warnings = []
    lock = run_lock.RunLock(os.path.join(str(directory), "training.lock"), warn_fn=warnings.append, **options)
    lock.warnings = warnings
    return lock


def write_record(directory, age=0.0, **fields):
    """A lock file left by a holder described by `fields` (this process's identity otherwise), `age` seconds old."""
    record = {**run_lock.this_process(), "token": uuid.uuid4().hex, "started": time.time() - age,
              "refreshed": time.time() - age, "stale_seconds": 600, **fields}
    path = os.path.join(str(directory), "training.lock")
    with open(path + ".writing", "w") as f:  # whole at once: a holder's heartbeat may be reading it
        json.dump(record, f)
    os.utime(path + ".writing", (time.time() - age, time.time() - age))
    os.replace(path + ".writing", path)
    return record


def dead_pid():
    """The PID of a process that has ended (and was reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


class FakeClock:
    """`run_lock`'s `time` module on a clock that only `sleep` moves (from now): waits of seconds take none."""

    def __init__(self):
        self.start, self.elapsed = time.time(), 0.0

    def monotonic(self):
        return self.elapsed

    def time(self):
        return self.start + self.elapsed

    def sleep(self, seconds):
        self.elapsed += seconds

    def __getattr__(self, name):
        return getattr(time, name)


class WatchedClock(FakeClock):
    """A `FakeClock` that calls `at(elapsed)` after each sleep: what happens to the lock while a start waits."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def sleep(self, seconds):
        super().sleep(seconds)
        self.at(self.elapsed)


def test_the_lock_names_its_holder_and_refuses_a_second_one_until_released(tmp_path):
    first = lock_at(tmp_path).acquire()
    record = json.loads((tmp_path / "training.lock").read_text())
    assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
    assert record["process_start"] == run_lock.this_process()["process_start"] is not None
    assert record["command"].split()[0] == os.path.basename(sys.executable) and record["started"] <= time.time()
    with pytest.raises(RunLockedError) as refused:
        lock_at(tmp_path).acquire()
    message = str(refused.value)
    assert message.startswith(f"{tmp_path} is in use by another training run: its lock {tmp_path / 'training.lock'} "
                              f"is held by process {os.getpid()} on host {socket.gethostname()} "
                              f"({record['command']}), since ")
    assert "; it still runs on this machine. Two runs writing into one directory" in message
    assert "this very process" in message
    assert "Reading the run (training.evaluate, training.visualize, export.run) needs no lock" in message
    first.release()
    assert os.listdir(tmp_path) == []  # no lock, no temporary file left
    second = lock_at(tmp_path).acquire()
    assert second.held and not second.warnings
    second.release()


def test_a_live_process_on_this_machine_is_refused_with_how_to_stop_it(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = run_lock._proc_stat(sleeper.pid)[1]
        write_record(tmp_path, pid=sleeper.pid, process_start=start, command="python -m training.run --model_dir=x")
        with pytest.raises(RunLockedError, match=rf"process {sleeper.pid} on host .*\(python -m training.run "
                           rf"--model_dir=x\).*; it still runs on this machine\..*kill {sleeper.pid} \(SIGTERM: it "
                           r"saves a checkpoint and exits\), then rerun this command to resume"):
            lock_at(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    # Ended (and reaped): the lock is stale now.
    lock = lock_at(tmp_path).acquire()
    assert f"of process {sleeper.pid} on host" in lock.warnings[0]
    lock.release()


def test_a_lock_whose_process_is_gone_or_whose_pid_was_recycled_is_taken_over_with_a_warning(tmp_path):
    pid = dead_pid()
    write_record(tmp_path, pid=pid)
    lock = lock_at(tmp_path).acquire()
    assert len(lock.warnings) == 1 and lock.warnings[0].endswith(
        f": no process {pid} that started then runs on this machine any more (it ended without releasing the lock, "
        "e.g. killed).")
    assert lock.warnings[0].startswith(f"Took over the lock {tmp_path / 'training.lock'} of process {pid} on host")
    assert json.loads((tmp_path / "training.lock").read_text())["token"] == lock.record["token"]
    lock.release()

    # A live PID that another process had when the lock was taken (another start time): PID reuse, not the holder.
    write_record(tmp_path, process_start=run_lock.this_process()["process_start"] - 1)
    lock = lock_at(tmp_path).acquire()
    assert f"no process {os.getpid()} that started then runs" in lock.warnings[0]
    lock.release()


def test_a_lock_of_another_machine_is_stale_only_after_its_staleness_time(tmp_path):
    write_record(tmp_path, age=660, host="node-7", pid=4242, stale_seconds=600)
    lock = lock_at(tmp_path).acquire()
    assert "last refreshed 11 min ago, longer than the 10 min after which a lock of another machine counts as " \
           "stale" in lock.warnings[0]
    lock.release()


def test_a_relaunch_waits_for_a_lock_it_cannot_check_to_go_stale_then_takes_it_over(tmp_path, monkeypatch):
    """A chief relaunched by a scheduler on another host, or in a restarted container (the same host and boot, another
    PID namespace), finds the lock its lost predecessor left: it waits, one line saying until when and why, until
    the lock is stale, and takes it over (it used to be refused with exit status 2, which schedulers do not retry)."""
    cases = [({"host": "node-7", "pid": 4242}, 600, "its host"),  # a lock of an earlier version: 10 minutes
             ({"pid": 7, "pid_namespace": "pid:[4026532999]"}, run_lock.STALE_SECONDS,
              "another boot or PID namespace")]
    for fields, stale, where in cases:
        record = write_record(tmp_path, age=30, stale_seconds=stale, **fields)
        clock = FakeClock()
        monkeypatch.setattr(run_lock, "time", clock)
        lock = lock_at(tmp_path).acquire()
        monkeypatch.undo()
        assert stale - 31 < clock.elapsed < stale - 29  # taken as soon as it is stale
        stale_from = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record["refreshed"] + stale))
        waiting, took = lock.warnings
        assert waiting.startswith(f"Waiting until {stale_from} for the lock {tmp_path / 'training.lock'} of process "
                                  f"{fields['pid']} on host {record['host']}")
        assert (f": it runs on {where}, from where its process cannot be checked, and refreshed the lock 30 s ago; "
                f"the lock counts as stale from {stale_from} ({stale // 60} min without a refresh). This start takes "
                "the lock over then (or once it is released); if that run refreshes the lock meanwhile, it runs, and "
                "this start stops.") in waiting
        assert took.startswith("Took over the lock") and f"last refreshed {stale // 60} min ago" in took
        assert json.loads((tmp_path / "training.lock").read_text())["token"] == lock.record["token"]
        lock.release()
    assert run_lock.STALE_SECONDS == 3 * run_lock.HEARTBEAT_SECONDS == 180


def test_a_lock_refreshed_while_a_start_waits_proves_its_holder_alive(tmp_path, monkeypatch):
    write_record(tmp_path, age=30, host="node-7", pid=4242)
    path = tmp_path / "training.lock"

    def heartbeat(elapsed):  # the holder's, 60 s after its last one
        if elapsed >= 30:
            os.utime(path, (clock.time(), clock.time()))

    clock = WatchedClock(heartbeat)
    monkeypatch.setattr(run_lock, "time", clock)
    lock = lock_at(tmp_path)
    with pytest.raises(RunLockedError, match=r"is held by process 4242 on host node-7 .*; it refreshed the lock at "
                       r".* UTC, while this start waited for it to go stale, so it runs\. Two runs writing into one "
                       r"directory .*send SIGTERM to process 4242 on node-7"):
        lock.acquire()
    assert 30 <= clock.elapsed < 30 + run_lock.POLL_SECONDS + 1 and len(lock.warnings) == 1
    # Released while a start waits: taken at once, without a takeover.
    write_record(tmp_path, age=30, host="node-7", pid=4242)
    clock = WatchedClock(lambda elapsed: elapsed >= 20 and path.exists() and path.unlink())
    monkeypatch.setattr(run_lock, "time", clock)
    lock = lock_at(tmp_path).acquire()
    assert 20 <= clock.elapsed < 20 + run_lock.POLL_SECONDS + 1
    assert len(lock.warnings) == 1 and lock.warnings[0].startswith("Waiting until")
    monkeypatch.undo()
    lock.release()


def test_a_wait_that_runs_out_ends_with_a_status_that_schedulers_retry(tmp_path, monkeypatch, capsys):
    # A holder that declares an hour's staleness (or a clock running ahead): the wait is bounded.
    write_record(tmp_path, age=30, host="node-7", pid=4242, stale_seconds=3600)
    clock = FakeClock()
    monkeypatch.setattr(run_lock, "time", clock)
    lock = lock_at(tmp_path)
    with pytest.raises(RunLockWaitError) as ended:
        lock.acquire()
    assert run_lock.WAIT_SECONDS <= clock.elapsed < run_lock.WAIT_SECONDS + 1
    assert str(ended.value).startswith(f"Waited 15 min for the lock {tmp_path / 'training.lock'} of process 4242 on "
                                       "host node-7")
    assert "was neither released nor refreshed meanwhile: it runs on its host" in str(ended.value)
    assert "a scheduler retries this exit status, 138" in str(ended.value)
    assert "else ends with exit status 138 for a scheduler to retry" in lock.warnings[0]
    assert RETRY_EXIT_STATUS == ended.value.exit_status == WorkerLostError.exit_status == 138 == 128 + signal.SIGUSR1
    assert cli.main_wrapper(lambda argv: lock.acquire())(["prog"]) == 138
    assert capsys.readouterr().err.startswith("Error: Waited 15 min for the lock")


def test_a_holder_whose_heartbeat_is_overdue_checks_its_lock_before_the_next_step(tmp_path, monkeypatch):
    """A holder stopped for longer than two heartbeats (its lock may have gone stale and been taken over) looks at
    its lock itself before its next step instead of waiting for its heartbeat thread."""
    clock = FakeClock()
    monkeypatch.setattr(run_lock, "time", clock)
    lock = lock_at(tmp_path).acquire()  # heartbeat 60 s: the thread does not beat during this test
    other = write_record(tmp_path, host="node-9", pid=77)
    clock.sleep(2 * run_lock.HEARTBEAT_SECONDS)
    lock.check()  # two heartbeats: not overdue yet
    clock.sleep(1)  # the process was stopped: its heartbeat thread did not run
    with pytest.raises(RunLockedError, match="This run lost its lock .*held by process 77 on host node-9"):
        run_lock.LockWatch(lock).on_train_batch_begin(0)
    lock.release()
    assert json.loads((tmp_path / "training.lock").read_text())["token"] == other["token"]


def test_an_unreadable_lock_file_waits_out_the_staleness_time(tmp_path, monkeypatch):
    (tmp_path / "training.lock").write_text("")
    clock = FakeClock()
    monkeypatch.setattr(run_lock, "time", clock)
    lock = lock_at(tmp_path).acquire()
    monkeypatch.undo()
    assert run_lock.STALE_SECONDS - 1 < clock.elapsed < run_lock.STALE_SECONDS + 1
    assert "of an unknown process (the lock file cannot be read): the file is no lock record, written 0 s ago: a " \
           "run may be starting" in lock.warnings[0]
    assert "Took over the lock" in lock.warnings[1] and "of an unknown process" in lock.warnings[1]
    lock.release()


@pytest.mark.parametrize("stale", [False, True], ids=["free", "stale"])
def test_of_many_starts_at_the_same_moment_exactly_one_gets_the_lock(tmp_path, stale):
    for round_ in range(10):
        directory = tmp_path / str(round_)
        directory.mkdir()
        if stale:
            write_record(directory, pid=dead_pid() if round_ == 0 else 2**22 + round_)
        barrier = threading.Barrier(8)
        outcomes = []

        def start():
            lock = lock_at(directory)
            barrier.wait()
            try:
                outcomes.append(lock.acquire())
            except RunLockedError as error:
                outcomes.append(error)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [o for o in outcomes if isinstance(o, run_lock.RunLock)]
        assert len(winners) == 1, outcomes
        assert json.loads((directory / "training.lock").read_text())["token"] == winners[0].record["token"]
        assert all("in use by another training run" in str(o) for o in outcomes if o is not winners[0])
        winners[0].release()
        assert os.listdir(directory) == []  # no takeover file, no temporary file


def test_the_holder_refreshes_the_lock_and_stops_once_it_was_taken_over(tmp_path):
    lock = lock_at(tmp_path, heartbeat_seconds=0.05, stale_seconds=1).acquire()
    os.utime(tmp_path / "training.lock", (time.time() - 100, time.time() - 100))
    deadline = time.time() + 10
    while os.stat(tmp_path / "training.lock").st_mtime < time.time() - 50 and time.time() < deadline:
        time.sleep(0.02)
    assert os.stat(tmp_path / "training.lock").st_mtime > time.time() - 50  # refreshed by the heartbeat
    lock.check()
    watch = run_lock.LockWatch(lock)
    watch.on_train_batch_begin(0)

    other = write_record(tmp_path, host="node-9", pid=77)  # another run took it over (it judged this one stale)
    while lock.lost is None and time.time() < deadline:
        time.sleep(0.02)
    assert lock.lost is not None and "held by process 77 on host node-9" in lock.lost
    for stop in (lock.check, lambda: watch.on_train_batch_begin(1), lambda: watch.on_train_end()):
        with pytest.raises(RunLockedError, match="This run lost its lock .*Training stops before its next step"):
            stop()
    lock.release()  # leaves the other run's lock alone
    assert json.loads((tmp_path / "training.lock").read_text())["token"] == other["token"]


def test_a_takeover_file_of_a_taker_that_died_half_way_is_cleared(tmp_path):
    write_record(tmp_path, pid=dead_pid())
    (tmp_path / "training.lock.takeover").write_text("{}")
    os.utime(tmp_path / "training.lock.takeover", (time.time() - 60, time.time() - 60))
    lock = lock_at(tmp_path).acquire()
    assert lock.held and sorted(os.listdir(tmp_path)) == ["training.lock"]
    lock.release()


def test_a_fresh_takeover_file_of_a_dead_taker_is_outlasted_by_one_acquire(tmp_path, monkeypatch):
    # One timeout: the takeover file of a taker that died a moment ago counts as stale within the time `acquire`
    # keeps trying, so one start takes the lock over instead of giving up while the file still blocks it.
    write_record(tmp_path, pid=dead_pid())
    (tmp_path / "training.lock.takeover").write_text("{}")
    clock = FakeClock()
    monkeypatch.setattr(run_lock, "time", clock)
    lock = lock_at(tmp_path).acquire()
    assert lock.held and clock.elapsed >= run_lock.TAKEOVER_STALE_SECONDS  # it waited for the file to become stale
    assert sorted(os.listdir(tmp_path)) == ["training.lock"] and len(lock.warnings) == 1
    monkeypatch.undo()
    lock.release()
    # A takeover file that stays fresh (its taker keeps taking locks over) makes it give up after as long.
    write_record(tmp_path, pid=dead_pid())
    clock = FakeClock()
    monkeypatch.setattr(run_lock, "time", clock)
    monkeypatch.setattr(run_lock.RunLock, "_take_over", lambda self, stale, record: False)
    with pytest.raises(RunLockedError, match=f"kept taking it over for {run_lock.TAKEOVER_STALE_SECONDS} s"):
        lock_at(tmp_path).acquire()
    assert run_lock.TAKEOVER_STALE_SECONDS <= clock.elapsed < run_lock.TAKEOVER_STALE_SECONDS + 1


def test_a_lock_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    for _ in range(2):  # each refused start used to leave a training.lock.<hex>.tmp
        with pytest.raises(WriteFailedError, match="no space left on device"):
            lock_at(tmp_path).acquire()
    assert os.listdir(tmp_path) == []
    # Taking a stale lock over: its takeover file (created the same way) goes too.
    monkeypatch.undo()
    write_record(tmp_path, pid=dead_pid())
    fsync = os.fsync

    def full_disk_for_the_takeover_file(descriptor):
        if os.readlink(f"/proc/self/fd/{descriptor}").startswith(str(tmp_path / "training.lock.takeover.")):
            full_disk(descriptor)
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_disk_for_the_takeover_file)
    with pytest.raises(WriteFailedError, match="no space left on device"):
        lock_at(tmp_path).acquire()
    assert os.listdir(tmp_path) == ["training.lock"]


def test_a_start_whose_temporary_file_the_holder_cleared_is_refused_as_locked(tmp_path, monkeypatch):
    # The holder's start removes lock temporaries as interrupted writes, also one another start is writing: that
    # start sees the lock held, not a write failure.
    holder = lock_at(tmp_path).acquire()
    link = os.link

    def cleared_first(source, destination):
        os.unlink(source)
        return link(source, destination)

    monkeypatch.setattr(os, "link", cleared_first)
    with pytest.raises(RunLockedError, match="is in use by another training run"):
        lock_at(tmp_path).acquire()
    monkeypatch.undo()
    holder.release()


def test_a_lock_on_a_filesystem_without_atomic_create_is_written_and_read_back():
    path = f"ram://run_lock_{uuid.uuid4().hex}/run"
    first = run_lock.RunLock(f"{path}/training.lock").acquire()
    with pytest.raises(RunLockedError, match="is in use by another training run"):
        run_lock.RunLock(f"{path}/training.lock").acquire()
    first.refresh()  # rewrites the record with the refresh time (no modification times there)
    assert first.held
    first.release()
    second = run_lock.RunLock(f"{path}/training.lock").acquire()
    second.release()


def test_taking_a_run_directory_removes_what_interrupted_writes_left(tmp_path):
    run = RunDirectory(tmp_path)
    (tmp_path / "checkpoints" / "best").mkdir(parents=True)
    (tmp_path / "samples").mkdir()
    leftovers = ["checkpoints/ckpt-20_temp/part-00000-of-00001.data-00000-of-00001.tempstate123",
                 "checkpoints/checkpoint.tmp0123abcd", "checkpoints/ckpt-30.data-00000-of-00001",
                 "checkpoints/best/ckpt-8_temp/part-00000-of-00001.index", "config.json.tmp",
                 "samples/step_00000020.png.tmp", "training.lock.0123abcd.tmp", "training.lock.takeover.4567ef.tmp"]
    kept = ["checkpoints/checkpoint", "checkpoints/ckpt-10.index", "checkpoints/ckpt-10.data-00000-of-00001",
            "checkpoints/best/best.json", "config.json", "samples/step_00000010.png", "eval/step_00000010.json.tmp"]
    for name in leftovers + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    warnings = []
    lock = run_lock.take_run_directory(run, warn_fn=warnings.append)
    lock.release()
    assert all((tmp_path / name).exists() for name in kept)  # eval/: an evaluation may be writing there
    assert not any((tmp_path / name).exists() for name in leftovers)
    assert not (tmp_path / "checkpoints" / "ckpt-20_temp").exists()
    assert len(warnings) == 1 and warnings[0].startswith(f"Removed what interrupted writes left in {tmp_path}: ")
    for name in ("checkpoints/ckpt-20_temp", "checkpoints/ckpt-30.data-00000-of-00001", "config.json.tmp",
                 "training.lock.0123abcd.tmp"):
        assert name in warnings[0]
