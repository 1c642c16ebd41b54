"""TensorBoard summaries: scalars, text and images written into the default `tf.summary` writer.

The summaries are written with `tf.summary.write` plus the plugin metadata that TensorBoard's own
`tf.summary.scalar`/`image` attach: those two functions live in the `tensorboard` package, which TensorFlow no
longer installs, while the event files need nothing beyond TensorFlow.

    writer = tf.summary.create_file_writer(model_dir)
    with writer.as_default():
        summaries.write_scalars({"d_loss": 1.2, "g_loss": 0.4}, step=100)
        summaries.write_image("samples", png_bytes, width, height, step=100)
        summaries.write_text("eval/provenance", '{"classifier": ...}', step=100)
"""

import tensorflow as tf


def _plugin_metadata(plugin_name, data_class):
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name), data_class=data_class)
    return metadata.SerializeToString()


_SCALAR_METADATA = _plugin_metadata("scalars", 1)  # DATA_CLASS_SCALAR
_IMAGE_METADATA = _plugin_metadata("images", 3)  # DATA_CLASS_BLOB_SEQUENCE
_TEXT_METADATA = _plugin_metadata("text", 2)  # DATA_CLASS_TENSOR


def write_scalar(name, value, step):
    """A TensorBoard scalar `name` at `step` in the default summary writer."""
    return tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def write_scalars(values, step, prefix=""):
    """Writes each `{name: value}` (None values are skipped) as the scalar `prefix + name` at `step`."""
    for name, value in values.items():
        if value is not None:
            write_scalar(f"{prefix}{name}", value, step)


def write_text(name, text, step):
    """A TensorBoard text summary `name` (shown as Markdown by the text plugin) at `step`."""
    return tf.summary.write(name, tf.constant(text), step=step, metadata=_TEXT_METADATA)


def write_image(name, png, width, height, step):
    """A TensorBoard image (PNG bytes) in the default summary writer: the images plugin's [w, h, png] tensor."""
    tensor = tf.constant([str(width).encode(), str(height).encode(), png])
    return tf.summary.write(name, tensor, step=step, metadata=_IMAGE_METADATA)


__all__ = ["write_scalar", "write_scalars", "write_text", "write_image"]
