"""Shared checks in the style of keras-hub's test base: config round trip and `.keras` save/load."""

import os

import keras
import numpy as np


def assert_config_round_trip(obj):
    """`from_config(get_config())` rebuilds an object with the same config, also via Keras serialization.

    Args:
      obj: a Keras layer or model.

    Returns:
      The object rebuilt by `keras.saving.deserialize_keras_object`.
    """
    config = obj.get_config()
    rebuilt = obj.__class__.from_config(config)
    assert rebuilt.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is type(obj)
    assert deserialized.get_config() == config
    return deserialized


def assert_keras_file_round_trip(model, inputs, tmp_path, atol=1e-6):
    """Saving `model` to a `.keras` file and loading it back gives identical inference outputs.

    Args:
      model: a built `keras.Model` (functional or subclassed).
      inputs: a tuple of positional inputs for `model(*inputs, training=False)`.
      tmp_path: directory to write the file into.
      atol: absolute tolerance of the comparison.

    Returns:
      The loaded model.
    """
    expected = keras.ops.convert_to_numpy(model(*inputs, training=False))
    os.makedirs(str(tmp_path), exist_ok=True)
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    actual = keras.ops.convert_to_numpy(loaded(*inputs, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)
    return loaded
