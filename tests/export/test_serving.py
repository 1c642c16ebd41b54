"""sagan_tf.serving: the SavedModel's signatures, read back, against the in-memory generator and NumPy."""

import io
import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf.sampling import latents
from sagan_tf.serving import signatures as serving, memory as serving_memory
from sagan_tf.errors import ConfigError
from tests.tiny import CLASS_NAMES, PYTHON, random_generator, subprocess_environment, tiny_model


def _generator_images(generator, z, labels):
    return keras.ops.convert_to_numpy(generator(z, labels, training=False))


def _labels(config, batch):
    return np.arange(batch, dtype=np.int32) % max(config.num_classes, 1)


def _generate_args(config, batch, seed=0, truncation=1.0):
    args = {"labels": tf.constant(_labels(config, batch))} if config.conditional else {
        "batch_size": tf.constant(batch, tf.int32)}
    return {**args, "seed": tf.constant(seed, tf.int64), "truncation": tf.constant(truncation, tf.float32)}


def test_signatures_read_back_from_the_saved_model(exported):
    _, config, _, loaded = exported
    by_name = {"generate_by_name"} if config.conditional else set()
    assert set(loaded.signatures) == {"serving_default", "generate", "class_names", "limits"} | by_name
    serve = loaded.signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    expected = {"z": (tf.float32, [None, config.latent_dim])}
    if config.conditional:
        expected["labels"] = (tf.int32, [None])
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in inputs.items()} == expected
    outputs = serve.structured_outputs
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in outputs.items()} == {
        "images": (tf.float32, [None, 32, 32, 3])}

    generate = loaded.signatures["generate"]
    inputs = generate.structured_input_signature[1]
    expected = {"seed": (tf.int64, []), "truncation": (tf.float32, [])}
    expected.update({"labels": (tf.int32, [None])} if config.conditional else {"batch_size": (tf.int32, [])})
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in inputs.items()} == expected
    outputs = generate.structured_outputs
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in outputs.items()} == {
        "images": (tf.uint8, [None, 32, 32, 3]), "png_bytes": (tf.string, [None])}


@pytest.mark.parametrize("batch", [1, 5])
def test_serving_default_equals_the_in_memory_generator(exported, batch):
    generator, config, _, loaded = exported
    z = np.random.default_rng(batch).standard_normal((batch, config.latent_dim)).astype(np.float32)
    labels = _labels(config, batch)
    args = {"z": tf.constant(z)}
    if config.conditional:
        args["labels"] = tf.constant(labels)
    images = loaded.signatures["serving_default"](**args)["images"].numpy()
    expected = _generator_images(generator, z, labels)
    assert images.shape == (batch, 32, 32, 3)
    np.testing.assert_allclose(images, expected, atol=1e-5, rtol=0)
    assert images.std() > 0.01  # not a saturated or constant output that would match anything
    if config.conditional and batch > 1:
        # The labels matter: shifting them changes the images.
        shifted = loaded.signatures["serving_default"](z=tf.constant(z), labels=tf.constant((labels + 1) % 4))
        assert np.abs(shifted["images"].numpy() - images).max() > 1e-3


def test_serving_changes_no_variable(exported):
    # Inference mode: no spectral-norm u update, no batch-norm statistics update, in the export or the original.
    generator, config, _, loaded = exported
    before = [v.numpy().copy() for v in loaded.generator_variables]
    z = tf.random.normal((3, config.latent_dim))
    args = {"z": z, "labels": tf.constant([0, 1, 2])} if config.conditional else {"z": z}
    loaded.signatures["serving_default"](**args)
    loaded.signatures["generate"](**_generate_args(config, 3))
    for variable, old, original in zip(loaded.generator_variables, before, generator.variables):
        np.testing.assert_array_equal(variable.numpy(), old)
        np.testing.assert_array_equal(variable.numpy(), keras.ops.convert_to_numpy(original))


def test_generate_is_the_generator_on_truncated_latents(exported):
    generator, config, _, loaded = exported
    out = loaded.signatures["generate"](**_generate_args(config, 5, seed=11, truncation=0.7))
    z = latents.truncated_latents(5, config.latent_dim, 11, 0.7).numpy()
    assert np.abs(z).max() <= 0.7
    expected = _generator_images(generator, z, _labels(config, 5))
    pixels = np.clip(np.round((expected + 1.0) * 127.5), 0, 255)
    images = out["images"].numpy()
    assert images.dtype == np.uint8 and images.shape == (5, 32, 32, 3)
    # Exact but for values within float noise of a rounding boundary.
    assert np.abs(images.astype(int) - pixels).max() <= 1
    assert np.mean(images.astype(int) != pixels) < 1e-3


