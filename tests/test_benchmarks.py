"""Numbers of the train-step FLOP counter (benchmarks/flops.py) against hand counts and TensorFlow's graph count."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import flops
from sagan_tf.config import AttentionConfig, ExperimentConfig, ModelConfig, TrainingConfig
from sagan_tf.models import Discriminator, Generator, build_sagan
from sagan_tf.config.presets import get_preset


def tiny_residual(d_steps=1):
    return ExperimentConfig(
        ModelConfig(name="tiny_residual", image_size=16, num_classes=3, latent_dim=8, g_channels=(16, 16, 8),
                    g_attention_resolutions=(8,), d_channels=(8, 16, 16), d_downsample=(True, True, False),
                    d_attention_resolutions=(8,)),
        TrainingConfig(d_steps=d_steps))


def tiny_dcgan():
    return ExperimentConfig(
        ModelConfig(name="tiny_dcgan", image_size=16, num_classes=0, latent_dim=8, block_type="dcgan",
                    g_channels=(16, 8), g_attention_resolutions=(8,), d_channels=(8, 16), d_downsample=(True, True),
                    d_attention_resolutions=(8, 4),
                    attention=AttentionConfig(value_ratio=1, pool_keys=False, use_spectral_norm=False, use_bias=True,
                                              output_projection=False),
                    output_spectral_norm=False))


def build(cfg):
    return build_sagan(cfg, seed=0)


def test_dcgan_forward_matches_hand_count():
    model = build(tiny_dcgan())
    counted = flops.count_train_step_flops(model.generator, model.discriminator, batch_size=4)
    # Generator, per example (2 FLOPs per multiply-add):
    g = (2 * 8 * 4 * 4 * 16            # z (1x1x8) -> 4x4x16 transposed conv: each input value hits 16 taps x 16
         + 2 * (4 * 4 * 16) * 16 * 8   # 4x4x16 -> 8x8x8, 4x4 kernel, stride 2
         + 2 * 2 * 64 * 8 * 1          # attention at 8x8, C=8: theta and phi to C/8 = 1 channel
         + 2 * 64 * 8 * 8              # g to C = 8 channels
         + 2 * 64 * 64 * (1 + 8)       # s = f g^T over 64 keys, o = beta h
         + 2 * (8 * 8 * 8) * 16 * 3)   # 8x8x8 -> 16x16x3 output transposed conv
    # Discriminator, per example:
    d = (2 * (8 * 8 * 8) * 16 * 3      # 16x16x3 -> 8x8x8, 4x4 kernel, stride 2
         + 2 * 2 * 64 * 8 * 1 + 2 * 64 * 8 * 8 + 2 * 64 * 64 * (1 + 8)   # attention at 8x8, C=8
         + 2 * (4 * 4 * 16) * 16 * 8   # 8x8x8 -> 4x4x16
         + 2 * 2 * 16 * 16 * 2 + 2 * 16 * 16 * 16 + 2 * 16 * 16 * (2 + 16)   # attention at 4x4, C=16
         + 2 * 16 * 16)                # final 4x4 'valid' conv to one logit
    assert counted["g_forward_per_example"] == g
    assert counted["d_forward_per_example"] == d
    assert counted["spectral_norm"] > 0


@pytest.mark.parametrize("make_config", [tiny_residual, tiny_dcgan, lambda: tiny_residual(d_steps=2)],
                         ids=["residual", "dcgan", "residual_d_steps2"])
def test_analytic_count_matches_tensorflow_graph_count(make_config):
    experiment = make_config()
    batch, cfg, d_steps = 4, experiment.model, experiment.training.d_steps
    model = build(experiment)
    counted = flops.count_train_step_flops(model.generator, model.discriminator, batch, d_steps)
    images = tf.zeros((batch * d_steps, cfg.image_size, cfg.image_size, 3))
    labels = tf.zeros((batch * d_steps,), tf.int32) if cfg.num_classes else None
    graph = flops.trace_train_step(model, images, labels)
    graph_count = flops.count_graph_flops(graph)
    assert graph_count["unknown_shape_ops"] == 0
    assert graph_count["matmul"] == pytest.approx(counted["total"], rel=1e-4)  # exact in practice
    # The raw graph also holds gradient ops that never run (e.g. D's filter gradients in the G update).
    assert flops.raw_profile_flops(graph) > graph_count["matmul"] + graph_count["elementwise"]


def test_graph_count_with_a_d_step_more_grows_by_one_d_update():
    one, two = build(tiny_residual(1)), build(tiny_residual(2))
    c1 = flops.count_train_step_flops(one.generator, one.discriminator, 4, 1)
    c2 = flops.count_train_step_flops(two.generator, two.discriminator, 4, 2)
    assert c2["total"] == c1["total"] + c1["d_update"]


def test_dcgan64_batch64_matches_pytorch_reference_figure():
    # About 235 GFLOP per train step at batch 64 in heykeetae/Self-Attention-GAN (BUILD.md). PyTorch's G update also
    # computes D's weight gradients (D's parameters still require grad); our G update does not.
    cfg = get_preset("dcgan64").model
    generator, discriminator = Generator(cfg), Discriminator(cfg)
    counted = flops.count_train_step_flops(generator, discriminator, batch_size=64)
    attention_matmuls = 2 * 64 * 64 * (32 + 256) + 2 * 16 * 16 * (64 + 512)  # D attention at 8x8 and 4x4
    d_weight_grads = 64 * (counted["d_forward_per_example"] - attention_matmuls)
    assert counted["total"] == pytest.approx(220.27e9, rel=1e-3)
    assert counted["total"] + d_weight_grads == pytest.approx(235e9, rel=0.005)


def test_the_jax_path_counts_the_same_flops_and_times_a_step_without_tensorflow(jax_trained):
    config, _, results = jax_trained
    counted = flops.count_train_step_flops(Generator(config.model), Discriminator(config.model),
                                           config.training.batch_size, config.training.d_steps)
    assert results["flops"] == counted["total"]
    assert results["tensorflow_imported"] is False
    timing = results["timing"]
    assert timing["first_step_s"] > 0 and np.isfinite(timing["d_loss"]) and timing["allocator_resident_mib"] is None


def test_train_throughput_flags():
    from benchmarks import train_throughput

    args = train_throughput.parse_args(["--backend=jax", "--preset=imagenet128", "--batch_size=256",
                                        "--precision=mixed_bfloat16"])
    assert (args.presets, args.batch_sizes, args.precisions, args.xla) == ("imagenet128", "256", "mixed_bfloat16",
                                                                           "on")
    assert train_throughput.parse_args(["--backend=tensorflow"]).xla == "off,on"
    for bad in (["--backend=jax", "--xla=off,on"], ["--xla=maybe"], ["--backend=torch"], ["--steps=0"]):
        with pytest.raises(SystemExit):
            train_throughput.parse_args(bad)


def test_backend_throughput_compares_step_times():
    from benchmarks import backend_throughput

    record = dict(device="cpu", images_per_s=1.0, xla=False, fraction_of_bf16_ceiling=0.1)
    results = backend_throughput.compare(
        [{**record, "precision": "float32", "step_time_s": 3.0}, {"precision": "mixed_bfloat16", "error": ["boom"]}],
        [{**record, "precision": "float32", "step_time_s": 2.0}, {**record, "precision": "mixed_bfloat16",
                                                                   "step_time_s": 1.0}])
    assert results["float32"]["jax_speedup"] == 1.5 and results["float32"]["jax"]["step_time_s"] == 2.0
    assert results["mixed_bfloat16"]["tensorflow"] == {"error": ["boom"]}
    assert results["mixed_bfloat16"]["jax_speedup"] is None
