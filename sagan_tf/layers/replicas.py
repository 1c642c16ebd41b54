"""Keeping the state that layers update in training identical across `tf.distribute` replicas."""

import keras


def average_across_replicas(variables):
    """Assigns to each variable the mean of its copies over the replicas, in one batched all-reduce.

    For state that every replica updates on its own in replica context (e.g. `BatchNorm` moving statistics with
    `synchronized=False`): after this call every replica holds the same values. Call it in replica context (inside
    `strategy.run`, e.g. at the end of a train step); outside `tf.distribute`, with one replica or on another
    backend than TensorFlow it does nothing.

    Args:
      variables: a list of `keras.Variable`s created under the strategy (aggregation "none", so that each replica
        assigns its own copy).
    """
    if not variables or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return
    targets = [variable.value for variable in variables]  # the distributed TensorFlow variables

    def placed(value, target):
        # With one replica per process (MultiWorkerMirroredStrategy, one device per worker) merge_call passes the
        # replica's own tensor, placed nowhere in the step's graph; batch_reduce_to batches the reductions into one
        # all-reduce only when every value sits on its destination's devices, and otherwise reduced the variables
        # one by one with the warning "Efficient batch_reduce is not supported if destinations are different.".
        if not isinstance(value, tf.Tensor):
            return value  # per-replica values: on the replicas' devices already
        with tf.device(target.device):
            return tf.identity(value)

    def average(strategy, *values):
        # As the optimizers reduce gradients: the variables are the destinations (MultiWorkerMirroredStrategy finds
        # no device to reduce to in a tensor of the step's graph).
        pairs = [(placed(value, target), target) for value, target in zip(values, targets)]
        means = strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.MEAN, pairs)
        for target, mean in zip(targets, means):
            strategy.extended.update(target, lambda variable, value: variable.assign(value), args=(mean,))

    context.merge_call(average, args=[tf.convert_to_tensor(variable) for variable in variables])
