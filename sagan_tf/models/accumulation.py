"""Gradient accumulation: one optimizer update from the gradients of several micro-batches.

As BigGAN-PyTorch's `--num_D_accumulations`/`--num_G_accumulations` and PyTorch-StudioGAN's `ACCUMULATION_STEPS`:
a batch too large for a device's memory is split into micro-batches whose gradients are summed before one update.
TensorFlow-specific (the train step it serves is).
"""

import tensorflow as tf


def micro_batch(values, index, count):
    """Micro-batch `index` of `values` split into `count` equal parts along the leading (batch) axis.

    Args:
      values: a nest of tensors with one static batch size, divisible by `count` (None entries stay None).
      index: a Python int or an int32 scalar tensor in [0, count).
      count: the number of micro-batches.

    Returns:
      The nest of `values` with each tensor's rows `index * batch / count` to `(index + 1) * batch / count`.
    """
    def part(value):
        if value is None:
            return None
        shape = list(value.shape)
        return tf.gather(tf.reshape(value, [count, shape[0] // count] + shape[1:]), index)

    return tf.nest.map_structure(part, values)


def accumulate(compute, inputs, count, statistics=()):
    """The sum of `compute(part, first)` over the `count` micro-batches of `inputs`.

    The first micro-batch runs on its own (`first=True`: e.g. where the spectral-norm vectors advance), the others in
    one `tf.while_loop` with `parallel_iterations=1`, so that the activations of one micro-batch at a time are alive:
    what makes accumulation save memory.

    Args:
      compute: fn(part, first) -> a nest of tensors (None entries stay None); `part` is `micro_batch(inputs, ...)`.
      inputs: a nest of this replica's batch tensors (see `micro_batch`).
      count: the number of micro-batches, >= 1; 1 is one call `compute(inputs, True)`.
      statistics: variables that each call of `compute` updates from its micro-batch (batch-norm moving
        statistics), which should instead take one update per accumulated step: every micro-batch starts from
        their values v0 before the step, and they end at v0 + mean over the micro-batches of (v_k - v0). For an
        update linear in the batch statistics (v <- momentum * v + (1 - momentum) * s) that is one update with the
        micro-batches' mean statistics.

    Returns:
      The nest of sums of `compute`'s outputs (IndexedSlices gradients come back dense).
    """
    if count == 1:
        return compute(inputs, True)
    statistics = list(statistics)
    before = [tf.convert_to_tensor(variable) for variable in statistics]

    def run(index, first):
        outputs = compute(micro_batch(inputs, index, count), first)
        deltas = [tf.convert_to_tensor(variable) - value for variable, value in zip(statistics, before)]
        for variable, value in zip(statistics, before):
            variable.assign(value)
        flat = tf.nest.flatten(outputs)
        return outputs, [None if value is None else tf.convert_to_tensor(value) for value in flat], deltas

    outputs, flat, deltas = run(0, True)
    present = [i for i, value in enumerate(flat) if value is not None]

    def body(index, totals, deltas):
        _, more, more_deltas = run(index, False)
        totals = [total + more[i] for total, i in zip(totals, present)]
        return index + 1, totals, [a + b for a, b in zip(deltas, more_deltas)]

    _, totals, deltas = tf.while_loop(lambda index, *_: index < count, body,
                                      (tf.constant(1), [flat[i] for i in present], deltas),
                                      parallel_iterations=1, maximum_iterations=count - 1)
    for variable, value, delta in zip(statistics, before, deltas):
        variable.assign(value + delta / count)
    for i, total in zip(present, totals):
        flat[i] = total
    return tf.nest.pack_sequence_as(outputs, flat)
