"""sagan_tf.sampling.summaries: scalars and images that TensorBoard's plugins recognise, written with TensorFlow only.
"""

import glob
import io

import numpy as np
import tensorflow as tf
from PIL import Image

from sagan_tf.sampling import images, summaries


def events(directory):
    """[(tag, step, plugin name, value)] of every summary in the directory's event files."""
    found = []
    for path in glob.glob(f"{directory}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.append((value.tag, event.step, value.metadata.plugin_data.plugin_name,
                              tf.make_ndarray(value.tensor)))
    return found


def test_scalars_and_images(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    picture = np.random.default_rng(0).integers(0, 255, (4, 6, 3)).astype("uint8")
    with writer.as_default():
        summaries.write_scalar("loss", 1.5, step=3)
        summaries.write_scalars({"fid": 12.5, "kid": None, "is": 2.0}, step=4, prefix="eval/")
        summaries.write_image("samples", images.encode_png(picture), 6, 4, step=5)
    writer.close()
    found = {(tag, step): (plugin, value) for tag, step, plugin, value in events(tmp_path)}
    assert set(found) == {("loss", 3), ("eval/fid", 4), ("eval/is", 4), ("samples", 5)}  # None is skipped
    assert found[("loss", 3)][0] == "scalars" and float(found[("loss", 3)][1]) == 1.5
    assert float(found[("eval/fid", 4)][1]) == 12.5
    plugin, value = found[("samples", 5)]
    assert plugin == "images" and list(value[:2]) == [b"6", b"4"]
    np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(value[2]))), picture)