@pytest.mark.parametrize("truncation", [0.1, 0.7, 2.0])
@pytest.mark.parametrize("seed", [11, 2**40 + 7])
def test_generate_equals_serving_default_on_the_same_latents(exported, seed, truncation):
    # A seed names an image: generate(seed, truncation) is serving_default on latents.truncated_latents(seed,
    # truncation), bit for bit, so both signatures give the same images for the same request.
    _, config, _, loaded = exported
    z = latents.truncated_latents(5, config.latent_dim, seed, truncation)
    serve_args = {"z": z, "labels": tf.constant(_labels(config, 5))} if config.conditional else {"z": z}
    served = serving.to_uint8_tensor(loaded.signatures["serving_default"](**serve_args)["images"]).numpy()
    generated = loaded.signatures["generate"](**_generate_args(config, 5, seed, truncation))["images"].numpy()
    assert generated.dtype == served.dtype == np.uint8
    np.testing.assert_array_equal(generated, served)
    assert served.std() > 10  # varied images, not a saturated output that any latents would give


def test_generate_seed_determines_the_images(exported):
    _, config, _, loaded = exported
    generate = loaded.signatures["generate"]
    first = generate(**_generate_args(config, 5, seed=3))["images"].numpy()
    again = generate(**_generate_args(config, 5, seed=3))["images"].numpy()
    other = generate(**_generate_args(config, 5, seed=4))["images"].numpy()
    np.testing.assert_array_equal(first, again)
    assert np.mean(first != other) > 0.1
    single = generate(**_generate_args(config, 1, seed=3))["images"].numpy()
    assert single.shape == (1, 32, 32, 3)


def test_png_outputs_decode_to_the_images(exported):
    _, config, _, loaded = exported
    out = loaded.signatures["generate"](**_generate_args(config, 5, seed=2))
    pngs, images = out["png_bytes"].numpy(), out["images"].numpy()
    assert pngs.shape == (5,)
    for png, image in zip(pngs, images):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), image)


