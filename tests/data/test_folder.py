"""folder:<path> datasets: pixel values of every image kind, labels, skipped files and errors."""

import logging
import os
import threading

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import data
from sagan_tf.data import folder

SIZE = 8


def _save(path, array, mode=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kwargs) if mode else Image.fromarray(array).save(path, **kwargs)
    return path


def _signed(values, scale=255.0):
    return np.asarray(values, np.float64) / scale * 2.0 - 1.0


@pytest.fixture
def class_folder(tmp_path):
    """Two classes, one image of every kind, plus files that must be skipped. Returns (root, expected)."""
    root = tmp_path / "images"
    expected = {}  # relative path -> (expected float image in [-1, 1], label)
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[...] = (10, 200, 30)
    _save(root / "cats" / "a_rgb.png", rgb)
    expected["cats/a_rgb.png"] = (np.broadcast_to(_signed([10, 200, 30]), (SIZE, SIZE, 3)), 0)
    _save(root / "cats" / "b_gray.png", np.zeros((SIZE, SIZE), np.uint8), "L")
    expected["cats/b_gray.png"] = (np.full((SIZE, SIZE, 3), -1.0), 0)
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 255)  # opaque red
    rgba[:, 4:6] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[:, 6:] = (0, 0, 0, 128)  # half-transparent black over white
    _save(root / "cats" / "c_rgba.png", rgba, "RGBA")
    want = np.empty((SIZE, SIZE, 3))
    want[:, :4] = (1.0, -1.0, -1.0)
    want[:, 4:6] = 1.0
    want[:, 6:] = _signed(1.0 - 128 / 255, 1.0)
    expected["cats/c_rgba.png"] = (want, 0)
    # Non-square: the central square is green, the strips cut off on both sides are red and blue.
    wide = np.zeros((SIZE, 2 * SIZE, 3), np.uint8)
    wide[:, : SIZE // 2] = (255, 0, 0)
    wide[:, SIZE // 2 : SIZE // 2 + SIZE] = (0, 255, 0)
    wide[:, SIZE // 2 + SIZE :] = (0, 0, 255)
    _save(root / "cats" / "d_wide.png", wide)
    expected["cats/d_wide.png"] = (np.broadcast_to(_signed([0, 255, 0]), (SIZE, SIZE, 3)), 0)

    deep = np.full((SIZE, SIZE), 65535, np.uint16)
    deep[:, SIZE // 2 :] = 1000
    _save(root / "dogs" / "a_gray16.png", deep)
    want = np.empty((SIZE, SIZE, 3))
    want[:, : SIZE // 2] = 1.0
    want[:, SIZE // 2 :] = _signed(1000, 65535.0)
    expected["dogs/a_gray16.png"] = (want, 1)
    rgb16 = np.zeros((SIZE, SIZE, 3), np.uint16)
    rgb16[...] = (65535, 300, 40000)
    (root / "dogs" / "b_rgb16.png").write_bytes(tf.io.encode_png(rgb16).numpy())
    want = np.broadcast_to(_signed([65535, 300, 40000], 65535.0), (SIZE, SIZE, 3))
    expected["dogs/b_rgb16.png"] = (want, 1)
    jpeg = np.zeros((SIZE, SIZE, 3), np.uint8)
    jpeg[...] = (120, 60, 240)
    _save(root / "dogs" / "c_photo.jpg", jpeg, quality=100)
    expected["dogs/c_photo.jpg"] = (np.broadcast_to(_signed([120, 60, 240]), (SIZE, SIZE, 3)), 1)
    os.symlink(root / "cats" / "a_rgb.png", root / "dogs" / "d_link.png")
    expected["dogs/d_link.png"] = (expected["cats/a_rgb.png"][0], 1)
    os.symlink(root / "dogs", root / "dogs" / "loop")  # a link cycle must not hang the scan

    # To be skipped: garbage, truncated, empty, broken link, non-image.
    (root / "dogs" / "x_garbage.png").write_bytes(b"this is not an image at all")
    whole = (root / "cats" / "a_rgb.png").read_bytes()
    (root / "dogs" / "x_truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "cats" / "x_empty.jpg").write_bytes(b"")
    os.symlink(root / "nowhere.png", root / "cats" / "x_broken.png")
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()  # ignored, not a class
    return root, expected


def _read_all(name, **kwargs):
    dataset = data.load(name, image_size=SIZE, batch_size=1, shuffle=False, random_flip=False, **kwargs)
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_pixel_values_labels_and_one_warning(class_folder, caplog):
    root, expected = class_folder
    with caplog.at_level(logging.WARNING):
        images, labels = _read_all(f"folder:{root}", repeat=False)
    assert images.shape == (len(expected), SIZE, SIZE, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    for (path, (want, label)), image, got_label in zip(sorted(expected.items()), images, labels):
        atol = 2.5 / 255 if path.endswith(".jpg") else 1e-5  # JPEG is lossy even at quality 100
        np.testing.assert_allclose(image, want, atol=atol, err_msg=path)
        assert got_label == label, path
    warnings = [r for r in caplog.records if "Skipped" in r.getMessage()]
    assert len(warnings) == 1
    assert "Skipped 5 of 13 files" in warnings[0].getMessage()


def test_scan_checks_slow_files_on_threads_and_quick_ones_in_the_calling_thread(class_folder, monkeypatch):
    root, expected = class_folder
    threads = set()
    check = folder._check

    def recording_check(path):
        threads.add(threading.current_thread().name)
        return check(path)

    monkeypatch.setattr(folder, "_check", recording_check)
    monkeypatch.setattr(folder, "SCAN_CHUNK", 2)  # the first 2 files are timed, the rest go in chunks of 2
    scans, checked_on = {}, {}
    for mode, threshold in (("quick", float("inf")), ("slow", -1.0)):
        threads.clear()
        monkeypatch.setattr(folder, "SCAN_THREADED_ABOVE_SECONDS", threshold)
        scans[mode], checked_on[mode] = folder.scan(str(root)), set(threads)
    main = threading.main_thread().name
    assert checked_on["quick"] == {main}
    assert main in checked_on["slow"] and len(checked_on["slow"]) > 1  # the timed chunk, then the pool
    assert scans["quick"] == scans["slow"]  # the same files, labels and sizes, in the same order
    assert sorted(os.path.relpath(f, root) for f in scans["quick"].files) == sorted(expected)


def test_info_of_class_folder(class_folder):
    root, _ = class_folder
    info = data.get_info(f"folder:{root}")
    assert info.conditional and info.num_classes == 2 and info.class_names == ("cats", "dogs")
    assert data.num_classes("folder:images", data_dir=str(root.parent)) == 2


def test_unconditional_folder_training_pipeline(tmp_path):
    for i in range(3):
        _save(tmp_path / f"{i}.png", np.full((12, 20, 3), 60 * i, np.uint8))
    info = data.get_info(f"folder:{tmp_path}")
    assert not info.conditional and info.num_classes == 1
    dataset = data.load(f"folder:{tmp_path}", image_size=4, batch_size=5, seed=1)
    assert dataset.element_spec[0].shape == (5, 4, 4, 3)
    images, labels = next(iter(dataset))  # repeats, so 3 files fill a batch of 5
    np.testing.assert_array_equal(labels, 0)
    values = set(np.round((images.numpy()[:, 0, 0, 0] + 1) * 127.5).astype(int))
    assert values <= {0, 60, 120}


def test_corrupt_middle_is_skipped_at_run_time(tmp_path):
    good = _save(tmp_path / "good.png", np.full((SIZE, SIZE, 3), 255, np.uint8))
    blob = bytearray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8).tobytes())
    _save(tmp_path / "noisy.png", np.frombuffer(bytes(blob), np.uint8).reshape(64, 64, 3))
    raw = bytearray((tmp_path / "noisy.png").read_bytes())
    raw[100:140] = b"\x00" * 40  # header and IEND intact, image data corrupt
    (tmp_path / "noisy.png").write_bytes(bytes(raw))
    images, _ = _read_all(f"folder:{tmp_path}", repeat=False)
    assert len(images) == 1 and good.exists()
    np.testing.assert_allclose(images, 1.0)


def test_empty_and_unreadable_folders_are_clear_errors(tmp_path):
    with pytest.raises(data.DatasetError, match="holds no readable"):
        data.load(f"folder:{tmp_path}", batch_size=1)
    (tmp_path / "junk.png").write_bytes(b"garbage")
    with pytest.raises(data.DatasetError, match=r"holds no readable .*1 other file"):
        data.load(f"folder:{tmp_path}", batch_size=1)
    _save(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "b").mkdir()
    with pytest.raises(data.DatasetError, match=r"class subfolder\(s\) b of .* hold no readable image"):
        data.load(f"folder:{tmp_path}", batch_size=1)


def test_too_few_images_for_one_batch_without_repeat(tmp_path):
    _save(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(data.DatasetError, match="fewer than one full batch of 2"):
        data.load(f"folder:{tmp_path}", "test", batch_size=2)


def test_training_stream_is_a_new_permutation_every_epoch_and_can_start_anywhere(tmp_path):
    # Half-blue images would show a flip; one-colour images cannot, so mark the left column.
    root = tmp_path / "numbered"
    for i in range(7):
        pixels = np.full((SIZE, SIZE, 3), (10 * i, 0, 250), np.uint8)
        pixels[:, 0] = (10 * i, 255, 0)  # a green left edge: where it ends up tells whether it was flipped
        _save(root / ("a" if i % 2 else "b") / f"{i:02d}.png", pixels)
    name = f"folder:{root}"

    def stream(batches, **kwargs):
        dataset = data.load(name, image_size=SIZE, batch_size=3, random_flip=True, seed=5, **kwargs)
        images = np.concatenate([b[0] for b in dataset.take(batches).as_numpy_iterator()])
        numbers = np.round((images[:, SIZE // 2, SIZE // 2, 0] + 1) * 127.5 / 10).astype(int)
        flipped = images[:, SIZE // 2, -1, 1] > 0.9  # the green edge moved to the right
        return numbers, flipped

    numbers, flipped = stream(7)  # 21 images: three epochs of 7
    epochs = numbers.reshape(3, 7)
    for epoch in epochs:
        assert sorted(epoch) == list(range(7))
    assert len({tuple(epoch) for epoch in epochs}) == 3  # reshuffled every epoch
    assert 0 < flipped.sum() < len(flipped)
    # Started at position 9 (in the second epoch), it reads exactly what the straight stream read from 9 on.
    resumed_numbers, resumed_flipped = stream(4, position=9)
    np.testing.assert_array_equal(resumed_numbers, numbers[9:21])
    np.testing.assert_array_equal(resumed_flipped, flipped[9:21])
    # The order is the documented pure function of (seed, epoch).
    files = sorted(f"{i:02d}" for i in range(7))
    scanned = [os.path.basename(f)[:2] for f in folder.scan(str(root)).files]
    order = folder.epoch_order(7, tf.constant(1, tf.int64), 5).numpy()
    np.testing.assert_array_equal(epochs[1], [int(scanned[k]) for k in order])
    assert sorted(scanned) == files
