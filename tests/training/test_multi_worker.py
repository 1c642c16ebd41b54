"""Two local worker processes train with --strategy=multi_worker (MultiWorkerMirroredStrategy over loopback), and
what they do when one of them is told to stop (SIGTERM) or is killed (training/worker_faults.py)."""

import json
import re
import signal
import time

import pytest

from benchmarks.multi_worker_faults import free_ports
from sagan_tf import errors
from sagan_tf.run import run_lock
from sagan_tf.errors import WorkerLostError
from tests.run.test_run_lock import write_record
from tests.tiny import Lines, start_command


def start_workers(args, workers=None, flaky=None):
    """Starts `python -m training.run --strategy=multi_worker <args>` as the two workers of a loopback cluster (a
    fresh one unless `workers` lists its addresses); returns the two `Popen`s, the chief's first. `flaky`: (worker
    index, checkpoint name, failures) to run that worker as `tests.flaky_storage`, whose first reads of that
    checkpoint fail as on storage that does not answer."""
    workers = workers or [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        module, env = "training.run", {}
        if flaky is not None and flaky[0] == index:
            module, env = "tests.flaky_storage", {"FLAKY_CHECKPOINT": flaky[1], "FLAKY_FAILURES": str(flaky[2])}
        processes.append(start_command(module, ["--strategy=multi_worker", *args], **env,
                                       TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                             "task": {"type": "worker", "index": index}})))
    return processes


