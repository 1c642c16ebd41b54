"""Write failures as errors, not tracebacks: a full disk, no permission or a read-only filesystem.

    with write_failures.reporting("evaluation record", path, last_good=checkpoint_path):
        write_json(path, record)
    with write_failures.reported_refusals(last_good_fn):                # around a whole training run
        ...
    leftovers = write_failures.interrupted_writes(run_dir)              # on start, by the lock holder

`reporting` turns what a write raises when the filesystem refuses it (`cause_of`: an `OSError` with ENOSPC, EDQUOT,
EFBIG, EACCES, EPERM, EROFS or EIO, or a TensorFlow error carrying its text: TensorFlow raises
`ResourceExhaustedError` for a full disk, `PermissionDeniedError` for no permission and a read-only filesystem)
into one `WriteFailedError` naming the file, the cause and the last good checkpoint, after removing what the failed
write left (`cleanup`); entry points print it as one paragraph with exit status 2. Other errors pass through
unchanged: they are not about the filesystem refusing a write. `reported_refusals` does the same around code that
does more than write (a TensorBoard summary op names its events file), for the causes only a write has.

No half-written file is left where a reader would take it for a real one: TensorFlow writes a checkpoint's shards
into `<prefix>_temp/` and its index last, and the run directory's JSON files and PNGs are written to a `.tmp`
sibling renamed into place (`sagan_tf.run.atomic_write`). What a failed write leaves is removed at once; what a killed
process leaves (a checkpoint's temporary directory, a `.tmp` file, data files without their index) is never read as a
checkpoint or a record, and the next training run removes it when it takes the directory (`interrupted_writes`, and
`CheckpointStore.interrupted_writes` for the checkpoints').
"""

import contextlib
import errno
import os
import re

import tensorflow as tf

from sagan_tf.errors import WriteFailedError

#: `last_good` of a failure before any checkpoint was written (None: not known where the failure happened).
NO_CHECKPOINT = ""
#: errno -> the cause as a message says it.
OS_CAUSES = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
             errno.EFBIG: "file too large", errno.EACCES: "permission denied",
             errno.EPERM: "operation not permitted", errno.EROFS: "read-only file system",
             errno.EIO: "input/output error"}
#: The causes only a write has (a read may be refused permission too).
_WRITE_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
#: The strerror texts TensorFlow's file system errors carry (it maps ENOSPC to ResourceExhaustedError, EACCES and
#: EROFS to PermissionDeniedError, EFBIG to OutOfRangeError, and keeps the text).
_TEXTS = {os.strerror(code): cause for code, cause in OS_CAUSES.items()}
_ADVICE = {
    "no space left on device": "Free space on that filesystem (or use a directory on another one)",
    "disk quota exceeded": "Free space within your quota (or use a directory on another filesystem)",
    "file too large": "Raise the file-size limit (ulimit -f) or use a directory on another filesystem",
    "permission denied": "Make {directory} writable for this user",
    "operation not permitted": "Make {directory} writable for this user",
    "read-only file system": "Remount that filesystem read-write (or use a directory on another one)",
}


def cause_of(error, strict=False):
    """The cause of a refused write ("no space left on device", "permission denied", ...), or None when `error` is
    not the filesystem refusing a write.

    Args:
      error: an exception raised by a write.
      strict: for errors that need not come from a write (anywhere in a training run): only the causes no read has
        (no space, quota, file too large, read-only file system), and TensorFlow errors by their strerror text, not
        by their type (a `ResourceExhaustedError` from training may be an out-of-memory error, a
        `PermissionDeniedError` an unreadable image).
    """
    causes = {code: OS_CAUSES[code] for code in _WRITE_ONLY} if strict else OS_CAUSES
    if isinstance(error, OSError) and error.errno in causes:
        return causes[error.errno]
    if isinstance(error, tf.errors.OpError):
        text = str(error)
        for code, cause in causes.items():
            if os.strerror(code) in text:
                return cause
        if strict:
            return None
        if isinstance(error, tf.errors.PermissionDeniedError):
            return "permission denied"
        if isinstance(error, tf.errors.ResourceExhaustedError):
            return f"out of space or quota ({_first_line(text)})"
    return None


