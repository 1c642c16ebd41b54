"""Two local worker processes train with --strategy=multi_worker (MultiWorkerMirroredStrategy over loopback)."""

import json
import re
import socket

import tensorflow as tf

from tests.tiny import start_command


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_and_only_the_chief_keeps_outputs(tmp_path):
    """Two workers over loopback; --eval_every also makes the chief keep the best checkpoint."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    args = [f"--model_dir={tmp_path}", "--strategy=multi_worker", "--train_steps=3", "--batch_size=4",
            "--log_every=1", "--checkpoint_every=2", "--sample_every=2", "--eval_every=2", "--eval_samples=32"]
    processes = [start_command("training.run", args, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                   "task": {"type": "worker", "index": index}}))
                 for index in range(2)]
    try:
        outputs = [process.communicate(timeout=240)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for index, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"worker {index}:\n{output}"
    assert "on 2 replica(s) (MultiWorkerMirroredStrategy on CPU, XLA off)" in outputs[0]
    assert "step 3/3" in outputs[0] and "step 3/3" not in outputs[1]  # only the chief reports progress
    # ... and evaluates (the default evaluation at the start and the end, shipped synthetic classifier).
    assert re.search(r"eval step 3 \[synthetic-[0-9a-f]{8}\]: FID [\d.]+", outputs[0])
    assert "eval step" not in outputs[1]
    # The chief keeps checkpoints, samples, the config and the class names; the other worker's checkpoint copies
    # are deleted.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("events")) == [
        "checkpoints", "class_names.json", "config.json", "samples"]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-3")
    # The chief, which alone evaluates, keeps the best checkpoint too (written by it alone).
    best = json.loads((tmp_path / "checkpoints" / "best" / "best.json").read_text())
    assert best["metric"] == "fid" and best["step"] in (0, 2, 3) and "Best checkpoint: step" in outputs[0]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "best").iterdir()) == [
        "best.json", f"ckpt-{best['step']}.data-00000-of-00001", f"ckpt-{best['step']}.index"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_00000002.png", "step_00000003.png"]
