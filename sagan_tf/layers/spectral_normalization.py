"""Spectral normalization of a wrapped layer's weight (Miyato et al., ICLR 2018)."""

import contextlib

import keras
from keras import ops

# Layers whose kernel is laid out (*spatial, out_channels, in_channels): the output axis is -2.
_TRANSPOSED_KERNEL_LAYERS = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


@keras.saving.register_keras_serializable(package="sagan_tf")
class SpectralNormalization(keras.layers.Wrapper):
    """Runs the wrapped layer with its weight divided by its spectral norm: W_SN = W / sigma(W).

    Implements Miyato et al., "Spectral Normalization for Generative Adversarial Networks" (ICLR 2018),
    eq. (8) W_SN = W / sigma(W) with sigma estimated by the power iteration of Algorithm 1. The weight
    is reshaped to W_mat of shape (-1, output units) (the output axis moved last first), and the stored
    vector u (one entry per output unit) gives

        v = W_mat u / ||W_mat u||,   sigma = v^T W_mat u,

    with u and v treated as constants, so the gradient flows through sigma into W (Section 2.2). Unlike
    `keras.layers.SpectralNormalization`, which assigns W / sigma into the kernel, the normalized weight
    is computed functionally in every call, in training and in inference; the wrapped layer's variable
    keeps the unnormalized W that the optimizer updates. With `training=True`, u first takes
    `power_iterations` steps v <- W_mat u / ||W_mat u||, u <- W_mat^T v / ||W_mat^T v|| and is stored;
    otherwise no state changes, so a training call and a following inference call give the same output.
    Inside `frozen_power_iteration` a training call also uses the stored u as it is (gradient accumulation: u
    advances once per optimizer update, on its first micro-batch, and the others normalize with that u).

    The power iteration and W / sigma are computed in the weight's dtype (float32 under mixed precision,
    whatever the wrapper's own dtype policy); the wrapped layer then autocasts its inputs and the
    normalized weight to its own compute dtype, so pass `dtype` to the wrapped layer to choose it.

    Args:
      layer: the layer to normalize, with a `kernel` (`Dense`, `Conv*D`, `Conv*DTranspose`) or an
        `embeddings` (`Embedding`) weight.
      power_iterations: power-iteration steps per training call (>= 1; the paper uses 1).
      epsilon: lower bound on vector norms and on sigma, avoiding division by zero (> 0).
      **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Returns (when called):
      The wrapped layer's output computed with W / sigma(W).
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, **kwargs):
        super().__init__(layer, **kwargs)
        if (isinstance(power_iterations, bool) or not isinstance(power_iterations, int)
                or power_iterations < 1):
            raise ValueError(
                "`power_iterations` must be an integer >= 1. "
                f"Received: power_iterations={power_iterations}"
            )
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"`epsilon` must be a number > 0. Received: epsilon={epsilon}")
        self.power_iterations = power_iterations
        self.epsilon = float(epsilon)
        # The wrapper only does weight arithmetic, which must see the float32 variables; the wrapped
        # layer does its own input and weight autocasting.
        self.autocast = False
        # Read when a call is traced: see `frozen_power_iteration`.
        self.power_iteration_frozen = False
        if layer.built:
            self._find_weight()

    @property
    def compute_dtype(self):
        # Keras enters an autocast scope of the compute dtype around `call` whenever compute and variable
        # dtypes differ (even with `autocast=False`), which would round W to bfloat16 before sigma.
        return self.variable_dtype

    def _find_weight(self):
        for name in ("kernel", "embeddings"):
            weight = getattr(self.layer, name, None)
            if weight is not None:
                break
        else:
            raise ValueError(
                "SpectralNormalization needs a layer with a `kernel` or `embeddings` weight. "
                f"Received: layer={self.layer.__class__.__name__}(name={self.layer.name!r})"
            )
        if not isinstance(weight, keras.Variable):
            raise ValueError(
                f"The `{name}` of the wrapped layer must be a `keras.Variable` (LoRA or quantized "
                f"layers are not supported). Received: {name}={type(weight).__name__}"
            )
        return name

    @property
    def _weight(self):
        return getattr(self.layer, self._weight_name)

    def build(self, input_shape=None):
        super().build(input_shape)
        # Only the name is kept: an attribute holding the variable would make it one of the wrapper's own.
        self._weight_name = self._find_weight()
        self._output_axis = -2 if isinstance(self.layer, _TRANSPOSED_KERNEL_LAYERS) else -1
        units = self._weight.shape[self._output_axis]
        epsilon = self.epsilon
        # A seeded initializer object: the layer may be built while a parent traces its call symbolically, where
        # drawing from Keras's global seed generator fails.
        normal = keras.initializers.RandomNormal()

        def unit_normal(shape, dtype=None):
            return _l2_normalize(normal(shape, dtype=dtype), epsilon)

        # Aggregation "none": under tf.distribute every replica computes the same new u from the same W and u
        # (the optimizer keeps W identical) and assigns its own copy, with no cross-replica step ("only_first_replica"
        # would broadcast replica 0's u on every update, one merge per layer per step, which per-replica XLA cannot
        # compile).
        self.u = self.add_weight(
            shape=(units,),
            initializer=unit_normal,
            dtype="float32",
            trainable=False,
            autocast=False,
            aggregation="none",
            name="u",
        )

    def call(self, inputs, training=None):
        kernel = self._weight.value
        u = ops.cast(self.u.value, kernel.dtype)
        if training and not self.power_iteration_frozen:
            w_mat = ops.stop_gradient(self._weight_matrix(kernel))
            for _ in range(self.power_iterations):
                v = _l2_normalize(ops.matmul(w_mat, u), self.epsilon)
                u = _l2_normalize(ops.matmul(v, w_mat), self.epsilon)
            self.u.assign(ops.cast(u, self.u.dtype))
        normalized = self._normalize(kernel, u)
        return self._call_with_weight(normalized, inputs)

    def normalized_weight(self):
        """Returns W / sigma(W) from the stored u, in the wrapped weight's shape; changes no state.

        Call it outside any mixed-precision layer call, or the weight is read in the compute dtype.

        Returns:
          A tensor of the weight's shape and dtype.
        """
        kernel = self._weight.value
        return self._normalize(kernel, ops.cast(self.u.value, kernel.dtype))

    def spectral_norm(self):
        """The current estimate of sigma(W), the largest singular value of the raw (unnormalized) weight.

        It is what the layer divides by: sigma = v^T W_mat u with v = W_mat u / ||W_mat u||, i.e. ||W_mat u||,
        from the stored u (a health signal: a raw weight whose norm keeps growing is one the optimizer pushes
        against the normalization). Changes no state.

        Returns:
          A float32 scalar tensor.
        """
        kernel = ops.cast(self._weight.value, "float32")
        w_u = ops.matmul(self._weight_matrix(kernel), ops.cast(self.u.value, "float32"))
        return ops.sqrt(ops.sum(ops.square(w_u)))

    def _weight_matrix(self, kernel):
        if self._output_axis == -2:
            rank = len(kernel.shape)
            kernel = ops.transpose(kernel, (*range(rank - 2), rank - 1, rank - 2))
        return ops.reshape(kernel, (-1, kernel.shape[-1]))

    def _normalize(self, kernel, u):
        u = ops.stop_gradient(u)
        w_u = ops.matmul(self._weight_matrix(kernel), u)
        v = ops.stop_gradient(_l2_normalize(w_u, self.epsilon))
        sigma = ops.sum(v * w_u)
        return kernel / ops.maximum(sigma, self.epsilon)

    def _call_with_weight(self, normalized, inputs):
        # Every variable of the wrapped layer is mapped to its current value, not only the weight: a scope
        # replaces any outer one (Keras's JAX trainer runs the whole step in one), whose values (the traced
        # bias, say) would otherwise be read from the variables directly. State updates and losses made by
        # the wrapped layer are passed on to the outer context after the call.
        others = [var for var in self.layer.variables if var is not self._weight]
        mapping = [(var, var.value) for var in others] + [(self._weight, normalized)]
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            before = [scope.get_current_value(var) for var in others]
            outputs = self.layer(inputs)
        for var, old in zip(others, before):
            new = scope.get_current_value(var)
            if new is not old:
                var.assign(new)
        if scope.losses:
            self.layer.add_loss(scope.losses)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, training=None):
        # The output dtype is the wrapped layer's compute dtype, not this wrapper's (see `compute_dtype`).
        return self.layer.compute_output_spec(inputs)

    def get_config(self):
        config = {"power_iterations": self.power_iterations, "epsilon": self.epsilon}
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # `Wrapper.from_config` pops "layer" from the dict it is given; leave the caller's intact.
        return super().from_config(dict(config), custom_objects=custom_objects)


@contextlib.contextmanager
def frozen_power_iteration(networks):
    """Within the block, training calls of every `SpectralNormalization` layer in `networks` normalize with the
    stored u without advancing it (inference calls never advance it).

    A Python flag read when a call runs or is traced: a `tf.function` traced inside the block keeps the frozen
    behaviour, so make whether it is frozen an argument of the traced function (as `SAGAN.train_step` does).

    Args:
      networks: layers or models to search for `SpectralNormalization` layers (themselves included).
    """
    layers = [layer for network in networks for layer in network._flatten_layers(include_self=True)
              if isinstance(layer, SpectralNormalization)]
    previous = [layer.power_iteration_frozen for layer in layers]
    for layer in layers:
        layer.power_iteration_frozen = True
    try:
        yield
    finally:
        for layer, value in zip(layers, previous):
            layer.power_iteration_frozen = value


def _l2_normalize(x, epsilon):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), epsilon)