def _first_line(text):
    """An error text without TensorFlow's "{{function_node ...}}" prefix, on one line, at most 200 characters."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    return " ".join(text.split())[:200]


def message(what, path, cause, last_good=None, removed=(), resumes=False):
    """The one paragraph of a `WriteFailedError`: the file, the cause, the last good checkpoint, what to do.

    Args:
      what: what was being written ("checkpoint", "sample grid", "evaluation record", ...).
      path: the file or path prefix.
      cause: see `cause_of`.
      last_good: the last good checkpoint; `NO_CHECKPOINT`: none was written; None: not known here.
      removed: the leftovers of the failed write that were removed.
      resumes: a rerun resumes training from the last good checkpoint (training), rather than redoing the
        command's work (evaluate, export).
    """
    text = f"Could not write the {what} {path}: {cause}."
    if removed:
        text += f" Its partial files ({', '.join(os.path.basename(p) for p in removed)}) were removed."
    if last_good:
        text += f" The last good checkpoint is {last_good}, intact."
    elif last_good == NO_CHECKPOINT:
        text += " No checkpoint was written before it."
    directory = os.path.dirname(str(path)) or "."
    advice = _ADVICE.get(cause, "Fix the cause above").format(directory=directory)
    if resumes and last_good:
        return f"{text} {advice}, then rerun the same command: training resumes from the last good checkpoint."
    return f"{text} {advice}, then rerun the same command."


def naming_last_good(error, last_good, resumes=True):
    """`error` (a `WriteFailedError`) naming `last_good` as the last good checkpoint, where it named none."""
    if error.last_good is not None:
        return error
    return WriteFailedError(message(error.what, error.path, error.cause, last_good, error.removed, resumes),
                            what=error.what, path=error.path, cause=error.cause, last_good=last_good,
                            removed=error.removed)


def remove(paths):
    """Removes files and directories (recursively) that exist; returns those removed. Never raises: a cleanup
    after a failed write must not hide that failure."""
    removed = []
    for path in paths:
        try:
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            elif tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
            else:
                continue
        except (tf.errors.OpError, OSError):
            continue
        removed.append(path)
    return removed


@contextlib.contextmanager
def reporting(what, path, cleanup=None, last_good=None, resumes=False):
    """Turns a write refused by the filesystem inside the block into a `WriteFailedError` (see `message`); a
    `WriteFailedError` from inside that names no last good checkpoint is raised naming `last_good`.

    Args:
      what, path, last_good, resumes: see `message`.
      cleanup: a function returning the paths the failed write left (called after the failure); they are removed.

    Raises:
      WriteFailedError: from a refused write (see `cause_of`); other errors pass through unchanged.
    """
    try:
        yield
    except WriteFailedError as error:  # from a write inside the block: name the last good checkpoint known here
        if last_good is None or error.last_good is not None:
            raise
        raise naming_last_good(error, last_good, resumes) from None
    except Exception as error:  # noqa: BLE001 - classified below; anything else is re-raised as it is
        cause = cause_of(error)
        if cause is None:
            raise
        removed = tuple(remove(cleanup())) if cleanup is not None else ()
        raise WriteFailedError(message(what, path, cause, last_good, removed, resumes), what=what, path=str(path),
                               cause=cause, last_good=last_good, removed=removed) from None


def refused_write(error, last_good=None, resumes=False):
    """The `WriteFailedError` of `error` when it is a write the filesystem refused, wherever it was raised (e.g. by a
    TensorBoard summary op, whose text names its events file), else None. A `WriteFailedError` comes back naming
    `last_good` where it named no last good checkpoint."""
    if isinstance(error, WriteFailedError):
        return error if last_good is None else naming_last_good(error, last_good, resumes)
    cause = cause_of(error, strict=True)
    if cause is None:
        return None
    path = getattr(error, "filename", None)
    if path is None:
        found = re.search(rf"(\S+); (?:{'|'.join(map(re.escape, _TEXTS))})", _first_line(str(error)))
        path = found[1] if found else None
    what = "TensorBoard events file" if path and "tfevents" in os.path.basename(path) else "file"
    return WriteFailedError(message(what, path or "(see the cause)", cause, last_good, (), resumes), what=what,
                            path=path, cause=cause, last_good=last_good)


@contextlib.contextmanager
def reported_refusals(last_good=None, resumes=True, quiet=False, warn_fn=None):
    """Turns any write the filesystem refuses inside the block (`refused_write`) into a `WriteFailedError`.

    For blocks that do more than write (a whole training run), so TensorFlow errors count by their strerror text
    only (`cause_of(strict=True)`).

    Args:
      last_good: a function returning the last good checkpoint at the moment of the failure (see `message`).
      resumes: see `message`.
      quiet: warn (`warn_fn`) instead of raising: while another error is already on its way out.
      warn_fn: where a quiet failure goes; default `absl.logging.warning`.
    """
    try:
        yield
    except (WriteFailedError, tf.errors.OpError, OSError) as error:
        if not isinstance(error, WriteFailedError) and cause_of(error, strict=True) is None:
            raise
        failure = refused_write(error, last_good() if last_good is not None else None, resumes)
        if quiet:
            from absl import logging

            (warn_fn or logging.warning)(str(failure))
            return
        raise failure from None


def interrupted_writes(run_dir):
    """The leftovers of interrupted writes in a run directory (a `RunDirectory`) other than its checkpoints' (those
    are `CheckpointStore.interrupted_writes`): `.tmp` files of config.json, class_names.json, best.json and sample
    grids, and the run lock's (`training.lock.<hex>.tmp`, `training.lock.takeover.<hex>.tmp`: a start that could not
    write its lock record). eval/ is left alone: an evaluation may be writing there while training runs."""
    found = []
    lock_temporaries = os.path.basename(run_dir.lock_path) + ".*.tmp"
    for directory, pattern in ((run_dir.path, "*.json.tmp"), (run_dir.best_dir, "*.json.tmp"),
                               (run_dir.samples_dir, "*.png.tmp"), (run_dir.path, lock_temporaries)):
        if tf.io.gfile.isdir(directory):
            found += tf.io.gfile.glob(os.path.join(directory, pattern))
    return found


__all__ = ["cause_of", "message", "naming_last_good", "reporting", "refused_write", "reported_refusals", "remove",
           "interrupted_writes", "NO_CHECKPOINT", "OS_CAUSES"]
