"""write_failures: a write the filesystem refuses is one WriteFailedError naming the file, the cause and the last good
checkpoint, and leaves no partial file behind."""

import errno
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf.sampling import images
from sagan_tf.run import write_failures
from sagan_tf.errors import UsageError, WriteFailedError
from sagan_tf.run.run_dir import write_json_atomically, write_text_atomically

#: What TensorFlow raised in the probe, a checkpoint into a full 30 MiB filesystem.
FULL = ("{{function_node __wrapped__SaveV2_dtypes_336_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
        "/x/ckpt-20_temp/part-00000-of-00001.data-00000-of-00001.tempstate175; No space left on device [Op:SaveV2]")


@pytest.mark.parametrize("error, cause", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
    (tf.errors.ResourceExhaustedError(None, None, FULL), "no space left on device"),
    (tf.errors.PermissionDeniedError(None, None, "/mnt/ro/ck; Read-only file system"), "read-only file system"),
    (tf.errors.PermissionDeniedError(None, None, "/x/ck; Permission denied"), "permission denied"),
    (tf.errors.ResourceExhaustedError(None, None, "{{function_node x}} quota\n of something"),
     "out of space or quota (quota of something)"),
    (tf.errors.OutOfRangeError(None, None, "/x/ckpt-2_temp/part-0; File too large"), "file too large"),
    (tf.errors.OutOfRangeError(None, None, "End of sequence"), None),
    (tf.errors.NotFoundError(None, None, "/x; No such file or directory"), None),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), None),
    (ValueError("a bug"), None),
])
def test_refused_writes_are_told_apart_from_other_errors(error, cause):
    assert write_failures.cause_of(error) == cause


def test_reporting_names_the_file_the_cause_and_the_last_good_checkpoint(tmp_path):
    partial = tmp_path / "ckpt-20_temp"
    partial.mkdir()
    (partial / "part-0").write_bytes(b"half")
    with pytest.raises(WriteFailedError) as raised:
        with write_failures.reporting("checkpoint", tmp_path / "ckpt-20", cleanup=lambda: [str(partial)],
                                      last_good=str(tmp_path / "ckpt-10"), resumes=True):
            raise tf.errors.ResourceExhaustedError(None, None, FULL)
    error = raised.value
    assert isinstance(error, UsageError)  # entry points print it as one paragraph, exit status 2
    assert str(error) == (
        f"Could not write the checkpoint {tmp_path}/ckpt-20: no space left on device. Its partial files "
        f"(ckpt-20_temp) were removed. The last good checkpoint is {tmp_path}/ckpt-10, intact. Free space on that "
        "filesystem (or use a directory on another one), then rerun the same command: training resumes from the last "
        "good checkpoint.")
    assert (error.what, error.cause, error.last_good) == ("checkpoint", "no space left on device",
                                                         str(tmp_path / "ckpt-10"))
    assert not partial.exists()

    with pytest.raises(ValueError, match="a bug"):  # not a refused write: unchanged, nothing cleaned up
        with write_failures.reporting("checkpoint", "x", cleanup=lambda: pytest.fail("cleaned up")):
            raise ValueError("a bug")

    # An outer block names the last good checkpoint an inner write did not know.
    with pytest.raises(WriteFailedError, match=r"Could not write the evaluation record e.json: permission denied\. "
                       r"The last good checkpoint is run/ckpt-5, intact\. Make \. writable for this user, then rerun "
                       r"the same command\.$"):
        with write_failures.reporting("evaluation record", "e.json", last_good="run/ckpt-5"):
            with write_failures.reporting("evaluation record", "e.json"):
                raise PermissionError(errno.EACCES, "Permission denied")
    first = write_failures.naming_last_good(WriteFailedError("x", "sample grid", "s.png", "no space left on device"),
                                            write_failures.NO_CHECKPOINT)
    assert "No checkpoint was written before it." in str(first) and first.last_good == ""


