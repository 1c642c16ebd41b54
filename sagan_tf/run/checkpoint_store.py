"""The checkpoints of a run directory, with one owner: how they are named, saved, found, restored, kept as the best,
and cleaned up after an interrupted write.

    checkpoints/ckpt-<step>.index, .data-*   the rotating ones (the latest `keep_checkpoints`), by training step
    checkpoints/checkpoint                   TensorFlow's `CheckpointManager` index of them (it names the latest)
    checkpoints/best/ckpt-<step>.*           the best evaluated one (`write_best`), kept apart from the rotating ones
    checkpoints/best/best.json               its record: step, checkpoint, metric, mode, value, figures
    tmp_checkpoints_worker<N>/               a non-chief worker's copies under multi-worker training (only the
                                             chief's are kept)

    store = CheckpointStore("runs/synthetic32")
    path = store.find()                     # the latest; or store.find("best"), store.find(1500), store.find(path)
    store = CheckpointStore(run, checkpoint.gan_checkpoint(model), keep_checkpoints=3)  # to train
    store.restore_newest()                  # resume: the newest checkpoint whose files are not damaged
    callbacks.CheckpointEvery(store, every_n_steps=500)                 # saves with `store.save(step, last_step)`

What a checkpoint holds is `sagan_tf.run.checkpoint`'s; the rest of the run directory is `sagan_tf.run.run_dir`'s. A
save the filesystem refuses is a `WriteFailedError` naming the last good checkpoint, with its partial files removed
(`sagan_tf.run.write_failures`); what a killed save leaves is never read as a checkpoint (TensorFlow writes the
shards into `<prefix>_temp/` and the index last) and `interrupted_writes` lists it for the next run to remove.
"""

import contextlib
import json
import os
import re
import tempfile

import keras
import tensorflow as tf
from absl import logging

from sagan_tf.errors import CheckpointError, DamagedCheckpointError, UsageError
from sagan_tf.run import checkpoint as checkpoint_io
from sagan_tf.run import write_failures
from sagan_tf.run.run_dir import RunDirectory, write_json_atomically

CHECKPOINT_PREFIX = "ckpt"
BEST_RECORD = "best.json"
#: The directory of a non-chief worker's checkpoint copies, below the run directory.
WORKER_DIR = "tmp_checkpoints_worker{task}"
_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


def checkpoint_step(path):
    """The training step in a checkpoint path prefix `.../ckpt-<step>`, or None when the name has none."""
    match = _CHECKPOINT_NAME.match(os.path.basename(str(path)))
    return int(match.group(1)) if match else None


def _name(step):
    return f"{CHECKPOINT_PREFIX}-{int(step)}"


def checkpoint_leftovers(prefix):
    """What a failed or interrupted save of the checkpoint `prefix` left: its `<prefix>_temp*` directory (where
    TensorFlow writes the shards first), temporary state files, and data files without the index that TensorFlow
    writes last (so they are no checkpoint)."""
    found = tf.io.gfile.glob(f"{prefix}_temp*") + tf.io.gfile.glob(f"{prefix}.*tempstate*")
    if not tf.io.gfile.exists(f"{prefix}.index"):
        found += tf.io.gfile.glob(f"{prefix}.data-*")
    return found


@contextlib.contextmanager
def empty_manager():
    """A `tf.train.CheckpointManager` of nothing, in a temporary directory removed when the block ends: for
    TensorFlow APIs that want a manager to restore from (`PreemptionCheckpointHandler`) in a run that restores its
    own checkpoints."""
    with tempfile.TemporaryDirectory() as empty:
        yield tf.train.CheckpointManager(tf.train.Checkpoint(), empty, max_to_keep=1)


