"""benchmarks/step_profile.py reads a profile as TensorFlow's CPU build writes it: oneDNN kernel names, executor
events spanning the ops they run."""

import os

from benchmarks import step_profile
from tensorflow.tsl.profiler.protobuf import xplane_pb2


def test_onednn_kernels_are_counted_as_the_op_they_implement():
    assert step_profile.base_type("_MklNativeFusedConv2D") == "_FusedConv2D"
    assert step_profile.base_type("_MklBatchMatMulV2") == "BatchMatMulV2"
    assert step_profile.base_type("_MklFusedMatMul") == "_FusedMatMul"
    assert step_profile.base_type("Cast") == "Cast"
    kinds = {op_type: step_profile.kind_of("generator/block0/conv", op_type)
             for op_type in ("_MklNativeFusedConv2D", "_MklNativeConv2DBackpropFilterWithBias",
                             "_MklNativeConv2DBackpropInput", "Conv2D", "_MklBatchMatMulV2", "_MklFusedMatMul",
                             "MatMul", "Cast", "AddV2")}
    assert kinds == {"_MklNativeFusedConv2D": "convolutions", "_MklNativeConv2DBackpropFilterWithBias": "convolutions",
                     "_MklNativeConv2DBackpropInput": "convolutions", "Conv2D": "convolutions",
                     "_MklBatchMatMulV2": "matmuls", "_MklFusedMatMul": "matmuls", "MatMul": "matmuls",
                     "Cast": "casts", "AddV2": "other"}
    assert step_profile.kind_of("discriminator/attention/Softmax", "_MklSoftmax") == "softmax"
    assert step_profile.kind_of("generator/block0/bn/moments/mean", "Mean") == "batch_norm"
    assert step_profile.kind_of("discriminator/sn_conv/l2_normalize", "Mul") == "spectral_norm"


def test_executor_events_are_not_counted_as_ops(tmp_path):
    space = xplane_pb2.XSpace()
    plane = space.planes.add()
    for metadata_id, name in enumerate(("ExecutorState::Process", "generator/conv:_MklNativeFusedConv2D",
                                        "generator/Cast:Cast", "FunctionRun", "Iterator::Prefetch"), start=1):
        plane.event_metadata[metadata_id].name = name
    line = plane.lines.add()
    for metadata_id, picoseconds in ((1, 1000), (2, 600), (3, 300), (2, 50), (4, 900), (5, 70)):
        line.events.add(metadata_id=metadata_id, duration_ps=picoseconds)
    run = tmp_path / "plugins" / "profile" / "run0"
    os.makedirs(run)
    (run / "host.xplane.pb").write_bytes(space.SerializeToString())
    assert step_profile.op_times(str(tmp_path)) == {("generator/conv", "_MklNativeFusedConv2D"): 650,
                                                    ("generator/Cast", "Cast"): 300}
