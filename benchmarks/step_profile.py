"""Where the time of one training step goes: the TensorFlow profiler's op times, grouped by kind of work.

Usage:
  python benchmarks/step_profile.py --preset=dcgan64 --batch=64 --precision=mixed_bfloat16 --steps=3

Builds the preset, runs --warmup steps of its Keras train function, records --steps more with
`tf.profiler.experimental` and reads the trace (the XSpace protocol buffer the profiler writes, with the
`xplane_pb2` module TensorFlow ships) back: every TensorFlow op the host executed, with its name scope and type,
summed per kind:

  convolutions   Conv2D, its backprops, transposed convolutions (Conv2DBackpropInput), fused convolutions
  matmuls        MatMul, BatchMatMul, fused matmuls, Einsum (attention, dense layers, spectral norm's W u)
  casts          Cast (mixed precision: bfloat16 <-> float32)
  batch_norm     every other op inside a batch-norm layer (moments, normalization) and its gradient
  softmax        every other op inside an attention layer (softmax, pooling, reshapes) and its gradient
  spectral_norm  every other op inside a spectral-norm wrapper (power iteration, sigma, W / sigma)
  other          the rest (activations, losses, optimizer updates, EMA, noise)

Prints one JSON line: the median step time, each kind's share of the summed op time and its milliseconds per step,
the ten most expensive op types, and the 2048^2 matmul ceilings of this machine in both precisions (what
`benchmarks/train_throughput.py` measures) with the step's achieved fraction of them. Op times of parallel
threads add up, so shares are of the summed op time, not of the wall time.
"""

import argparse
import collections
import glob
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks import flops as flops_lib  # noqa: E402
from benchmarks.train_throughput import device_name, matmul_ceiling  # noqa: E402
from sagan_tf.config import presets  # noqa: E402
from sagan_tf.models import build_sagan  # noqa: E402

KINDS = ("convolutions", "matmuls", "casts", "batch_norm", "softmax", "spectral_norm", "other")
_CONV_TYPES = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv2DBackpropFilterWithBias",
               "_FusedConv2D", "Conv3D", "DepthwiseConv2dNative")
_MATMUL_TYPES = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "_FusedMatMul", "Einsum")


def base_type(op_type):
    """The op type without the prefix of its oneDNN kernel: `_MklNativeFusedConv2D` -> `_FusedConv2D`,
    `_MklBatchMatMulV2` -> `BatchMatMulV2` (TensorFlow's CPU build rewrites ops to oneDNN kernels)."""
    for prefix in ("_MklNative", "_Mkl"):
        if op_type.startswith(prefix):
            rest = op_type[len(prefix):]
            return "_" + rest if rest.startswith("Fused") else rest
    return op_type


def kind_of(name, op_type):
    """The kind of work of a TensorFlow op from its type and name scope (see the module docstring)."""
    op_type = base_type(op_type)
    if op_type in _CONV_TYPES:
        return "convolutions"
    if op_type in _MATMUL_TYPES:
        return "matmuls"
    if op_type == "Cast":
        return "casts"
    scopes = name.lower().split("/")
    if any(scope.startswith(("bn", "output_bn")) or scope.endswith("_bn") for scope in scopes):
        return "batch_norm"
    if any(scope.startswith("attention") for scope in scopes):
        return "softmax"
    if any(scope.startswith("sn_") for scope in scopes):
        return "spectral_norm"
    return "other"


def op_times(logdir):
    """{(op name, op type): total picoseconds} of the TensorFlow ops in the profile written under `logdir`."""
    totals = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
        for plane in space.planes:
            metadata = plane.event_metadata
            for line in plane.lines:
                for event in line.events:
                    name = metadata[event.metadata_id].name
                    # Executor and session events ("ExecutorState::Process", "...::Run") span the ops they run.
                    if ":" not in name or "::" in name or name.startswith(("Iterator", "$")):
                        continue
                    op_name, op_type = name.rsplit(":", 1)
                    if op_type and op_type[0].isupper() or op_type.startswith("_"):
                        totals[(op_name, op_type)] += event.duration_ps
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan64")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--xla", action="store_true", help="XLA-compile the step (the profile then shows clusters)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    keras.mixed_precision.set_global_policy(args.precision)
    experiment = presets.get_preset(args.preset).replace(batch_size=args.batch)
    model = build_sagan(experiment, seed=0, jit_compile=args.xla)
    cfg, d_steps = experiment.model, experiment.training.d_steps
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.batch * d_steps, cfg.image_size, cfg.image_size, 3)).astype("float32")
    labels = rng.integers(0, max(cfg.num_classes, 1), (args.batch * d_steps,)).astype("int32")
    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    model.make_train_function()

    def step():
        return float(keras.ops.convert_to_numpy(model.train_function(iterator)["d_loss"]))

    for _ in range(args.warmup):
        step()
    times = []
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    by_kind, by_type = collections.Counter(), collections.Counter()
    for (name, op_type), picoseconds in totals.items():
        by_kind[kind_of(name, op_type)] += picoseconds
        by_type[op_type] += picoseconds
    total = sum(by_kind.values()) or 1
    median = statistics.median(times)
    flops = flops_lib.count_train_step_flops(model.generator, model.discriminator, args.batch, d_steps)["total"]
    ceilings = {"float32": matmul_ceiling(tf.float32), "bfloat16": matmul_ceiling(tf.bfloat16)}
    print(json.dumps({
        "benchmark": "step_profile", "device": device_name(), "preset": args.preset, "batch": args.batch,
        "precision": args.precision, "xla": args.xla, "steps_profiled": args.steps,
        "step_time_s": round(median, 4), "images_per_s": round(args.batch * d_steps / median, 1),
        "share_of_op_time": {kind: round(by_kind[kind] / total, 4) for kind in KINDS},
        "ms_per_step": {kind: round(by_kind[kind] / 1e9 / args.steps, 1) for kind in KINDS},
        "top_op_types_ms_per_step": {t: round(ps / 1e9 / args.steps, 1) for t, ps in by_type.most_common(10)},
        "matmul_ceiling_f32_flops_per_s": round(ceilings["float32"]),
        "matmul_ceiling_bf16_flops_per_s": round(ceilings["bfloat16"]),
        "fraction_of_f32_ceiling": round(flops / median / ceilings["float32"], 4),
        "fraction_of_bf16_ceiling": round(flops / median / ceilings["bfloat16"], 4),
    }), flush=True)


if __name__ == "__main__":
    main()