class CheckpointStore:
    """The checkpoints of one run directory (see the module docstring for their layout).

    Args:
      run_dir: the `RunDirectory` (or its path).
      state: the `tf.train.Checkpoint` of the training state (`checkpoint.gan_checkpoint(model)`), to save, restore
        and keep the best; None to find and read checkpoints only.
      keep_checkpoints: rotating checkpoints kept (with `state`).
      worker: the task id of a non-chief worker of a multi-worker run: every worker takes part in saving, and such a
        worker saves into its own directory (`WORKER_DIR`, removed by `remove_worker_copies`); None for the chief.
    """

    def __init__(self, run_dir, state=None, keep_checkpoints=3, worker=None):
        self.run_dir = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
        self.state = state
        self.worker = worker
        self.save_directory = self.directory if worker is None else os.path.join(
            self.run_dir.path, WORKER_DIR.format(task=worker))
        self._manager = None
        if state is not None:
            self._manager = tf.train.CheckpointManager(state, self.save_directory, max_to_keep=keep_checkpoints)

    def __repr__(self):
        return f"CheckpointStore({self.run_dir.path!r})"

    # Names.

    @property
    def directory(self):
        """checkpoints/: the rotating checkpoints."""
        return self.run_dir.checkpoint_dir

    @property
    def best_dir(self):
        """checkpoints/best/: the best checkpoint and its record."""
        return self.run_dir.best_dir

    @staticmethod
    def name(step):
        """The file name prefix of the checkpoint of training step `step` ("ckpt-<step>")."""
        return _name(step)

    def path(self, step):
        """The path prefix of the rotating checkpoint of training step `step`."""
        return os.path.join(self.directory, _name(step))

    def best_path(self, step):
        """The path prefix of the best checkpoint of training step `step`."""
        return os.path.join(self.best_dir, _name(step))

    # Finding.

    def checkpoints(self):
        """[(step, path prefix)] of the complete checkpoints in checkpoints/, by step."""
        found = []
        for index in tf.io.gfile.glob(os.path.join(self.directory, f"{CHECKPOINT_PREFIX}-*.index")):
            prefix = index[:-len(".index")]
            step = checkpoint_step(prefix)
            if step is not None:
                found.append((step, prefix))
        return sorted(found)

    def latest(self):
        """The path prefix of the latest checkpoint (by the manager's index file), or None."""
        return tf.train.latest_checkpoint(self.directory)

    def resume_candidates(self):
        """[(step, path prefix)] of the checkpoints to resume from, newest first: every complete checkpoint in
        checkpoints/ (also one the index file does not list yet, as when a process dies between writing a
        checkpoint and updating the index) and the one the index names."""
        found = dict(self.checkpoints())
        latest = self.latest()
        if latest is not None and checkpoint_step(latest) is not None:
            found.setdefault(checkpoint_step(latest), latest)
        return sorted(found.items(), reverse=True)

    def _available(self):
        names = [os.path.basename(prefix) for _, prefix in self.checkpoints()]
        record = self.best_record()
        if record is not None:
            names.append(f"best (step {record['step']})")
        return ", ".join(names) or "none"

    def find(self, checkpoint=None):
        """The path prefix of a checkpoint of this run.

        Args:
          checkpoint: None or "latest" (the latest), "best" (the best evaluated one, see `best_record`), a step
            number (int or digit string; a rotating checkpoint, else the best one if it has that step) or a
            checkpoint path prefix.

        Returns:
          The checkpoint path prefix (no `.index` suffix).

        Raises:
          CheckpointError: no such checkpoint, naming the ones there are.
        """
        text = "latest" if checkpoint is None else str(checkpoint)
        if text == "latest":
            latest = self.latest()
            if latest is None:
                raise CheckpointError(f"{self.directory} has no checkpoint yet. Train first (python -m "
                                      f"training.run --model_dir={self.run_dir.path}), or pass the --model_dir of a "
                                      "trained run.")
            return latest
        if text == "best":
            record = self.best_record()
            if record is None:
                raise CheckpointError(
                    f"{self.run_dir.path} has no best checkpoint: it is chosen by the evaluations during training "
                    f"(train with --eval_every > 0). Checkpoints there: {self._available()}; pass one of them, its "
                    "step number, or latest.")
            return self.best_path(record["step"])
        path = self.path(int(text)) if text.isdigit() else text
        if text.isdigit() and not tf.io.gfile.exists(path + ".index"):
            best = self.best_path(int(text))
            path = best if tf.io.gfile.exists(best + ".index") else path
        if not tf.io.gfile.exists(path + ".index"):
            raise CheckpointError(
                f"No checkpoint {path} (no {path}.index). Checkpoints in {self.directory}: "
                f"{self._available()}. Pass one of them, its step number, best, or latest.")
        return path

    # Saving (with `state`).

    def save(self, step, last_step=None):
        """Saves the state as checkpoint number `step` (rotating out the oldest beyond `keep_checkpoints`).

        Args:
          step: the training step.
          last_step: the step of the last checkpoint saved or restored, or None when there is none.

        Returns:
          The saved checkpoint's path prefix.

        Raises:
          WriteFailedError: the filesystem refused the write; the save's partial files are removed, and the message
            names the checkpoint of `last_step` as the last good one.
        """
        prefix = os.path.join(self.save_directory, _name(step))
        last_good = (write_failures.NO_CHECKPOINT if last_step is None else
                     os.path.join(self.save_directory, _name(last_step)))
        with write_failures.reporting("checkpoint", prefix, lambda: checkpoint_leftovers(prefix), last_good,
                                      resumes=True):
            return self._manager.save(checkpoint_number=step)

    def last_saved_step(self):
        """The step of the newest checkpoint where this process saves (by the manager's index), or None."""
        latest = self._manager.latest_checkpoint
        return None if latest is None else checkpoint_step(latest)

    def remove_worker_copies(self):
        """Removes a non-chief worker's checkpoint directory (nothing for the chief)."""
        if self.worker is not None and tf.io.gfile.exists(self.save_directory):
            tf.io.gfile.rmtree(self.save_directory)

    # Restoring (with `state`).

    def restore(self, path, mixed_precision=None):
        """Restores the whole training state from the checkpoint `path`.

        Args:
          path: a checkpoint path prefix.
          mixed_precision: the run's `--mixed_precision` policy (default: the global dtype policy's name); float16
            loss scaling must match the checkpoint's.

        Raises:
          DamagedCheckpointError: its files cannot be read back.
          CheckpointUnavailableError: storage did not serve it (`checkpoint.read_checkpoint`).
          UsageError: it cannot be read (`CheckpointError`), or it was written with other settings (architecture,
            EMA, float16 loss scaling).
        """
        mixed_precision = mixed_precision or keras.mixed_precision.global_policy().name
        scaled = checkpoint_io.uses_loss_scaling(path)
        if scaled != (mixed_precision == "mixed_float16"):
            written = "with" if scaled else "without"
            raise UsageError(
                f"Checkpoint {path} was written {written} float16 loss scaling, so it cannot resume with "
                f"--mixed_precision={mixed_precision}; resume with "
                f"{'--mixed_precision=mixed_float16' if scaled else 'float32 or mixed_bfloat16'}, or choose a new "
                "--model_dir.")
        try:
            checkpoint_io.read_checkpoint(lambda: self.state.restore(path).assert_existing_objects_matched(), path,
                                          "it cannot be read back")
        except UsageError:  # a `ValueError` too, but about its files, not its fit
            raise
        except (AssertionError, ValueError) as error:
            raise UsageError(
                f"Checkpoint {path} does not fit this model ({str(error).splitlines()[0]}). It was probably written "
                "with other settings (architecture, ema_decay or --mixed_precision=mixed_float16 loss scaling); "
                "resume with those, or choose a new --model_dir.") from None

    def restore_newest(self, mixed_precision=None, candidates=None):
        """Restores the newest checkpoint whose files are not damaged: a damaged one is skipped with a warning
        naming it, and the one before it is tried. Returns its path (None without candidates).

        Args:
          mixed_precision: see `restore`.
          candidates: [(step, path)], newest first; default `resume_candidates()`.

        Raises:
          DamagedCheckpointError: every one is damaged.
          CheckpointUnavailableError, UsageError: see `restore`.
        """
        candidates = self.resume_candidates() if candidates is None else candidates
        damaged = []
        for _, path in candidates:
            try:
                self.restore(path, mixed_precision)
            except DamagedCheckpointError as error:
                damaged.append(path)
                logging.warning("%s Trying the checkpoint before it.", error)
                continue
            if damaged:
                logging.warning("Resuming from %s: the newer checkpoint(s) %s cannot be read (see above) and will be "
                                "overwritten as training reaches their steps again.", path, ", ".join(damaged))
            return path
        if not candidates:
            return None
        raise DamagedCheckpointError(
            f"Every checkpoint in {self.directory} is damaged ({', '.join(damaged)}; see the warnings above), so "
            "training cannot resume. Move them away to start the run over, or choose a new --model_dir.")

    # The best checkpoint.

    def best_record(self):
        """The best checkpoint's record (checkpoints/best/best.json: step, checkpoint, metric, value, figures), or
        None when no evaluation has chosen one."""
        path = os.path.join(self.best_dir, BEST_RECORD)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            try:
                return json.load(f)
            except ValueError:
                raise CheckpointError(f"{path} is not valid JSON; delete it (the next evaluation during training "
                                      "writes a new one).") from None

    def write_best_record(self, record):
        """Writes checkpoints/best/best.json atomically (see `best_record`)."""
        write_json_atomically(os.path.join(self.best_dir, BEST_RECORD), record, "best-checkpoint record")

    def write_best(self, step):
        """Writes the state as the best checkpoint of `step` (`tf.train.Checkpoint.write`: its index and data files,
        without the manager's `checkpoint` index and rotation); returns its path prefix. Then `record_best` it.

        Raises:
          WriteFailedError: the filesystem refused the write; its partial files are removed.
        """
        prefix = self.best_path(step)
        with write_failures.reporting("checkpoint", prefix, lambda: checkpoint_leftovers(prefix)):
            return self.state.write(prefix)

    def record_best(self, step, path, record, replaced_step=None):
        """Records the best checkpoint `path` of `step` (just written by `write_best`) in best.json, then removes the
        best checkpoint of `replaced_step` (the one best.json named), so that best.json always names a complete
        checkpoint.

        Args:
          step: the training step.
          path: the checkpoint's path prefix.
          record: the fields of best.json besides "step" and "checkpoint" (metric, mode, value, figures, ...).
          replaced_step: the step of the best checkpoint best.json named, or None.

        Raises:
          WriteFailedError: best.json could not be written. The new checkpoint is then removed again (unless it is
            `replaced_step`'s, whose files it replaced and which best.json goes on naming): none is left that no
            record names and no later run removes.
        """
        try:
            self.write_best_record({"step": int(step), "checkpoint": path, **record})
        except BaseException:
            if replaced_step != step:
                with contextlib.suppress(OSError, tf.errors.OpError):  # the write's error is the one to report
                    self.remove_best(step)
            raise
        if replaced_step is not None and replaced_step != step:  # also one chosen by another metric
            self.remove_best(replaced_step)

    def remove_best(self, step):
        """Deletes the best checkpoint of `step` (its files)."""
        for stale in tf.io.gfile.glob(self.best_path(step) + ".*"):
            tf.io.gfile.remove(stale)

    # Interrupted writes.

    def interrupted_writes(self):
        """What interrupted checkpoint writes left in checkpoints/ and checkpoints/best/: unfinished checkpoints
        (`ckpt-<step>_temp*`, temporary state files, data files without an index) and the manager's
        `checkpoint.tmp*`."""
        found = []
        for directory in (self.directory, self.best_dir):
            if not tf.io.gfile.isdir(directory):
                continue
            found += tf.io.gfile.glob(os.path.join(directory, "*_temp*"))
            found += tf.io.gfile.glob(os.path.join(directory, "*.tempstate*"))
            found += tf.io.gfile.glob(os.path.join(directory, "checkpoint.tmp*"))
            for data in tf.io.gfile.glob(os.path.join(directory, f"{CHECKPOINT_PREFIX}-*.data-*")):
                if not tf.io.gfile.exists(data.rsplit(".data-", 1)[0] + ".index"):
                    found.append(data)
        return found


__all__ = ["CheckpointStore", "checkpoint_step", "checkpoint_leftovers", "empty_manager", "CHECKPOINT_PREFIX",
           "BEST_RECORD", "WORKER_DIR"]
