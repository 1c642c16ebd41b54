"""Writing a file so that readers see the old file or the new one, never a partial one.

    with atomic_write.replacing(path, "sample grid") as temporary:    # write `temporary` any way you like
        figure.savefig(temporary)
    atomic_write.write_atomically(path, text, "evaluation record")    # str or bytes

The new contents go to a temporary sibling in the same folder, which is renamed onto `path` (a rename within one
folder is atomic on POSIX filesystems and replaces the old file in one step). When the write fails the temporary
file is removed and `path` keeps its old contents. Paths are `tf.io.gfile` paths (local, gs:// ...).

The temporary's name is `<path>.tmp`, the pattern `sagan_tf.run.write_failures.interrupted_writes` recognises in a run
directory (what a killed process left); `unique=True` names it `<path>.<32 hex digits>.tmp` instead, for files that
two processes may write at once (the caches shared between runs). No fsync: as before this helper existed, the
rename orders the write for readers of this machine; a crash of the machine may still lose the newest file.
"""

import contextlib
import os
import uuid

import tensorflow as tf

from sagan_tf.run import write_failures


def temporary_path(path, unique=False, suffix=""):
    """The temporary sibling of `path`: `<path>.tmp`, or `<path>.<hex>.tmp` when `unique`, then `suffix` (e.g.
    ".keras" for `keras.Model.save`, which wants that ending)."""
    return f"{path}.{uuid.uuid4().hex}.tmp{suffix}" if unique else f"{path}.tmp{suffix}"


@contextlib.contextmanager
def replacing(path, what=None, unique=False, suffix=""):
    """Yields a temporary path to write; when the block ends, renames it onto `path` (creating the folder first).

    Args:
      path: the file to (re)place.
      what: what the file is ("evaluation record", ...): a write the filesystem refuses (full disk, no permission)
        then raises `WriteFailedError` naming it and the partial file removed (`write_failures.reporting`). None:
        errors pass through as they are.
      unique: a temporary name of its own (see the module docstring), for files written by several processes.
      suffix: appended to the temporary name.

    Raises:
      WriteFailedError: with `what`, for a refused write. Any other error of the block or the rename passes
        through. Either way the temporary file is gone and `path` is as it was.
    """
    path = str(path)
    temporary = temporary_path(path, unique, suffix)
    reporting = (write_failures.reporting(what, path, cleanup=lambda: [temporary]) if what is not None
                 else contextlib.nullcontext())
    with reporting:
        try:
            directory = os.path.dirname(path)
            if directory:
                tf.io.gfile.makedirs(directory)
            yield temporary
            tf.io.gfile.rename(temporary, path, overwrite=True)
        except BaseException as error:
            if what is None or write_failures.cause_of(error) is None:
                write_failures.remove([temporary])  # else `reporting` removes it and names it in its message
            raise


def write_atomically(path, contents, what=None, unique=False):
    """Writes `contents` (str: text, bytes: binary) to `path` through `replacing(path, what, unique)`."""
    with replacing(path, what, unique) as temporary:
        with tf.io.gfile.GFile(temporary, "wb" if isinstance(contents, bytes) else "w") as handle:
            handle.write(contents)


__all__ = ["temporary_path", "replacing", "write_atomically"]