def test_invalid_requests_fail_with_invalid_argument(exported):
    _, config, _, loaded = exported
    generate = loaded.signatures["generate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncation must be > 0"):
        generate(**_generate_args(config, 2, truncation=0.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncation must be > 0"):
        generate(**_generate_args(config, 2, truncation=float("nan")))
    if config.conditional:
        for bad in ([0, 4], [-1, 0]):
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be class ids in \[0, 4\)"):
                generate(labels=tf.constant(bad), seed=tf.constant(0, tf.int64), truncation=tf.constant(1.0))
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be class ids in \[0, 4\)"):
                loaded.signatures["serving_default"](z=tf.zeros((2, config.latent_dim)), labels=tf.constant(bad))
    else:
        cap = int(loaded.signatures["limits"]()["max_batch_size"])
        for bad, message in ((0, "batch_size must be >= 1"), (-3, "batch_size must be >= 1"),
                             (cap + 1, f"it asks for {cap + 1} and the max_batch_size of this export is {cap}")):
            with pytest.raises(tf.errors.InvalidArgumentError, match=message):
                generate(batch_size=tf.constant(bad), seed=tf.constant(0, tf.int64), truncation=tf.constant(1.0))


def test_export_info_asset(exported):
    _, config, path, _ = exported
    with open(os.path.join(path, "assets", serving.EXPORT_INFO_ASSET)) as f:
        info = json.load(f)
    assert info["config"] == json.loads(json.dumps(config.to_dict()))
    # No cap given: the most images whose expected memory fits the default budget.
    expected = serving_memory.choose_max_batch_size(config)
    assert (info["version"], info["note"], info["max_batch_size"]) == (1, "test", expected["max_batch_size"])
    assert info["memory"]["memory_budget_mib"] == serving_memory.DEFAULT_MEMORY_BUDGET_MIB == 2048


def test_to_uint8_matches_numpy():
    x = np.array([-1.5, -1.0, -0.999, 0.0, 0.5, 0.99, 1.0, 2.0], np.float32)
    expected = np.clip(np.round((x.astype(np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(serving.to_uint8_tensor(tf.constant(x)).numpy(), expected)


def test_export_module_rejects_bad_max_batch_size(exported):
    generator, config, _, _ = exported
    with pytest.raises(ValueError, match="Received: max_batch_size=0"):
        serving.GeneratorServingModule(generator, config, max_batch_size=0)


_LOAD_WITHOUT_SAGAN_TF = r"""
import json, sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
z = np.load(sys.argv[2])
args = {"z": tf.constant(z)}
if "labels" in m.signatures["serving_default"].structured_input_signature[1]:
    args["labels"] = tf.constant(np.arange(len(z), dtype=np.int32) % 4)
images = m.signatures["serving_default"](**args)["images"].numpy()
np.save(sys.argv[3], images)
print(json.dumps({"sagan_tf_imported": any(n.split(".")[0] == "sagan_tf" for n in sys.modules)}))
"""


def test_loads_in_a_process_that_never_imported_sagan_tf(exported, tmp_path):
    generator, config, path, _ = exported
    z = np.random.default_rng(5).standard_normal((3, config.latent_dim)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    # Run from tmp_path with the default PYTHONPATH: sagan_tf is not even importable by path from there.
    env = subprocess_environment()
    env.pop("PYTHONPATH")
    result = subprocess.run([PYTHON, "-c", _LOAD_WITHOUT_SAGAN_TF, path, str(tmp_path / "z.npy"),
                             str(tmp_path / "out.npy")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"sagan_tf_imported": False}
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), _generator_images(generator, z, _labels(config, 3)),
                               atol=1e-5, rtol=0)


def test_saved_model_cli_shows_the_signatures(exported):
    _, config, path, _ = exported
    if not config.conditional:
        pytest.skip("one saved_model_cli run (the conditional export) is enough")
    cli = os.path.join(os.path.dirname(PYTHON), "saved_model_cli")
    result = subprocess.run([cli, "show", "--all", "--dir", path], env=subprocess_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    sections = {name: text.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
                for name in ("serving_default", "generate")}
    serve = sections["serving_default"]
    assert "inputs['z'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 8)" in serve
    assert "inputs['labels'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1)" in serve
    assert "outputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 32, 32, 3)" in serve
    generate = sections["generate"]
    assert "inputs['seed'] tensor_info:\n        dtype: DT_INT64\n        shape: ()" in generate
    assert "inputs['truncation'] tensor_info:\n        dtype: DT_FLOAT\n        shape: ()" in generate
    assert "outputs['images'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, 32, 32, 3)" in generate
    assert "outputs['png_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in generate
    assert "Method name is: tensorflow/serving/predict" in generate


def test_class_names_travel_with_the_export(exported):
    _, config, path, loaded = exported
    names = [name.decode() for name in loaded.signatures["class_names"]()["class_names"].numpy()]
    expected = list(CLASS_NAMES) if config.conditional else []
    assert names == expected
    with open(os.path.join(path, "assets", serving.CLASS_NAMES_ASSET), encoding="utf-8") as f:
        assert f.read().splitlines() == expected
    with open(os.path.join(path, "assets", serving.EXPORT_INFO_ASSET)) as f:
        assert json.load(f)["class_names"] == expected


def test_generate_by_name_draws_the_images_of_generate(exported):
    _, config, _, loaded = exported
    if not config.conditional:
        pytest.skip("unconditional exports have no generate_by_name signature")
    by_name = loaded.signatures["generate_by_name"](classes=tf.constant(["stripes", "bar", "stripes"]),
                                                     seed=tf.constant(5, tf.int64), truncation=tf.constant(0.8))
    by_label = loaded.signatures["generate"](labels=tf.constant([3, 0, 3]), seed=tf.constant(5, tf.int64),
                                             truncation=tf.constant(0.8))
    np.testing.assert_array_equal(by_name["labels"].numpy(), [3, 0, 3])
    np.testing.assert_array_equal(by_name["images"].numpy(), by_label["images"].numpy())
    assert list(by_name["png_bytes"].numpy()) == list(by_label["png_bytes"].numpy())


def test_an_unknown_class_name_is_refused_naming_it_and_the_closest_names(exported):
    _, config, _, loaded = exported
    if not config.conditional:
        pytest.skip("unconditional exports have no generate_by_name signature")
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["generate_by_name"](classes=tf.constant(["ring", "strips"]), seed=tf.constant(1, tf.int64),
                                              truncation=tf.constant(1.0))
    message = error.value.message
    assert "[Unknown class name:] [strips] [closest valid names:] [stripes ring bar]" in message
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[Unknown class name:\] \[\]"):
        loaded.signatures["generate_by_name"](classes=tf.constant([""]), seed=tf.constant(1, tf.int64),
                                              truncation=tf.constant(1.0))


def test_class_names_must_be_one_distinct_name_per_class(tmp_path):
    config = tiny_model(32, num_classes=2)
    generator = random_generator(config)
    with pytest.raises(ConfigError, match="Two classes share a name"):
        serving.export_generator(generator, config, str(tmp_path), 1, class_names=["cat", "cat"])
    with pytest.raises(ConfigError, match="one class name per class"):
        serving.export_generator(generator, config, str(tmp_path), 1, class_names=["cat"])
    assert not os.listdir(tmp_path)  # nothing half-written
