"""The export's limits: every signature serves max_batch_size images and refuses one more, before generating anything;
generate_by_name refuses a name longer than the longest class name, whatever its length."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.sampling import latents
from sagan_tf.serving import signatures as serving
from tests.export.conftest import CAP
from tests.tiny import CLASS_NAMES, random_generator, tiny_model

_SEED = {"seed": tf.constant(3, tf.int64), "truncation": tf.constant(0.9)}


def _requests(config, count):
    """{signature: its inputs for `count` images} for every image-making signature of the export."""
    labels = tf.constant(np.arange(count, dtype=np.int32) % max(config.num_classes, 1))
    z = latents.truncated_latents(count, config.latent_dim, 3, 0.9)
    if not config.conditional:
        return {"serving_default": {"z": z}, "generate": {"batch_size": tf.constant(count), **_SEED}}
    classes = tf.constant([CLASS_NAMES[label] for label in labels.numpy()])
    return {"serving_default": {"z": z, "labels": labels}, "generate": {"labels": labels, **_SEED},
            "generate_by_name": {"classes": classes, **_SEED}}


def test_every_signature_serves_the_cap_and_refuses_one_more(capped):
    config, _, loaded = capped
    signatures = set(_requests(config, CAP))
    assert signatures == ({"serving_default", "generate", "generate_by_name"} if config.conditional
                          else {"serving_default", "generate"})
    for name, inputs in _requests(config, CAP).items():
        assert loaded.signatures[name](**inputs)["images"].shape[0] == CAP, name
    for name, inputs in _requests(config, CAP + 1).items():
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            loaded.signatures[name](**inputs)
        assert (f"[Too many images in one request: it asks for {CAP + 1} and the max_batch_size of this export is "
                f"{CAP}. Ask for at most {CAP} images per request") in error.value.message, name


def test_serving_default_counts_the_longer_of_z_and_labels(capped):
    config, _, loaded = capped
    if not config.conditional:
        pytest.skip("only conditional exports take labels with z")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"it asks for {CAP + 3} and"):
        loaded.signatures["serving_default"](z=tf.zeros((1, config.latent_dim)), labels=tf.zeros([CAP + 3], tf.int32))


def test_the_cap_is_readable_by_a_client(capped):
    config, path, loaded = capped
    limits = loaded.signatures["limits"]
    assert limits.structured_input_signature == ((), {})
    # The longest class name in UTF-8 bytes ("stripes"), for the conditional export only.
    bound = {"max_class_name_length": 7} if config.conditional else {}
    assert {name: value.numpy() for name, value in limits().items()} == {"max_batch_size": CAP, **bound}
    assert {value.dtype for value in limits().values()} == {tf.int32}
    with open(os.path.join(path, "assets", serving.EXPORT_INFO_ASSET)) as f:
        info = json.load(f)
    assert info["max_batch_size"] == CAP and {key: info.get(key) for key in bound} == bound
    assert config.conditional or "max_class_name_length" not in info
    assert set(info["memory"]) == {"memory_budget_mib", "mib_per_image", "mib_per_image_source", "expected_peak_mib"}
    assert info["memory"]["expected_peak_mib"] == pytest.approx(CAP * info["memory"]["mib_per_image"], abs=0.1)


def test_a_seed_names_the_images_within_the_cap(capped):
    # At the cap, generate is serving_default on the latents the seed names, bit for bit, and each signature gives
    # the same images on every call.
    config, _, loaded = capped
    requests = _requests(config, CAP)
    generated = loaded.signatures["generate"](**requests["generate"])["images"].numpy()
    served = serving.to_uint8_tensor(
        loaded.signatures["serving_default"](**requests["serving_default"])["images"]).numpy()
    np.testing.assert_array_equal(generated, served)
    np.testing.assert_array_equal(loaded.signatures["generate"](**requests["generate"])["images"].numpy(), generated)
    assert served.std() > 10
    if config.conditional:
        by_name = loaded.signatures["generate_by_name"](**requests["generate_by_name"])["images"].numpy()
        np.testing.assert_array_equal(by_name, generated)


def test_a_name_longer_than_every_class_name_is_refused_naming_the_bound(capped):
    config, _, loaded = capped
    if not config.conditional:
        pytest.skip("unconditional exports take no class names")
    by_name = loaded.signatures["generate_by_name"]
    # An unknown name used to be copied once per class for the closest names: about 6 MB per class for this one.
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        by_name(classes=tf.constant(["ring", "x" * 10**5]), **_SEED)
    assert ("[Class name too long: the name at position 1 of the request has 100000 bytes, and the longest class "
            "name of this export has 7 (its max_class_name_length, which the limits signature reports)"
            in error.value.message)
    # The cap is checked first, and a name at the bound is looked up (and, unknown, answered with the closest).
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"it asks for {CAP + 1} and"):
        by_name(classes=tf.constant(["x" * 10**5] * (CAP + 1)), **_SEED)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[Unknown class name:\] \[strips!\] \[closest valid "
                                                             r"names:\] \[stripes"):
        by_name(classes=tf.constant(["strips!"]), **_SEED)


class _CountingGenerator:
    """Stands in for a Generator: counts the calls the graph executes (not the traces) and returns zeros."""

    def __init__(self, config):
        self.variables, self.calls, self._size = [], [], config.image_size

    def _count(self, z):
        self.calls.append(int(z.shape[0]))
        return z

    def __call__(self, z, labels, training=False):
        z = tf.py_function(self._count, [z], tf.float32)
        return tf.zeros([tf.shape(z)[0], self._size, self._size, 3]) + tf.reduce_sum(z) * 0


@pytest.mark.parametrize("num_classes", [4, 0])
def test_a_request_over_the_cap_is_refused_before_the_generator_runs(num_classes):
    config = tiny_model(32, num_classes=num_classes)
    generator = _CountingGenerator(config)
    class_names = CLASS_NAMES if config.conditional else None
    module = serving.GeneratorServingModule(generator, config, class_names=class_names, max_batch_size=CAP)
    over, at = _requests(config, CAP + 1), _requests(config, CAP)
    calls = {"serving_default": module.serve, "generate": module.generate, "generate_by_name": module.generate_by_name}
    for name, inputs in over.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"max_batch_size of this export is {CAP}"):
            calls[name](**inputs)
    assert generator.calls == []  # not one image generated for a refused request
    # Nor are latents drawn for a request far over the cap: batch_size=10**9 would take 64 GB of float64 draws.
    huge = {"labels": tf.zeros([10**6], tf.int32)} if config.conditional else {"batch_size": tf.constant(10**9)}
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"asks for {10**6 if config.conditional else 10**9} and"):
        module.generate(**huge, **_SEED)
    assert generator.calls == []
    for name, inputs in at.items():
        calls[name](**inputs)
    assert generator.calls == [CAP] * len(at)


def test_a_default_cap_comes_from_the_memory_budget(tmp_path):
    config = tiny_model(32, num_classes=0)
    keras.utils.set_random_seed(3)
    path, limits = serving.export_generator_with_limits(random_generator(config), config, str(tmp_path), 1,
                                                        memory_budget_mib=50)
    # By hand: feature maps 4x4x16, 8x8x16, 16x16x8, 32x32x8, the 32x32x3 output and the 256 x 64 attention map
    # (2x2-pooled keys) are 30,976 floats; synthetic32's 78,848 floats took 1.253 MiB per image, the largest ratio of
    # the presets (tests/serving/test_serving_memory.py).
    per_image = 1.253 * 30976 / 78848
    assert limits["mib_per_image"] == pytest.approx(per_image, abs=1e-3)
    assert limits["max_batch_size"] == int(50 / per_image) == 101 and limits["mib_per_image_source"] == "estimated"
    assert "max_class_name_length" not in limits  # unconditional: no class names
    assert tf.saved_model.load(path).signatures["limits"]()["max_batch_size"].numpy() == limits["max_batch_size"]
