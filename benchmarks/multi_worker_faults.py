"""What two loopback workers of `python -m training.run --strategy=multi_worker` do when one is signalled or killed.

Usage:
  python benchmarks/multi_worker_faults.py --fault=sigterm --target=1 --at_step=30 --checkpoint_every=50
  python benchmarks/multi_worker_faults.py --fault=sigkill --target=1 --at_step=30 --checkpoint_every=20
  python benchmarks/multi_worker_faults.py --root=/path/to/an/older/checkout ...   # the same faults on other code

Starts both workers of a two-worker loopback cluster (TF_CONFIG as README.md shows; synthetic32, --batch_size=8,
--sample_every=0 --eval_samples=0, progress every step), sends --fault to worker --target once the chief has logged
step --at_step, and waits for both to exit. With --relaunch, after a stop it starts both again with the same flags
and one step more to train, and reads the step the chief resumes from. Prints one JSON line:

  signal_step       the chief's logged step when the fault was sent
  exit_status       [worker 0, worker 1] (negative: killed by that signal)
  seconds_to_exit   [worker 0, worker 1]: from the fault to the process's exit (TensorFlow's teardown included)
  seconds_to_last_line  [worker 0, worker 1]: from the fault to the worker's last output line (its "Stopped ..."
                    or "Error: ..." line, or the traceback's end)
  stopped_at        [worker 0, worker 1]: the step of each "Stopped at step N" line (null: none)
  checkpoints       the checkpoint steps in <model_dir>/checkpoints afterwards
  steps_lost        the chief's last logged step minus the newest checkpoint's step (what a relaunch redoes)
  tracebacks        [worker 0, worker 1]: whether the worker printed a Python traceback
  error_lines       the "Error: ..." lines, shortened to 200 characters
  console_tf_lines  lines printed as TensorFlow's own ("WARNING:tensorflow:...", "INFO:tensorflow:...")
  batch_reduce_warnings  lines with "Efficient batch_reduce is not supported"
  resumed_from      with --relaunch: the step the relaunched chief trains from (null: it did not say)
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(root, args, workers):
    processes = []
    for index in range(len(workers)):
        env = dict(os.environ, PYTHONPATH=root, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="-1",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the console a user gets
        processes.append(subprocess.Popen([sys.executable, "-m", "training.run", "--strategy=multi_worker", *args],
                                          cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    return processes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fault", choices=("sigterm", "sigkill"), default="sigterm")
    parser.add_argument("--target", type=int, default=1, help="the worker signalled or killed (0: the chief)")
    parser.add_argument("--at_step", type=int, default=30)
    parser.add_argument("--checkpoint_every", type=int, default=50)
    parser.add_argument("--train_steps", type=int, default=1500)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--root", default=ROOT, help="the repository whose training.run to run")
    parser.add_argument("--model_dir", default=None, help="default: a fresh temporary directory")
    parser.add_argument("--relaunch", action="store_true")
    parser.add_argument("--output_prefix", default=None, help="write each worker's console to <prefix><index>.log")
    options = parser.parse_args()

    model_dir = options.model_dir or tempfile.mkdtemp(prefix="multi_worker_faults_")
    args = [f"--model_dir={model_dir}", f"--batch_size={options.batch_size}", "--log_every=1", "--sample_every=0",
            "--eval_samples=0", f"--checkpoint_every={options.checkpoint_every}"]
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = start_workers(options.root, [*args, f"--train_steps={options.train_steps}"], workers)
    outputs, ends, sent, last_step, last_line = [[], []], [None, None], {}, [0], [None, None]
    fault = signal.SIGTERM if options.fault == "sigterm" else signal.SIGKILL

    def read(index):
        for line in processes[index].stdout:
            outputs[index].append(line.rstrip("\n"))
            last_line[index] = time.monotonic()
            match = re.search(r"^step +(\d+)/", line)
            if index == 0 and match:
                last_step[0] = int(match[1])
                if last_step[0] >= options.at_step and not sent:
                    sent["time"], sent["step"] = time.monotonic(), last_step[0]
                    processes[options.target].send_signal(fault)
        processes[index].wait()
        ends[index] = time.monotonic()

    threads = [threading.Thread(target=read, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if options.output_prefix:
        for index, output in enumerate(outputs):
            with open(f"{options.output_prefix}{index}.log", "w") as f:
                f.write("\n".join(output) + "\n")
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    steps = sorted(int(name[5:-6]) for name in (os.listdir(checkpoint_dir) if os.path.isdir(checkpoint_dir) else ())
                   if re.fullmatch(r"ckpt-\d+\.index", name))
    stopped = []
    for output in outputs:
        match = re.search(r"Stopped at step (\d+)", "\n".join(output))
        stopped.append(int(match[1]) if match else None)
    result = {
        "fault": options.fault, "target": options.target, "signal_step": sent.get("step"),
        "exit_status": [process.returncode for process in processes],
        "seconds_to_exit": [round(end - sent["time"], 1) if sent else None for end in ends],
        "seconds_to_last_line": [round(max(t, sent["time"]) - sent["time"], 1) if sent and t else None
                                 for t in last_line],
        "stopped_at": stopped, "checkpoints": steps,
        "steps_lost": max(max(last_step[0], *(s for s in stopped if s is not None), 0) - (steps[-1] if steps else 0),
                          0),
        "tracebacks": [any(line.startswith("Traceback") for line in output) for output in outputs],
        "error_lines": [line[:200] for output in outputs for line in output if line.startswith("Error: ")],
        "console_tf_lines": sum(bool(re.match(r"(INFO|WARNING|ERROR):tensorflow:", line))
                                for output in outputs for line in output),
        "batch_reduce_warnings": sum("Efficient batch_reduce is not supported" in line
                                     for output in outputs for line in output),
        "resumed_from": None,
    }
    if options.relaunch and steps:
        processes = start_workers(options.root, [*args, f"--train_steps={steps[-1] + 1}"], workers)
        resumed = [process.communicate()[0] for process in processes]
        match = re.search(r"from step (\d+) to", resumed[0])
        result["resumed_from"] = int(match[1]) if match else None
        result["relaunch_exit_status"] = [process.returncode for process in processes]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
