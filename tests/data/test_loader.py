"""`load` across sources: sharding with an InputContext, distribution, info and every error message."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import data
from sagan_tf.data import synthetic


def _context(pipeline_id, pipelines=2, replicas=2):
    return tf.distribute.InputContext(
        num_input_pipelines=pipelines, input_pipeline_id=pipeline_id, num_replicas_in_sync=replicas
    )


def _keys(images):
    return {image.tobytes() for image in images}


def test_synthetic_shards_are_disjoint_per_replica_batches():
    shards = []
    for i in range(2):
        dataset = data.load("synthetic", "test", image_size=16, batch_size=128, input_context=_context(i))
        assert dataset.element_spec[0].shape == (64, 16, 16, 3)  # global 128 over 2 replicas
        shards.append(np.concatenate([b[0] for b in dataset.as_numpy_iterator()]))
    assert len(shards[0]) == len(shards[1]) == synthetic.TEST_SIZE // 2
    assert not _keys(shards[0]) & _keys(shards[1])
    # Together they are exactly the unsharded test set.
    whole = np.concatenate([b[0] for b in data.load("synthetic", "test", image_size=16, batch_size=512)])
    assert _keys(shards[0]) | _keys(shards[1]) == _keys(whole)


def test_folder_shards_are_disjoint(tmp_path):
    for i in range(6):
        Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    values = []
    for i in range(2):
        dataset = data.load(
            f"folder:{tmp_path}", "test", image_size=4, batch_size=2, input_context=_context(i)
        )
        assert dataset.element_spec[0].shape == (1, 4, 4, 3)
        values.append({round((b[0][0, 0, 0, 0] + 1) * 127.5) for b in dataset.as_numpy_iterator()})
    assert len(values[0]) == len(values[1]) == 3
    assert not values[0] & values[1] and values[0] | values[1] == {0, 40, 80, 120, 160, 200}


def test_distribute_datasets_from_function(mirrored_strategy):
    dataset = mirrored_strategy.distribute_datasets_from_function(
        lambda ctx: data.load("synthetic", image_size=16, batch_size=8, input_context=ctx)
    )
    images, labels = next(iter(dataset))
    per_replica = mirrored_strategy.experimental_local_results(images)
    assert [x.shape for x in per_replica] == [(4, 16, 16, 3)] * 2
    assert not np.array_equal(per_replica[0].numpy(), per_replica[1].numpy())
    assert all(x.dtype == tf.int32 for x in mirrored_strategy.experimental_local_results(labels))


def test_info():
    assert data.num_classes("imagenet2012") == 1000
    info = data.get_info("imagenet2012")
    assert info.conditional and info.default_image_size == 128 and "validation" in info.splits
    assert data.get_info("celeb_a").conditional is False
    assert data.num_classes("synthetic") == 4


def _message(**kwargs):
    kwargs.setdefault("name", "synthetic")
    with pytest.raises(data.DatasetError) as error:
        data.load(**kwargs)
    message = str(error.value)
    assert "\n" not in message  # one paragraph
    assert isinstance(error.value, ValueError)
    return message


def test_unknown_name_lists_known_names():
    message = _message(name="imagenet")
    assert "Unknown dataset 'imagenet'" in message
    for known in data.KNOWN_NAMES:
        assert known in message
    assert "Unknown dataset 42" in _message(name=42)


@pytest.mark.parametrize("image_size", [0, -4, 30, 2048, 32.0, True, "32"])
def test_bad_image_size(image_size):
    message = _message(name="cifar10", image_size=image_size)
    assert "image_size must be a multiple of 4 between 4 and 1024" in message
    assert f"Received: image_size={image_size!r}" in message


def test_synthetic_image_size_range():
    assert "between 16 and 256" in _message(image_size=12)
    assert "between 16 and 256" in _message(image_size=260)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None])
def test_bad_batch_size(batch_size):
    message = _message(batch_size=batch_size)
    assert "batch_size must be a positive integer" in message and "Received: batch_size=" in message


def test_batch_not_divisible_by_replicas():
    message = _message(batch_size=5, input_context=_context(0))
    assert "cannot be split evenly over 2 replicas" in message and "multiple of 2" in message


def test_other_bad_arguments():
    assert "synthetic has no split 'validation'; use one of 'train', 'test'" in _message(split="validation")
    assert "seed must be None" in _message(seed=-1)
    assert "input_context must be the tf.distribute.InputContext" in _message(input_context=object())
    assert "shuffle must be True, False or None" in _message(shuffle="yes")
    assert "shuffle_buffer_size must be None" in _message(shuffle_buffer_size=0)
    assert "position must be the number of examples" in _message(position=-1)
    assert "cannot start at an example position" in _message(name="cifar10", position=8)


def test_folder_path_errors(tmp_path):
    assert "does not exist" in _message(name=f"folder:{tmp_path / 'missing'}")
    file = tmp_path / "file.png"
    file.write_bytes(b"x")
    assert "is a file, not a folder" in _message(name=f"folder:{file}")
    assert 'needs a path after "folder:"' in _message(name="folder:")


def test_every_source_runs_without_the_autotuning_thread(tmp_path):
    # With autotuning on, destroying the iterator at the end of `fit` can wait up to 60 s for tf.data's autotuning
    # thread (see preprocessing.without_autotune); every source keeps it off.
    import tensorflow_datasets as tfds

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    with tfds.testing.mock_data(num_examples=4):
        for name in ("synthetic", f"folder:{tmp_path}", "cifar10"):
            for split in ("train", "test"):
                dataset = data.load(name, split, image_size=16, batch_size=1)
                assert dataset.options().autotune.enabled is False, (name, split)
                assert next(iter(dataset))[0].shape == (1, 16, 16, 3)
    assert [data.get_info(name).positionable for name in ("synthetic", f"folder:{tmp_path}", "cifar10")] == [
        True, True, False]