def refuse_renames(monkeypatch, suffix, error):
    """Makes tf.io.gfile.rename of files ending in `suffix` fail with `error`, after the data was written (as a
    full disk fails the last block of a file)."""
    rename = tf.io.gfile.rename

    def refusing(source, target, overwrite=False):
        if str(source).endswith(suffix):
            raise error
        return rename(source, target, overwrite)

    monkeypatch.setattr(tf.io.gfile, "rename", refusing)


def test_a_refused_json_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "eval" / "latest.json"
    write_json_atomically(str(path), {"fid": 1.0})
    refuse_renames(monkeypatch, ".tmp", tf.errors.ResourceExhaustedError(None, None, f"{path}.tmp; No space left "
                                                                                     "on device"))
    with pytest.raises(WriteFailedError, match=rf"Could not write the evaluation record {path}: no space left on "
                       r"device\. Its partial files \(latest.json.tmp\) were removed\. Free space"):
        write_json_atomically(str(path), {"fid": 2.0}, "evaluation record")
    assert os.listdir(path.parent) == ["latest.json"] and path.read_text() == '{\n  "fid": 1.0\n}\n'


def test_a_refused_png_leaves_no_half_written_picture(tmp_path, monkeypatch):
    grid = np.zeros((6, 6, 3), np.uint8)
    refuse_renames(monkeypatch, ".png.tmp", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(WriteFailedError, match=r"Could not write the sample grid .*step_00000004\.png: no space left"):
        images.save_png(grid, str(tmp_path / "samples" / "step_00000004.png"), what="sample grid")
    assert os.listdir(tmp_path / "samples") == []
    monkeypatch.undo()
    images.save_png(grid, str(tmp_path / "samples" / "step_00000004.png"))
    assert os.listdir(tmp_path / "samples") == ["step_00000004.png"]
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "samples" / "step_00000004.png")), grid)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_a_write_failure(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run").chmod(0o555)
    try:
        with pytest.raises(WriteFailedError, match=rf"Could not write the run config {tmp_path}/run/config.json: "
                           rf"permission denied\. Make {tmp_path}/run writable for this user"):
            write_text_atomically(str(tmp_path / "run" / "config.json"), "{}", "run config")
        assert os.listdir(tmp_path / "run") == []
    finally:
        (tmp_path / "run").chmod(0o755)


def test_a_refused_tensorboard_summary_anywhere_in_a_run_names_its_events_file():
    events = "/runs/x/events.out.tfevents.1796173270.vm.12042.0.v2"
    summary_error = tf.errors.ResourceExhaustedError(None, None, f"{{{{function_node __wrapped__WriteSummary}}}} "
                                                     f"{events}; No space left on device\n\tFailed to flush 11 events "
                                                     f"to {events}\n\tCould not flush events file. [Op:WriteSummary]")
    with pytest.raises(WriteFailedError, match=rf"^Could not write the TensorBoard events file {events}: no space "
                       r"left on device\. The last good checkpoint is /runs/x/checkpoints/ckpt-10, intact\. .*training "
                       r"resumes from the last good checkpoint\.$"):
        with write_failures.reported_refusals(lambda: "/runs/x/checkpoints/ckpt-10"):
            raise summary_error
    # An unreadable image is no write failure, nor is out of memory, though TensorFlow raises the same classes.
    with pytest.raises(tf.errors.PermissionDeniedError):
        with write_failures.reported_refusals(lambda: pytest.fail("asked for the last good checkpoint")):
            raise tf.errors.PermissionDeniedError(None, None, "/data/faces/0001.png; Permission denied")
    with pytest.raises(tf.errors.ResourceExhaustedError, match="OOM"):
        with write_failures.reported_refusals(lambda: pytest.fail("asked for the last good checkpoint")):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,1024]")
    warnings = []
    with write_failures.reported_refusals(lambda: write_failures.NO_CHECKPOINT, quiet=True, warn_fn=warnings.append):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/samples/step_00000002.png.tmp")
    assert warnings == ["Could not write the file /runs/x/samples/step_00000002.png.tmp: no space left on device. No "
                        "checkpoint was written before it. Free space on that filesystem (or use a directory on "
                        "another one), then rerun the same command."]
