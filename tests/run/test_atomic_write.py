"""The one atomic-write helper: the new file appears whole, a failed write leaves the old file and no temporary."""

import errno
import os
import re

import pytest

from sagan_tf.run import atomic_write
from sagan_tf.errors import WriteFailedError


def test_writes_text_and_bytes_through_a_temporary_sibling(tmp_path):
    path = tmp_path / "sub" / "record.json"
    atomic_write.write_atomically(str(path), "first\n")
    assert path.read_text() == "first\n"
    atomic_write.write_atomically(str(path), b"\x89PNG")
    assert path.read_bytes() == b"\x89PNG" and os.listdir(path.parent) == ["record.json"]
    # The names that `write_failures.interrupted_writes` looks for, and a name of its own for shared caches.
    assert atomic_write.temporary_path("/r/config.json") == "/r/config.json.tmp"
    assert re.fullmatch(r"/c/x\.keras\.[0-9a-f]{32}\.tmp\.keras",
                        atomic_write.temporary_path("/c/x.keras", unique=True, suffix=".keras"))


@pytest.mark.parametrize("unique", [False, True])
def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, unique):
    path = tmp_path / "figures.json"
    path.write_text("old")
    seen = []
    with pytest.raises(ValueError, match="half way"):
        with atomic_write.replacing(str(path), unique=unique) as temporary:
            seen.append(temporary)
            with open(temporary, "w") as handle:
                handle.write("new, half")
            raise ValueError("half way")
    assert os.path.dirname(seen[0]) == str(tmp_path)  # beside the file: the rename stays in one folder
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["figures.json"]


def test_a_refused_write_is_reported_naming_the_removed_temporary(tmp_path):
    path = tmp_path / "best.json"
    path.write_text("old")
    with pytest.raises(WriteFailedError) as raised:
        with atomic_write.replacing(str(path), "best-checkpoint record") as temporary:
            with open(temporary, "w") as handle:
                handle.write("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert raised.value.removed == (str(tmp_path / "best.json.tmp"),)
    assert "Could not write the best-checkpoint record" in str(raised.value)
    assert "Its partial files (best.json.tmp) were removed" in str(raised.value)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["best.json"]


def test_a_failing_rename_keeps_the_old_file(tmp_path, monkeypatch):
    import tensorflow as tf

    path = tmp_path / "grid.png"
    path.write_bytes(b"old")

    def refuse(*args, **kwargs):
        raise tf.errors.PermissionDeniedError(None, None, "Permission denied")

    monkeypatch.setattr(tf.io.gfile, "rename", refuse)
    with pytest.raises(WriteFailedError, match="permission denied"):
        atomic_write.write_atomically(str(path), b"new", "sample grid")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["grid.png"]