def finish(processes, timeout=300):
    """The outputs of `processes` once they have ended (killed after `timeout` seconds)."""
    try:
        return [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def assert_own_console(output):
    """No TensorFlow log line (each used to be printed twice, once as "WARNING:tensorflow:..."), and not the
    warning of an unbatched all-reduce."""
    assert ":tensorflow:" not in output and "Efficient batch_reduce" not in output, output


# Checkpoints every 4 steps; the signal comes after step 5, so the step the workers stop at is past the last periodic
# checkpoint (the generator and discriminator of synthetic32 at batch 4: a few steps a second on 2 cores).
FAULT_ARGS = ["--train_steps=1000", "--batch_size=4", "--log_every=1", "--checkpoint_every=4", "--sample_every=0",
              "--eval_samples=0"]


def checkpoint_steps(model_dir):
    return sorted(int(path.name[len("ckpt-"):-len(".index")])
                  for path in (model_dir / "checkpoints").glob("ckpt-*.index"))


# The chief's case sends Ctrl-C (SIGINT) instead: each role is the signalled one once, and each signal is received once.
@pytest.mark.parametrize("signalled, stop_signal", [(1, signal.SIGTERM),
                                                    pytest.param(0, signal.SIGINT, marks=pytest.mark.slow)],
                         ids=["worker1_sigterm", "chief_ctrl_c"])
def test_sigterm_or_ctrl_c_to_one_worker_stops_every_worker_at_one_checkpoint_and_a_relaunch_resumes(
        tmp_path, signalled, stop_signal):
    """SIGTERM (a preemption notice) or Ctrl-C to one worker: every worker stops after the same step, past the last
    periodic checkpoint, with the checkpoint of that step, exit status 128 + the signal on the signalled worker and
    143 on the other; relaunching both resumes there, also when storage does not answer
    worker 1's first read of that checkpoint (retried: it does not fall back to the older periodic one). The relaunch
    samples and evaluates (--eval_every also makes the chief keep the best checkpoint): only the chief reports,
    evaluates and keeps outputs."""
    args = [f"--model_dir={tmp_path}", *FAULT_ARGS]
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = start_workers(args, workers)
    with Lines(processes[0]) as chief, Lines(processes[1]) as other:
        chief.wait_for(r"step +5/1000", timeout=300)
        processes[signalled].send_signal(stop_signal)
        sent = time.monotonic()
        outputs = [chief.rest(), other.rest()]
        seconds = time.monotonic() - sent
    stopped = [re.search(r"Stopped at step (\d+); checkpoint (\S+)\. Rerun the same command on every worker", output)
               for output in outputs]
    assert all(stopped), outputs
    step = int(stopped[0][1])
    assert int(stopped[1][1]) == step > 5 and stopped[0][2] == stopped[1][2] == str(tmp_path / "checkpoints" /
                                                                                    f"ckpt-{step}")
    # "Stopping takes up to a second (the handler polls) and a step or two" (README): the step running when the signal
    # came ends first (Python runs the signal handler between steps), the handler notices within a second, and every
    # worker stops at most two steps after the last one the chief finished by then (2 s: with the lag of the threads
    # that poll and read the lines).
    finished = [(seconds, int(match[1])) for seconds, line in zip(chief.times, chief.lines)
                if (match := re.search(r"\bstep +(\d+)/1000", line))]
    running_ended = min(seconds for seconds, _ in finished if seconds > sent)
    noticed = max(done for seconds, done in finished if seconds <= running_ended + 2.0)
    assert step <= noticed + 2, (step, [(round(seconds - sent, 1), done) for seconds, done in finished])
    # 128 + its own signal on the signalled worker (143: SIGTERM, 130: Ctrl-C); 143 (128 + SIGTERM), the status of a
    # peer's preemption, on the other.
    statuses = [143, 143]
    statuses[signalled] = 128 + stop_signal
    assert [process.returncode for process in processes] == statuses, outputs
    assert f"Received {stop_signal.name}: every worker stops after the same step" in outputs[signalled]
    assert "Another worker received a stop signal" in outputs[1 - signalled]
    for output in outputs:
        assert "Traceback" not in output, output
        assert_own_console(output)
    assert checkpoint_steps(tmp_path)[-1] == step  # past ckpt-4, the last periodic one when the signal came
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("tmp_")) == []
    print(f"both workers stopped {seconds:.1f} s after the signal, at step {step}")

    # Relaunching both workers (one step more to train, sampling and evaluating) resumes from that step, though
    # worker 1's first read of it fails.
    end = step + 1
    processes = start_workers([f"--model_dir={tmp_path}", f"--train_steps={end}", "--batch_size=4", "--log_every=1",
                               "--checkpoint_every=4", "--sample_every=1", "--eval_every=1", "--eval_samples=32"],
                              workers, flaky=(1, f"ckpt-{step}", 1))
    outputs = finish(processes)
    assert [process.returncode for process in processes] == [0, 0], outputs
    for output in outputs:
        assert_own_console(output)
        assert f"Training synthetic32 from step {step} to {end}" in output
    assert re.search(rf"ckpt-{step}: it cannot be read back \(UnavailableError: .*\); storage may be busy, so "
                     r"retrying in 0.1 s \(attempt 2 of 5\)", outputs[1]), outputs[1]
    assert checkpoint_steps(tmp_path)[-1] == end
    assert "on 2 replica(s) (MultiWorkerMirroredStrategy on CPU, XLA off)" in outputs[0]
    assert f"step {end}/{end}" in outputs[0] and f"step {end}/{end}" not in outputs[1]  # only the chief reports
    # ... and evaluates (at the start and the end, with the shipped synthetic classifier).
    assert re.search(rf"eval step {end} \[synthetic-[0-9a-f]{{8}}\]: FID [\d.]+", outputs[0]), outputs[0]
    assert "eval step" not in outputs[1]
    # The chief keeps checkpoints, samples, the config and the class names; the other worker's checkpoint copies
    # are deleted.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("events")) == [
        "checkpoints", "class_names.json", "config.json", "samples"]
    # The chief, which alone evaluates, keeps the best checkpoint too (written by it alone).
    best = json.loads((tmp_path / "checkpoints" / "best" / "best.json").read_text())
    assert best["metric"] == "fid" and best["step"] in (step, end) and "Best checkpoint: step" in outputs[0]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "best").iterdir()) == [
        "best.json", f"ckpt-{best['step']}.data-00000-of-00001", f"ckpt-{best['step']}.index"]
    # A grid where training starts (resumed at `step`) and at its end.
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [f"step_{step:08d}.png", f"step_{end:08d}.png"]


