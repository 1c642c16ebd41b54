"""FLOPs of one SAGAN train step, counted two independent ways.

1. `count_train_step_flops` (analytic, reported by `train_throughput.py`): runs the generator and the discriminator
   once eagerly on a batch of one, records every Conv2D / Conv2DTranspose / Dense / Embedding / SelfAttention /
   SpectralNormalization / ConditionalBatchNorm (its one-hot matmuls) call with its real shapes, and composes what
   one `SAGAN.train_step` computes:

   - each discriminator update: G forward (fakes, outside the tape); D forward on the real and on the fake batch;
     D backward of both passes: weight gradients of every layer, activation gradients of every layer whose input
     depends on D's variables (not the first convolutions, whose input is the image batch);
   - the generator update: G forward; D forward; D backward for activations only (D's weight gradients are not
     requested, so TensorFlow prunes them); G backward: weight gradients, and activation gradients of every layer
     whose input depends on G's variables (not the first layer, whose input is z).

   A multiply-add is 2 FLOPs. A matmul-like op of forward cost F costs F for each gradient it must produce
   (input, weight; both operands of the two attention matmuls). Spectral normalization adds W u (2|W|) per call,
   the power iteration (4|W|) per training call, and the outer product of its backward (2|W|) per differentiated
   call. Element-wise work (bias, batch norm, activations, softmax, Adam, EMA) is not counted: it is memory-bound
   and a few percent of the FLOPs.

2. `count_graph_flops` (TensorFlow's own count): traces `train_step` into a graph and sums TensorFlow's registered
   "flops" statistics (the ones `tf.compat.v1.profiler` uses) over the ops that actually run: ancestors of the
   function's outputs and stateful ops. Gradient functions emit, for example, both Conv2DBackpropInput and
   Conv2DBackpropFilter even when only one is used; the unused one stays in the graph but is pruned at run time,
   so a raw profile of the whole graph over-counts (`raw_profile_flops` gives that number).
   Two of TensorFlow's registered formulas are wrong and are corrected (`_corrected_op_flops`): BatchMatMul
   ignores `adj_x` (attention backward), and the convolution backprops divide by the stride product, which
   over-counts 'valid' convolutions (16x for the DCGAN generator's 1x1 -> 4x4 first layer). The uncorrected sum
   is reported as `matmul_tf_registry`.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from sagan_tf.layers import ConditionalBatchNorm, SelfAttention, SpectralNormalization

MATMUL_OP_TYPES = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMul",
                   "BatchMatMulV2", "BatchMatMulV3", "DepthwiseConv2dNative")
_RECORDED = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense, keras.layers.Embedding,
             SelfAttention, SpectralNormalization, ConditionalBatchNorm)


@contextlib.contextmanager
def _record_calls(records):
    """Appends (layer, inputs, outputs, training) for every call of a `_RECORDED` layer made in the block."""
    originals = {cls: cls.__dict__.get("__call__") for cls in _RECORDED}

    def make_wrapper(cls):
        base_call = super(cls, cls).__call__ if originals[cls] is None else originals[cls]

        def __call__(self, *args, **kwargs):
            outputs = base_call(self, *args, **kwargs)
            records.append((self, args[0], outputs, bool(kwargs.get("training"))))
            return outputs
        return __call__

    try:
        for cls in _RECORDED:
            cls.__call__ = make_wrapper(cls)
        yield records
    finally:
        for cls, original in originals.items():
            if original is None:
                del cls.__call__
            else:
                cls.__call__ = original


def _op_flops(layer, inputs, outputs):
    """(forward FLOPs per example, number of weight operands) of one recorded call; None for bookkeeping calls."""
    if isinstance(layer, SpectralNormalization):
        return None
    if isinstance(layer, SelfAttention):
        _, height, width, _ = inputs.shape
        queries = height * width
        keys = queries // 4 if layer.pool_keys else queries
        # s = f g^T and o = beta h: both operands of both matmuls are activations.
        return 2 * queries * keys * (layer._key_channels + layer._value_channels), 0
    if isinstance(layer, keras.layers.Embedding):
        return 0, 0  # a gather
    if isinstance(layer, ConditionalBatchNorm):
        # gamma and beta rows: one-hot labels (1, classes) times the (classes, C) tables
        return 2 * 2 * layer.num_classes * int(inputs.shape[-1]), 1
    kernel = layer.kernel
    if isinstance(layer, keras.layers.Conv2D):
        # every output element is a dot product over kh * kw * C_in (zero padding included, as TF counts it)
        return 2 * int(np.prod(outputs.shape[1:])) * int(np.prod(kernel.shape[:3])), 1
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # every input element is scattered through kh * kw * C_out taps
        kh, kw, out_channels, _ = kernel.shape
        return 2 * int(np.prod(inputs.shape[1:])) * kh * kw * out_channels, 1
    if isinstance(layer, keras.layers.Dense):
        return 2 * int(np.prod(inputs.shape[1:])) * kernel.shape[-1], 1
    raise TypeError(f"unexpected layer {layer}")


def _network_profile(network, inputs, labels):
    """Per-example forward FLOPs of a network, split by what its backward must compute.

    Returns:
      dict with `forward` (per example), `weight_grad` (per example: F of ops with a weight),
      `act_grad_if_input_free` (per example: activation-gradient FLOPs when the network's input needs no gradient),
      `act_grad_all` (when the input needs a gradient too), `sn_weights` (sum of |W| over spectral-normalized
      calls, per call of the network), and `layers` (a list of (name, forward FLOPs) for reports).
    """
    network(inputs, labels, training=False)  # builds it (a symbolic trace) outside the recording
    records = []
    variables = [v.value for v in network.trainable_variables]  # the backend (tf.Variable) objects
    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        tape.watch(variables)
        with _record_calls(records):
            network(inputs, labels, training=False)
    profile = dict(forward=0, weight_grad=0, act_grad_if_input_free=0, act_grad_all=0, sn_weights=0, layers=[])
    for layer, layer_inputs, outputs, _ in records:
        if isinstance(layer, SpectralNormalization):
            profile["sn_weights"] += int(np.prod(layer._weight.shape))
            continue
        flops, weights = _op_flops(layer, layer_inputs, outputs)
        if not flops:
            continue
        # Attention: both matmul operands are activations; conditional batch norm: its one-hot operand needs none.
        activation_operands = (2 if isinstance(layer, SelfAttention)
                               else 0 if isinstance(layer, ConditionalBatchNorm) else 1)
        depends = any(g is not None for g in tape.gradient(layer_inputs, variables)) if weights else True
        profile["forward"] += flops
        profile["weight_grad"] += flops * weights
        profile["act_grad_all"] += flops * activation_operands
        profile["act_grad_if_input_free"] += flops * activation_operands * depends
        profile["layers"].append((layer.name, flops))
    del tape
    return profile


def count_train_step_flops(generator, discriminator, batch_size, d_steps=1):
    """Analytic FLOPs of one `SAGAN.train_step` (see the module docstring).

    Args:
      generator: a built `sagan_tf.models.Generator`.
      discriminator: a built `sagan_tf.models.Discriminator`.
      batch_size: examples per discriminator / generator update.
      d_steps: discriminator updates per train step.

    Returns:
      dict: `total` FLOPs per train step, `d_update`, `g_update`, `g_forward_per_example`,
      `d_forward_per_example`, `spectral_norm` (the batch-independent part of `total`), and `layers`.
    """
    config = generator.config
    z = tf.zeros((1, config.latent_dim))
    labels = tf.zeros((1,), tf.int32)
    g = _network_profile(generator, z, labels)
    images = generator(z, labels, training=False)
    d = _network_profile(discriminator, images, labels)

    n = batch_size
    d_update = (n * g["forward"] + 2 * n * d["forward"]
                + 2 * n * (d["weight_grad"] + d["act_grad_if_input_free"]))
    g_update = (n * g["forward"] + n * d["forward"] + n * d["act_grad_all"]
                + n * (g["weight_grad"] + g["act_grad_if_input_free"]))
    # Spectral norm per call: sigma (2|W|); training calls add a power iteration (4|W|); differentiated calls add
    # the outer product of the backward (2|W|). D update: G (training), D real (training, differentiated), D fake
    # (differentiated). G update: G (training, differentiated), D (inference).
    sn_d_update = (6 * g["sn_weights"]) + (8 * d["sn_weights"]) + (4 * d["sn_weights"])
    sn_g_update = (8 * g["sn_weights"]) + (2 * d["sn_weights"])
    return {
        "total": int(d_steps * (d_update + sn_d_update) + g_update + sn_g_update),
        "d_update": int(d_update + sn_d_update),
        "g_update": int(g_update + sn_g_update),
        "g_forward_per_example": int(g["forward"]),
        "d_forward_per_example": int(d["forward"]),
        "spectral_norm": int(d_steps * sn_d_update + sn_g_update),
        "layers": {"generator": g["layers"], "discriminator": d["layers"]},
    }


def _live_ops(graph):
    """Ops of a FuncGraph that run: ancestors (data and control) of its outputs and control outputs."""
    stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
    live = set()
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def trace_train_step(model, images, labels=None):
    """The concrete graph of `model.train_step` for static input shapes (not XLA-compiled)."""
    specs = (tf.TensorSpec(images.shape, images.dtype),)
    if labels is not None:
        specs += (tf.TensorSpec(labels.shape, labels.dtype),)
    step = tf.function(lambda *data: model.train_step(data if len(data) > 1 else data[0]))
    return step.get_concrete_function(*specs).graph


def _corrected_op_flops(op):
    """Exact multiply-add count (x2) of the ops whose registered TensorFlow formula is wrong, else None.

    - BatchMatMul*: the registry reads the attribute `transpose_a`, but these ops call it `adj_x`, so the
      contraction length of an adjoint product (as in every attention backward) is taken from the wrong axis.
    - Conv2DBackpropInput / Conv2DBackpropFilter: the registry divides the larger tensor by the stride product,
      which is wrong for 'valid' padding (a 4x4 'valid' kernel on 4x4 maps is counted 16x). Both cost exactly
      what the forward convolution costs: 2 * |out_backprop| * kh * kw * C_in.
    """
    if op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a = op.inputs[0].shape
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * k * op.outputs[0].shape.num_elements()
    if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        filter_shape = op.inputs[1].shape if op.type == "Conv2DBackpropInput" else op.outputs[0].shape
        kh, kw, in_channels, _ = filter_shape
        return 2 * op.inputs[2].shape.num_elements() * kh * kw * in_channels
    return None


def count_graph_flops(graph):
    """FLOPs of the live ops of a traced graph, from TensorFlow's registered statistics.

    Args:
      graph: a `FuncGraph` (e.g. from `trace_train_step`).

    Returns:
      dict: `matmul` (Conv2D*, MatMul, BatchMatMul*: the ops the analytic count covers, with the registry's two
      formula errors corrected, see `_corrected_op_flops`), `matmul_tf_registry` (the same ops as TensorFlow's
      registry counts them), `elementwise` (every other op with a registered count), `by_op_type` (corrected),
      and `unknown_shape_ops` (ops TF could not count for lack of static shapes; should be 0).
    """
    # The profiler's own per-node statistic (tfprof_logger uses the same call); there is no public per-op API.
    from tensorflow.python.framework import ops as tf_ops  # pylint: disable=g-direct-tensorflow-import

    by_type, registry_matmul, unknown = {}, 0, 0
    for op in _live_ops(graph):
        try:
            registered = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:
            unknown += 1
            continue
        if not registered:
            continue
        flops = _corrected_op_flops(op)
        flops = int(registered) if flops is None else int(flops)
        if op.type in MATMUL_OP_TYPES:
            registry_matmul += int(registered)
        by_type[op.type] = by_type.get(op.type, 0) + flops
    matmul = sum(v for k, v in by_type.items() if k in MATMUL_OP_TYPES)
    return {"matmul": matmul, "matmul_tf_registry": registry_matmul,
            "elementwise": sum(by_type.values()) - matmul, "by_op_type": by_type, "unknown_shape_ops": unknown}


def raw_profile_flops(graph):
    """`tf.compat.v1.profiler.profile` float-operation count of every op in the graph (dead ones included)."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
