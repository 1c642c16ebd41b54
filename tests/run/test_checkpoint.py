"""sagan_tf.run.checkpoint: what a training checkpoint holds, and reading one network back out of it."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.run import checkpoint
from sagan_tf.errors import CheckpointError
from sagan_tf.models import build_sagan
from sagan_tf.run.restore import build_generator
from tests.tiny import tiny_config, tiny_model


def make_gan(cfg, seed=0):
    keras.utils.set_random_seed(seed)
    return build_sagan(cfg, seed=seed)


def all_variables(gan):
    return list(gan.variables) + list(gan.g_optimizer.variables) + list(gan.d_optimizer.variables)


def randomize(gan, seed):
    rng = np.random.default_rng(seed)
    for variable in all_variables(gan):
        variable.assign(rng.integers(0, 5, size=variable.shape).astype(variable.dtype))


def test_gan_checkpoint_restores_every_variable(tmp_path):
    cfg = tiny_config()
    source, target = make_gan(cfg), make_gan(cfg, seed=1)
    randomize(source, 0)
    randomize(target, 1)
    path = checkpoint.gan_checkpoint(source).save(str(tmp_path / "ckpt"))
    checkpoint.gan_checkpoint(target).restore(path).assert_existing_objects_matched()
    for a, b in zip(all_variables(source), all_variables(target)):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    assert checkpoint.saved_names(path) == {"generator", "discriminator", "ema_generator", "g_optimizer",
                                            "d_optimizer", "noise_seed", "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"}
    # Why the networks are checkpointed as variable dicts: TensorFlow's object graph misses Keras 3 layers kept in
    # lists, e.g. every variable of the EMA generator's residual blocks.
    naive = {name for name, _ in tf.train.list_variables(tf.train.Checkpoint(model=source).save(
        str(tmp_path / "naive")))}
    assert not any("ema_generator/block1" in name for name in naive)
    names = {name for name, _ in tf.train.list_variables(path)}
    assert any(name.startswith("ema_generator/block1") for name in names)


def test_network_variables_are_keyed_below_the_network_name():
    generator = build_generator(tiny_model())
    variables = checkpoint.network_variables(generator)
    assert len(variables) == len(generator.variables)
    assert all(not key.startswith(generator.name + "/") for key in variables)
    assert "block1/bn1/gamma" in variables


def test_restore_network_reads_one_network_and_names_what_is_wrong(tmp_path):
    gan = make_gan(tiny_config())
    gan.g_optimizer.iterations.assign(7)
    randomize_ema = np.random.default_rng(2)
    for variable in gan.ema_generator.variables:
        variable.assign(randomize_ema.normal(size=variable.shape).astype(variable.dtype))
    path = checkpoint.gan_checkpoint(gan).save(str(tmp_path / "ckpt"))
    generator = build_generator(tiny_model())
    checkpoint.restore_network(generator, path, checkpoint.EMA_GENERATOR)
    for a, b in zip(generator.variables, gan.ema_generator.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    assert checkpoint.saved_step(path) == 7
    assert not checkpoint.uses_loss_scaling(path)

    other = build_generator(tiny_model(latent_dim=16))
    with pytest.raises(CheckpointError, match="does not fit this generator"):
        checkpoint.restore_network(other, path, checkpoint.GENERATOR)
    no_ema = checkpoint.gan_checkpoint(make_gan(tiny_config(ema_decay=None))).save(str(tmp_path / "no_ema"))
    with pytest.raises(CheckpointError, match="holds no ema_generator"):
        checkpoint.restore_network(generator, no_ema, checkpoint.EMA_GENERATOR)


def test_float16_loss_scaling_is_recognised(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")  # conftest puts float32 back
    path = checkpoint.gan_checkpoint(make_gan(tiny_config())).save(str(tmp_path / "ckpt"))
    assert checkpoint.uses_loss_scaling(path)


def test_duplicate_variable_paths_are_refused():
    # Two sublayers of one name would silently share a checkpoint key; the network is refused instead.
    variable = types.SimpleNamespace(path="twice/same/kernel")
    network = types.SimpleNamespace(name="twice", variables=[variable, variable])
    with pytest.raises(ValueError, match="twice has two variables with the path 'same/kernel'"):
        checkpoint.network_variables(network)
