"""TFDS sources under `tfds.testing.mock_data` (never downloads): values, shapes, labels and the crop."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from sagan_tf import data
from sagan_tf.data import tfds_source

MANUAL = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


@pytest.fixture
def imagenet_root(tmp_path):
    """A data_dir whose manual folder holds (empty) ImageNet archives, so `load` reaches the mocked TFDS."""
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in MANUAL:
        (manual / name).write_bytes(b"")
    return str(tmp_path)


def _reference(encoded, size):
    """Central square crop in NumPy, then PIL's antialiased bilinear resize, scaled to [-1, 1]."""
    pixels = tf.io.decode_jpeg(encoded).numpy().astype(np.float32) / 255.0
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = pixels[top : top + side, left : left + side]
    channels = [Image.fromarray(crop[..., c], "F").resize((size, size), Image.BILINEAR) for c in range(3)]
    return np.stack([np.asarray(c) for c in channels], axis=-1) * 2.0 - 1.0


def test_imagenet_values_labels_and_central_crop(imagenet_root):
    with tfds.testing.mock_data(num_examples=6):
        raw = list(
            tfds.as_numpy(
                tfds.builder("imagenet2012").as_dataset(
                    split="train", shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
                )
            )
        )
        dataset = data.load(
            "imagenet2012", image_size=32, batch_size=3, data_dir=imagenet_root,
            shuffle=False, random_flip=False, repeat=False,
        )
        assert dataset.element_spec[0].shape == (3, 32, 32, 3)
        assert dataset.element_spec[1] == tf.TensorSpec((3,), tf.int32)
        batches = list(dataset.as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    np.testing.assert_array_equal(labels, [r["label"] for r in raw])
    assert labels.dtype == np.int32 and np.all((labels >= 0) & (labels < 1000))
    shapes = {tf.io.decode_jpeg(r["image"]).shape[:2] for r in raw}
    assert any(h != w for h, w in shapes)  # the crop matters
    for example, image in zip(raw, images):
        np.testing.assert_allclose(image, _reference(example["image"], 32), atol=2e-5)
        # An independent decoder agrees up to JPEG IDCT rounding.
        pil = np.asarray(Image.open(io.BytesIO(example["image"])), np.float32)
        assert pil.shape[:2] == tf.io.decode_jpeg(example["image"]).shape[:2]


def test_imagenet_training_pipeline_flips_and_repeats(imagenet_root):
    with tfds.testing.mock_data(num_examples=5):
        dataset = data.load("imagenet2012", image_size=16, batch_size=4, data_dir=imagenet_root, seed=3)
        batches = list(dataset.take(4).as_numpy_iterator())  # 16 images from 5 examples: it repeats
        test = data.load("imagenet2012", "test", image_size=16, batch_size=2, data_dir=imagenet_root)
        assert len(list(test)) == 2  # "test" reads validation, once, dropping the remainder
    assert all(b[0].shape == (4, 16, 16, 3) for b in batches)
    assert all(np.all(np.abs(b[0]) <= 1.0) for b in batches)


@pytest.mark.parametrize(
    "name, size, num_classes",
    [("lsun/church_outdoor", 16, 1), ("cifar10", 32, 10), ("celeb_a", 24, 1)],
)
def test_other_tfds_datasets(name, size, num_classes, tmp_path):
    assert data.num_classes(name) == num_classes
    assert data.get_info(name).conditional == (num_classes > 1)
    with tfds.testing.mock_data(num_examples=8):
        images, labels = next(iter(data.load(name, image_size=size, batch_size=8, data_dir=str(tmp_path))))
    assert images.shape == (8, size, size, 3) and images.dtype == tf.float32
    assert np.all(np.abs(images.numpy()) <= 1.0)
    assert images.numpy().std() > 0.01  # not constant (the mock's noise mostly averages out)
    assert labels.dtype == tf.int32
    assert np.all((labels.numpy() >= 0) & (labels.numpy() < num_classes))
    if num_classes == 1:
        np.testing.assert_array_equal(labels, 0)


def test_missing_imagenet_archives_names_files_and_folder(tmp_path):
    with pytest.raises(data.DatasetError) as error:
        data.load("imagenet2012", data_dir=str(tmp_path), batch_size=4)
    message = str(error.value)
    manual = str(tmp_path / "downloads" / "manual")
    assert "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar are missing" in message
    assert f"put them in {manual}/" in message
    assert "\n" not in message
    (tmp_path / "downloads" / "manual").mkdir(parents=True)
    (tmp_path / "downloads" / "manual" / MANUAL[0]).write_bytes(b"")
    with pytest.raises(data.DatasetError, match=r"ILSVRC2012_img_val.tar is missing"):
        data.load("imagenet2012", data_dir=str(tmp_path), batch_size=4)


def test_default_manual_folder_is_under_home_tensorflow_datasets(monkeypatch, tmp_path):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(data.DatasetError, match="tensorflow_datasets/downloads/manual/"):
        data.load("imagenet2012", batch_size=4)


def test_bad_lsun_category_and_split():
    with pytest.raises(data.DatasetError, match="Unknown LSUN category 'churches'.*church_outdoor"):
        data.load("lsun/churches", batch_size=4)
    with pytest.raises(data.DatasetError, match="cifar10 has no split 'validation'.*'train', 'test'"):
        data.load("cifar10", "validation", batch_size=4)


def test_label_names_come_from_tfds_and_numbers_are_not_names(tmp_path):
    names = tfds_source.label_names("imagenet2012", data_dir=str(tmp_path))  # WordNet ids shipped with TFDS
    assert len(names) == 1000 and names[0] == "n01440764"
    assert data.get_info("imagenet2012", data_dir=str(tmp_path)).class_names == names
    # CIFAR-10's names arrive when it is prepared; before that TFDS knows only "0" ... "9", which are no names.
    assert tfds_source.label_names("cifar10", data_dir=str(tmp_path)) is None
    assert tfds_source.label_names("celeb_a") is None and tfds_source.label_names("lsun/bedroom") is None
