"""sagan_tf.run.checkpoint_store: the one owner of a run's checkpoints (names, saves, finding them, the best one), and
no other library module knowing their file names."""

import ast
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.errors import CheckpointError, WriteFailedError
from sagan_tf.run import checkpoint_store
from sagan_tf.run.checkpoint_store import CheckpointStore
from sagan_tf.run.run_dir import RunDirectory
from tests.tiny import full_disk_save

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: What names a checkpoint's files or makes a checkpoint manager (which names them): only the store may hold these.
CHECKPOINT_NAMING = ("ckpt", "CheckpointManager(", "tmp_checkpoints_worker")


def fake_checkpoint(store, step, complete=True):
    """Files named as TensorFlow names a checkpoint; without the .index file it is incomplete."""
    os.makedirs(store.directory, exist_ok=True)
    prefix = store.path(step)
    open(f"{prefix}.data-00000-of-00001", "w").close()
    if complete:
        open(f"{prefix}.index", "w").close()
    return prefix


def test_names():
    store = CheckpointStore("runs/x")
    assert (store.directory, store.best_dir) == ("runs/x/checkpoints", "runs/x/checkpoints/best")
    assert store.path(1500) == "runs/x/checkpoints/ckpt-1500" and store.name(1500) == "ckpt-1500"
    assert store.best_path(700) == "runs/x/checkpoints/best/ckpt-700"
    assert checkpoint_store.checkpoint_step("runs/x/checkpoints/ckpt-1500") == 1500
    assert checkpoint_store.checkpoint_step("runs/x/checkpoints/model.ckpt") is None
    assert CheckpointStore(RunDirectory("runs/x")).path(2) == store.path(2)


def test_nothing_outside_the_store_knows_a_checkpoints_file_name():
    """Only checkpoint_store.py names checkpoint files or makes a `CheckpointManager`; run_dir.py's module docstring
    may show them in its layout of the whole run directory."""
    found, read = [], 0
    for package in ("sagan_tf", "training", "export"):
        for path in sorted((ROOT / package).rglob("*.py")):
            read += 1
            if path == ROOT / "sagan_tf" / "run" / "checkpoint_store.py":
                continue
            lines = path.read_text(encoding="utf-8").splitlines()
            if path == ROOT / "sagan_tf" / "run" / "run_dir.py":
                docstring = ast.parse("\n".join(lines)).body[0]
                lines = [""] * docstring.end_lineno + lines[docstring.end_lineno:]
            found += [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for number, line in enumerate(lines, 1)
                      if any(name in line for name in CHECKPOINT_NAMING)]
    assert read > 50, f"read only {read} modules under {ROOT}"
    assert found == [], "Only sagan_tf/run/checkpoint_store.py may name checkpoint files:\n" + "\n".join(found)


def test_checkpoints_are_listed_by_step_and_found(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        store.find()
    for step in (1000, 500, 20):
        fake_checkpoint(store, step)
    fake_checkpoint(store, 1500, complete=False)  # a save that was killed before its index file
    assert [step for step, _ in store.checkpoints()] == [20, 500, 1000]
    assert store.find(500) == store.path(500)
    assert store.find("20") == store.path(20)
    assert store.find(store.path(1000)) == store.path(1000)
    with pytest.raises(CheckpointError, match="No checkpoint .*ckpt-1500.*Checkpoints in .*: ckpt-20, ckpt-500, "
                                              "ckpt-1000"):
        store.find(1500)
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1000"\n')
    assert store.latest() == store.path(1000) == store.find()
    assert store.find("latest") == store.path(1000)


def test_resume_candidates_include_a_checkpoint_the_index_does_not_list_yet(tmp_path):
    store = CheckpointStore(tmp_path)
    assert store.resume_candidates() == []
    for step in (20, 40, 60):
        fake_checkpoint(store, step)
    fake_checkpoint(store, 80, complete=False)
    # Killed after writing ckpt-60 but before updating the index file, which still names ckpt-40.
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-40"\n')
    assert store.resume_candidates() == [(60, store.path(60)), (40, store.path(40)), (20, store.path(20))]


def test_the_best_checkpoint_is_found_by_name_and_by_step(tmp_path):
    store = CheckpointStore(tmp_path)
    fake_checkpoint(store, 1000)
    with pytest.raises(CheckpointError, match=r"has no best checkpoint: .*--eval_every > 0.*Checkpoints there: "
                                              r"ckpt-1000"):
        store.find("best")
    os.makedirs(store.best_dir)
    for suffix in (".index", ".data-00000-of-00001"):
        open(store.best_path(300) + suffix, "w").close()
    store.write_best_record({"step": 300, "checkpoint": store.best_path(300), "metric": "fid", "mode": "min",
                             "value": 12.5, "figures": {"fid": 12.5}})
    assert store.best_record()["value"] == 12.5
    assert store.find("best") == store.best_path(300) == store.find(300)
    assert store.find(1000) == store.path(1000)  # the rotating one
    with pytest.raises(CheckpointError, match=r"Checkpoints in .*: ckpt-1000, best \(step 300\)"):
        store.find(5)
    with open(os.path.join(store.best_dir, "best.json"), "w") as f:
        f.write("{broken")
    with pytest.raises(CheckpointError, match="best.json is not valid JSON"):
        store.find("best")


def test_a_failed_checkpoint_save_removes_its_shards_and_names_the_previous_one(tmp_path, monkeypatch):
    variable = tf.Variable(np.arange(10.0))
    store = CheckpointStore(tmp_path, tf.train.Checkpoint(v=variable), keep_checkpoints=3)
    directory = tmp_path / "checkpoints"
    calls = []
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk_save(fail_at=20, calls=calls))
    assert store.save(10, None) == str(directory / "ckpt-10")
    with pytest.raises(WriteFailedError, match=rf"the checkpoint {directory}/ckpt-20: no space left on device\. Its "
                       rf"partial files \(ckpt-20_temp\) were removed\. The last good checkpoint is "
                       rf"{directory}/ckpt-10"):
        store.save(20, 10)
    assert sorted(os.listdir(directory)) == ["checkpoint", "ckpt-10.data-00000-of-00001", "ckpt-10.index"]
    assert store.latest() == str(directory / "ckpt-10") and store.last_saved_step() == 10
    with pytest.raises(WriteFailedError, match="No checkpoint was written before it"):
        store.save(20, None)
    assert calls == [10, 20, 20]


def test_a_non_chief_worker_saves_apart_and_removes_its_copies(tmp_path):
    state = tf.train.Checkpoint(v=tf.Variable(np.arange(3.0)))
    worker = CheckpointStore(tmp_path, state, keep_checkpoints=1, worker=2)
    assert worker.save(4) == str(tmp_path / "tmp_checkpoints_worker2" / "ckpt-4")
    worker.save(6, 4)  # rotates ckpt-4 out
    assert worker.last_saved_step() == 6 and worker.checkpoints() == [] and worker.latest() is None
    assert sorted(os.listdir(tmp_path / "tmp_checkpoints_worker2")) == [
        "checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    worker.remove_worker_copies()
    assert os.listdir(tmp_path) == []
    chief = CheckpointStore(tmp_path, state)
    chief.save(6)
    chief.remove_worker_copies()  # the chief's checkpoints are the run's
    assert chief.checkpoints() == [(6, chief.path(6))]