@pytest.mark.slow
@pytest.mark.parametrize("killed", [1, 0], ids=["worker1", "chief"])
def test_a_killed_worker_ends_the_other_with_one_paragraph_and_status_138(tmp_path, killed):
    """SIGKILL to one worker: the other stops within seconds, without a traceback (the chief hosts the coordination
    service, whose loss ends the waits of TensorFlow's preemption threads on the other worker too), naming the lost
    worker and the newest checkpoint, with `WorkerLostError.exit_status`."""
    processes = start_workers([f"--model_dir={tmp_path}", *FAULT_ARGS])
    survivor = 1 - killed
    with Lines(processes[0]) as chief, Lines(processes[1]) as other:
        chief.wait_for(r"step +5/1000", timeout=300)
        processes[killed].kill()
        killed_at = time.monotonic()
        output = [chief, other][survivor].rest()
        seconds = time.monotonic() - killed_at
    assert processes[survivor].returncode == WorkerLostError.exit_status == 138, output
    assert seconds < 60, output
    assert "Traceback" not in output, output
    assert_own_console(output)
    newest = checkpoint_steps(tmp_path)[-1]
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: Lost worker {killed} of this multi-worker run"), output
    assert f"the run resumes from {tmp_path / 'checkpoints' / f'ckpt-{newest}'}." in errors[0]
    assert "Relaunch every worker with the same flags and TF_CONFIG" in errors[0]
    assert "This worker's command: python -m training.run --strategy=multi_worker" in errors[0]
    print(f"worker {survivor} stopped {seconds:.1f} s after worker {killed} was killed")


@pytest.mark.slow
def test_a_chief_relaunched_in_another_container_gets_its_lost_predecessors_run_back(tmp_path):
    """The lost chief's lock stays behind, written in another PID namespace (a container since restarted): the
    relaunched chief waits until it is stale, before it joins the cluster, takes it over and trains with the
    relaunched worker (it used to exit with status 2, which schedulers do not retry, after joining the cluster)."""
    # Stale 90 s from now: after the chief reaches the lock (importing TensorFlow takes up to a minute on a busy
    # machine).
    write_record(tmp_path, age=run_lock.STALE_SECONDS - 90, pid=7, pid_namespace="pid:[4026532999]",
                 stale_seconds=run_lock.STALE_SECONDS)
    processes = start_workers([f"--model_dir={tmp_path}", "--train_steps=2", *FAULT_ARGS[1:]])
    try:
        outputs = [process.communicate(timeout=600)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    warnings = [line for line in outputs[0].splitlines() if line.startswith("Warning: ")]
    assert warnings[0].startswith("Warning: Waiting until ") and "another boot or PID namespace" in warnings[0], outputs
    assert warnings[1].startswith(f"Warning: Took over the lock {tmp_path / 'training.lock'} of process 7 on host ")
    assert checkpoint_steps(tmp_path)[-1] == 2 and not (tmp_path / "training.lock").exists()


@pytest.mark.slow
def test_a_worker_that_cannot_read_the_newest_checkpoint_stops_every_worker_with_one_paragraph(tmp_path):
    """Storage never serves worker 1 the checkpoint to resume from: it retries, then both workers stop with one
    paragraph each and the status schedulers retry (138), worker 1 naming the checkpoint, the chief naming
    worker 1; neither resumes from an older checkpoint. (The fast counterparts, in one process:
    tests/training/test_train_lib.py, the retry and the agreement.)"""
    args = [f"--model_dir={tmp_path}", "--batch_size=4", "--log_every=1", "--checkpoint_every=2", "--sample_every=0",
            "--eval_samples=0"]
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = start_workers([*args, "--train_steps=4"], workers)
    outputs = finish(processes)
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert checkpoint_steps(tmp_path) == [2, 4]

    processes = start_workers([*args, "--train_steps=6"], workers, flaky=(1, "ckpt-4", 1000))
    outputs = finish(processes)
    assert [process.returncode for process in processes] == [errors.RETRY_EXIT_STATUS] * 2, outputs
    error_lines = [[line for line in output.splitlines() if line.startswith("Error: ")] for output in outputs]
    assert error_lines[1] == [
        f"Error: Checkpoint {tmp_path / 'checkpoints' / 'ckpt-4'}: it cannot be read back: storage "
        "failed 5 times in a row (last: UnavailableError: Error executing an HTTP request for "
        f"{tmp_path / 'checkpoints' / 'ckpt-4'}: Connection reset by peer (injected)). The checkpoint "
        "is not damaged, so no older one replaces it; rerun the same command when the storage answers again."
    ], outputs[1]
    assert len(error_lines[0]) == 1 and error_lines[0][0].startswith(
        "Error: worker 1 of this multi-worker run could not read or restore the checkpoint to resume from"), outputs[0]
    assert outputs[1].count("storage may be busy, so retrying") == 4
    for output in outputs:
        assert "Traceback" not in output and "Training synthetic32" not in output, output
        assert_own_console(output)
    assert checkpoint_steps(tmp_path) == [2, 4]
