"""Batch Normalization (Ioffe & Szegedy, 2015) as a Keras 3 layer.

Algorithm 1 in training, Algorithm 2 in inference, Section 3.2 for
convolutions. On the TensorFlow backend 4-D and 5-D inputs run on the fused
kernel (`FusedBatchNormV3`), in training on a shifted input so that its
statistics stay exact (`bn_zoo.layers.moments`); every other case takes a
generic path built from `keras.ops`.
"""

import contextlib
import math
import threading

import keras
from keras import constraints, initializers, ops, regularizers

from bn_zoo.layers import moments

VARIANCE_CORRECTIONS = ("unbiased", "biased")
INFERENCE_STATISTICS = ("moving", "population")

_recorder_state = threading.local()


@contextlib.contextmanager
def record_batch_statistics():
    """Collects the mini-batch statistics of every training-mode call.

    Inside this context a `BatchNormalization` layer called in training mode
    normalizes with its mini-batch statistics as usual, but does not update
    its moving averages; instead it appends `(layer, mean, variance, count)`
    to the yielded list, where `variance` is the biased σ²_B and `count` is
    m' (a float32 scalar). `bn_zoo.population.estimate` builds Algorithm 2's
    population statistics on this.
    """
    previous = getattr(_recorder_state, "records", None)
    _recorder_state.records = []
    try:
        yield _recorder_state.records
    finally:
        _recorder_state.records = previous


def _active_records():
    return getattr(_recorder_state, "records", None)


@keras.saving.register_keras_serializable(package="bn_zoo")
class BatchNormalization(keras.layers.Layer):
    """Batch Normalization, as in Ioffe & Szegedy (2015).

    **Training** (Algorithm 1). For a mini-batch B, each channel k is
    normalized with the statistics of B and then scaled and shifted:

        μ_B = 1/m' Σ x_i,   σ²_B = 1/m' Σ (x_i − μ_B)²
        x̂_i = (x_i − μ_B) / √(σ²_B + ε),   y_i = γ_k x̂_i + β_k

    For a dense input of shape `(m, d)` with `axis=-1`, every activation is its
    own channel and m' = m. For a convolutional input (Section 3.2) a channel
    is a feature map, and the statistics are taken over the batch and all
    spatial positions: for `(m, p, q, C)` inputs m' = m·p·q. Any `axis`
    (`-1` for `channels_last`, `1` for `channels_first`) is supported.

    Each training step also updates the moving averages

        moving_mean     ← momentum · moving_mean     + (1 − momentum) · μ_B
        moving_variance ← momentum · moving_variance + (1 − momentum) · c · σ²_B

    where `c = m'/(m'−1)` for `variance_correction="unbiased"` (the paper's
    unbiased estimate, Algorithm 2 step 10) and `c = 1` for `"biased"` (what
    `keras.layers.BatchNormalization` does).

    **Inference** (Algorithm 2). The layer is a fixed per-channel affine map,

        y = γ / √(Var[x] + ε) · x + (β − γ E[x] / √(Var[x] + ε))

    with `E[x], Var[x]` taken from either the moving averages
    (`inference_statistics="moving"`) or the population statistics
    (`"population"`): E[x] = the mean of the batch means and
    Var[x] = m'/(m'−1) · the mean of the batch variances over many training
    mini-batches, which `bn_zoo.population.estimate` computes.
    `inference_affine()` returns that map, for folding into the preceding layer.

    **Modes.** `training=True` uses Algorithm 1, `training=False` or `None`
    (outside `fit`) uses the chosen inference statistics. As in Keras 3,
    `trainable=False` freezes the layer in inference mode whatever `training`
    says, which is what fine-tuning wants. The choice of statistics lives in
    the scalar variable `use_population_statistics` (1 = population), read
    when the layer runs: assigning `inference_statistics` takes effect in
    `predict`, `evaluate` and every function already traced, and the choice
    is saved and loaded with the weights and checkpoints.

    **Exactness.** μ_B and σ²_B are computed two-pass around a shift by one
    of the channel's own values (`bn_zoo.layers.moments`), on the fused,
    generic, masked and synchronized paths, eagerly, in `tf.function` and
    under XLA. They stay accurate to float32 when |mean|/std is large (tested
    to 1e4), a constant channel gives exactly y = β, and the moving variance
    is never negative or NaN.

    **m' = 1.** Training with one value per channel (after any mask) raises
    "expected more than 1 value per channel" before anything is written: a
    `ValueError` while tracing when the shape is static, else an
    `InvalidArgumentError` when the step runs, ordered before every variable
    access that follows it (`bn_zoo.layers.refusal`), so the weights, the
    statistics, the optimizer (iterations, weight decay) and the metrics are
    left as they were. XLA drops run-time assertions: there a step with
    m' = 1 runs with x̂ = 0 and leaves the moving statistics unchanged.

    **Distribution.** With `synchronized=True` under a `tf.distribute`
    strategy, μ_B and σ²_B (and m') are computed over the global batch of all
    replicas: each replica's (m', shift, mean, sum of squares) go through one
    all-reduce per layer and are combined with Chan's parallel formula, and
    the gradient flows back through one all-reduce. Without
    synchronization each replica normalizes with its own statistics; the
    moving averages are then updated with the *mean over replicas* of every
    replica's update (variables with `aggregation="mean"`), not with replica
    0's alone. The mean of per-replica variances misses the spread of the
    per-replica means, so use `synchronized=True` when exact global statistics
    matter.

    **Mixed precision.** Statistics, γ, β and all four statistic variables stay
    float32; the output has the layer's compute dtype.

    Args:
        axis: The channel axis. `-1` for `channels_last`, `1` for
            `channels_first`.
        momentum: Momentum of the moving averages, in [0, 1].
        epsilon: ε added to the variance, > 0.
        center: Whether to learn the shift β.
        scale: Whether to learn the scale γ. Turn off when the next layer is
            linear (or ReLU followed by a linear layer).
        beta_initializer, gamma_initializer: Initializers of β and γ.
        moving_mean_initializer, moving_variance_initializer: Initializers of
            the moving statistics; the population statistics start the same.
        beta_regularizer, gamma_regularizer: Optional regularizers.
        beta_constraint, gamma_constraint: Optional constraints.
        synchronized: Compute training statistics over all replicas of a
            `tf.distribute` strategy (TensorFlow backend only).
        variance_correction: `"unbiased"` (default, m'/(m'−1) · σ²_B as in
            the paper) or `"biased"` (σ²_B, as Keras). Applies to the moving
            variance and to the population variance.
        inference_statistics: `"moving"` (default) or `"population"`: which
            statistics inference uses. Saved in the config and, once built,
            in the variable `use_population_statistics`; assign the attribute
            to switch, with effect everywhere at once.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A tensor of rank >= 2.
        training: Python boolean; see **Modes**.
        mask: Optional mask of rank `rank(inputs) - 1`; masked positions take
            no part in the statistics.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized=False,
        variance_correction="unbiased",
        inference_statistics="moving",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(
                "`axis` must be a single integer channel axis (e.g. -1 for "
                f"channels_last, 1 for channels_first). Received: axis={axis!r}"
            )
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(
                f"`momentum` must be in [0, 1]. Received: momentum={momentum}"
            )
        if not float(epsilon) > 0.0:
            raise ValueError(
                "`epsilon` must be > 0 so that a constant channel does not "
                f"divide by zero. Received: epsilon={epsilon}"
            )
        if variance_correction not in VARIANCE_CORRECTIONS:
            raise ValueError(
                f"`variance_correction` must be one of {VARIANCE_CORRECTIONS}. "
                f"Received: variance_correction={variance_correction!r}"
            )
        if synchronized and keras.backend.backend() != "tensorflow":
            raise ValueError(
                "`synchronized=True` needs the TensorFlow backend "
                f"(current backend: {keras.backend.backend()!r})."
            )
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(
            moving_variance_initializer
        )
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.synchronized = bool(synchronized)
        self.variance_correction = variance_correction
        self.inference_statistics = inference_statistics
        self.supports_masking = True
        self.gamma = self.beta = None
        self.moving_mean = self.moving_variance = None
        self.population_mean = self.population_variance = None
        self.use_population_statistics = None

    @property
    def inference_statistics(self):
        """Which statistics inference uses: `"moving"` or `"population"`.

        Backed by the variable `use_population_statistics` once built, so an
        assignment takes effect in every traced function without retracing,
        and the choice travels with the weights and checkpoints.
        """
        flag = getattr(self, "use_population_statistics", None)
        read = _statistics_of(flag) if flag is not None else None
        return read or self._inference_statistics

    @inference_statistics.setter
    def inference_statistics(self, value):
        if value not in INFERENCE_STATISTICS:
            raise ValueError(
                f"`inference_statistics` must be one of {INFERENCE_STATISTICS}. "
                f"Received: inference_statistics={value!r}"
            )
        self._inference_statistics = value
        if getattr(self, "use_population_statistics", None) is not None:
            self.use_population_statistics.assign(_flag(value))

    def load_own_variables(self, store):
        """Loads the variables, then takes the inference statistics they name.

        Files written before `use_population_statistics` existed hold one
        variable less; they load, and the layer keeps its configured choice.
        """
        variables = self._trainable_variables + self._non_trainable_variables
        if self.built and len(store.keys()) == len(variables) - 1:
            flag = self.use_population_statistics
            for i, variable in enumerate(v for v in variables if v is not flag):
                variable.assign(store[f"{i}"])
        else:
            super().load_own_variables(store)
        if self.built:
            read = _statistics_of(self.use_population_statistics)
            self._inference_statistics = read or self._inference_statistics

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' needs inputs of rank "
                ">= 2, (batch, ..., channels), to have channels to normalize. "
                f"Received input shape {tuple(input_shape)}."
            )
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis={self.axis}` is out of range for inputs of rank {rank} "
                f"(shape {tuple(input_shape)}). Use an axis in [-{rank}, {rank - 1}]"
                ", e.g. -1 for channels_last or 1 for channels_first."
            )
        axis = self.axis % rank
        if axis == 0:
            raise ValueError(
                f"`axis={self.axis}` is the batch axis of inputs of shape "
                f"{tuple(input_shape)}; batch normalization normalizes over the "
                "batch. Use the channel axis (-1 or 1)."
            )
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"The channel axis {self.axis} of inputs {tuple(input_shape)} must "
                "have a known size to create one γ, β pair per channel."
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )

        def statistic(name, initializer):
            return self.add_weight(
                shape=shape,
                name=name,
                initializer=initializer,
                trainable=False,
                autocast=False,
                aggregation="mean",
            )

        self.moving_mean = statistic("moving_mean", self.moving_mean_initializer)
        self.moving_variance = statistic(
            "moving_variance", self.moving_variance_initializer
        )
        self.population_mean = statistic(
            "population_mean", self.moving_mean_initializer
        )
        self.population_variance = statistic(
            "population_variance", self.moving_variance_initializer
        )
        self.use_population_statistics = self.add_weight(
            shape=(),
            name="use_population_statistics",
            initializer=initializers.Constant(_flag(self._inference_statistics)),
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
        )
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={axis: channels}
        )
        self._channel_axis = axis
        self._reduction_axes = [i for i in range(rank) if i != axis]
        self._fused_format = _fused_data_format(rank, axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    # ----------------------------------------------------------------- call
    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask must have one dimension less than the inputs. "
                f"Received mask.shape={mask.shape}, inputs.shape={inputs.shape}"
            )
        if training and self.trainable:
            return self._call_training(inputs, mask)
        mean, variance = self._inference_moments()
        if self._use_fused(inputs, None):
            return self._fused_inference(inputs, mean, variance)
        return self._normalize(inputs, mean, variance)

    def _inference_moments(self):
        """E[x], Var[x] chosen at run time by the `use_population_statistics`
        variable, so that switching needs no retrace of any function."""
        use_population = ops.greater(self.use_population_statistics, 0.5)
        return (
            ops.where(use_population, self.population_mean, self.moving_mean),
            ops.where(use_population, self.population_variance, self.moving_variance),
        )

    def _use_fused(self, inputs, mask):
        return (
            self._fused_format is not None
            and mask is None
            and not self.synchronized
            and keras.backend.backend() == "tensorflow"
            and keras.backend.standardize_dtype(inputs.dtype)
            in ("float32", "float16", "bfloat16")
        )

    def _call_training(self, inputs, mask):
        if self._use_fused(inputs, mask):
            count = self._local_count(inputs)
            outputs, mean, unbiased = self._fused_training(inputs)
            biased = unbiased * ((count - 1.0) / count)
        else:
            outputs, mean, biased, count = self._generic_training(inputs, mask)
        check = self._count_check(inputs, count, mask)
        if check is not None:
            # Everything downstream (the loss, every gradient and every update
            # computed from them) waits for the check, so a refused step
            # writes nothing that depends on this layer's output.
            outputs, mean, biased, count = _after(check, [outputs, mean, biased, count])
        records = _active_records()
        if records is not None:
            records.append((self, mean, biased, ops.convert_to_tensor(count, "float32")))
        else:
            self._update_moving_statistics(mean, biased, count)
        return outputs

    def _update_moving_statistics(self, mean, biased_variance, count):
        variance = biased_variance
        if self.variance_correction == "unbiased":
            variance = biased_variance * (count / (count - 1.0))
        decay = 1.0 - self.momentum
        new_mean = self.moving_mean * self.momentum + ops.cast(mean, "float32") * decay
        new_variance = (
            self.moving_variance * self.momentum + ops.cast(variance, "float32") * decay
        )
        if not isinstance(count, float):
            # Where no assertion can stop the step (XLA drops them), m' <= 1
            # leaves the moving statistics as they were rather than inf/NaN.
            valid = ops.greater(count, 1.0)
            new_mean = ops.where(valid, new_mean, self.moving_mean)
            new_variance = ops.where(valid, new_variance, self.moving_variance)
        self.moving_mean.assign(new_mean)
        self.moving_variance.assign(new_variance)

    def _generic_training(self, inputs, mask):
        """Algorithm 1 with shifted moments (see `bn_zoo.layers.moments`).

        Returns (outputs, μ_B, biased σ²_B, m'), all over the global batch
        when synchronized.
        """
        x = _to_float32(inputs)
        axis, rank = self._channel_axis, len(x.shape)
        if mask is None:
            weights = None
            count = self._local_count(x)
        else:
            # The mask covers every axis but the channel axis.
            weights = ops.broadcast_to(
                ops.expand_dims(ops.cast(mask, "float32"), axis), ops.shape(x)
            )
            # m' is the same for every channel: count channel 0's weights.
            count = ops.sum(ops.take(weights, 0, axis=axis))
        shift = moments.channel_shift(x, axis, mask)
        d = x - moments.expand(shift, axis, rank)
        delta, m2, centered = moments.shifted_moments(
            d, self._reduction_axes, axis, count, weights
        )
        replica = moments.replica_context() if self.synchronized else None
        if replica is not None:
            count, delta, m2 = moments.all_reduce_moments(replica, count, shift, delta, m2)
            centered = d - moments.expand(delta, axis, rank)
        variance = m2 / count
        multiplier = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            multiplier = multiplier * self.gamma
        outputs = centered * moments.expand(multiplier, axis, rank)
        if self.beta is not None:
            outputs = outputs + moments.expand(self.beta, axis, rank)
        return ops.cast(outputs, self.compute_dtype), shift + delta, variance, count

    def _fused_training(self, inputs):
        """`FusedBatchNormV3` on the shifted input: returns (outputs, μ_B,
        Bessel-corrected σ²_B)."""
        import tensorflow as tf

        # float16/bfloat16 inputs are shifted in float32: x − s is not always
        # representable in 11 or 8 bits, and its rounding would reach μ_B.
        x = _to_float32(inputs)
        shift = moments.channel_shift(x, self._channel_axis)
        # BiasAdd is the cheapest per-channel subtraction on TensorFlow, and
        # its gradient passes dy through without a reduction.
        shifted = tf.nn.bias_add(
            x, -shift, data_format="N...C" if self._fused_format.endswith("C") else "NC..."
        )
        outputs, delta, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=shifted,
            scale=self._fused_scale(),
            offset=self._fused_offset(),
            mean=tf.zeros((0,), "float32"),
            variance=tf.zeros((0,), "float32"),
            epsilon=self.epsilon,
            data_format=self._fused_format,
            is_training=True,
        )
        # XLA's single-pass variance can round below zero.
        unbiased_variance = tf.maximum(unbiased_variance, 0.0)
        return ops.cast(outputs, self.compute_dtype), delta + shift, unbiased_variance

    def _fused_inference(self, inputs, mean, variance):
        import tensorflow as tf

        outputs = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=self._fused_scale(),
            offset=self._fused_offset(),
            mean=mean,
            variance=variance,
            epsilon=self.epsilon,
            data_format=self._fused_format,
            is_training=False,
        )[0]
        return ops.cast(outputs, self.compute_dtype)

    def _normalize(self, inputs, mean, variance):
        outputs = ops.batch_normalization(
            _to_float32(inputs),
            mean=mean,
            variance=variance,
            axis=self._channel_axis,
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    # -------------------------------------------------------------- helpers
    def _fused_scale(self):
        if self.gamma is not None:
            return ops.convert_to_tensor(self.gamma)
        return ops.ones(self.moving_mean.shape, "float32")

    def _fused_offset(self):
        if self.beta is not None:
            return ops.convert_to_tensor(self.beta)
        return ops.zeros(self.moving_mean.shape, "float32")

    def _local_count(self, x):
        """This replica's m': a Python float when the shape is static, else a
        float32 tensor."""
        count = 1
        for i in self._reduction_axes:
            dim = x.shape[i]
            count = count * (dim if dim is not None else ops.shape(x)[i])
        if isinstance(count, int):
            return float(count)
        return ops.cast(count, "float32")

    def _count_check(self, inputs, count, mask):
        """Refuses m' <= 1: at trace time when m' is static (ValueError), else
        returns a run-time assertion to run before anything uses the step's
        results (None where m' is already known to exceed 1)."""
        if isinstance(count, float):
            if count <= 1:
                raise ValueError(_single_value_message(self.name, inputs.shape))
            return None
        known = math.prod(inputs.shape[i] or 1 for i in self._reduction_axes)
        if (mask is None and known > 1) or (
            keras.backend.backend() != "tensorflow"
        ):
            return None
        from bn_zoo.layers import refusal

        return refusal.assert_more_than_one(
            count, _single_value_message(self.name, inputs.shape)
        )

    # --------------------------------------------------------- inference map
    def inference_affine(self):
        """The inference network's per-channel map y = a·x + b (Algorithm 2, step 11).

        Returns `(a, b)` as float32 tensors of shape `(channels,)`, with
        a = γ/√(Var[x] + ε) and b = β − a·E[x], using the statistics chosen by
        `inference_statistics`. Export folds them into the preceding layer.
        """
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built yet: call it on an input (or "
                "build the model) before asking for its inference map."
            )
        mean, variance = self._inference_moments()
        a = ops.rsqrt(ops.convert_to_tensor(variance) + self.epsilon)
        if self.gamma is not None:
            a = a * self.gamma
        b = -a * mean
        if self.beta is not None:
            b = b + self.beta
        return a, b

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "axis": self.axis,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "center": self.center,
                "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(
                    self.moving_mean_initializer
                ),
                "moving_variance_initializer": initializers.serialize(
                    self.moving_variance_initializer
                ),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
                "synchronized": self.synchronized,
                "variance_correction": self.variance_correction,
                "inference_statistics": self.inference_statistics,
            }
        )
        return config


def inference_affine(layer):
    """Per-channel `(a, b)` of a built `BatchNormalization` layer; see
    `BatchNormalization.inference_affine`."""
    if not isinstance(layer, BatchNormalization):
        raise TypeError(
            "inference_affine() takes a bn_zoo.layers.BatchNormalization layer; "
            f"received {type(layer).__name__}."
        )
    return layer.inference_affine()


def _fused_data_format(rank, axis):
    """The `FusedBatchNormV3` layout for a 4-D or 5-D input, else None.

    Dense inputs stay on the generic path: on small (m, d) inputs the fused
    kernel's fixed cost is larger than the two reductions it saves.
    """
    formats = {(4, 3): "NHWC", (4, 1): "NCHW", (5, 4): "NDHWC", (5, 1): "NCDHW"}
    return formats.get((rank, axis))


def _single_value_message(name, shape):
    return (
        f"BatchNormalization '{name}' expected more than 1 value per channel when "
        f"training (input shape {tuple(shape)} gives m' <= 1, after any mask, and "
        "the variance is undefined). Use a batch of at least 2, or call the layer "
        "with training=False."
    )


def _to_float32(x):
    if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
        return ops.cast(x, "float32")
    return x


def _flag(statistics):
    return 1.0 if statistics == "population" else 0.0


def _statistics_of(flag):
    """The statistics `use_population_statistics` names, or None inside a
    trace, where the variable has no value to read."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
    try:
        value = float(ops.convert_to_numpy(flag))
    except Exception:  # a traced value on another backend
        return None
    return "population" if value > 0.5 else "moving"


def _after(check, tensors):
    """`tensors`, each made to wait for the assertion `check`."""
    import tensorflow as tf

    with tf.control_dependencies([check]):
        return [tf.identity(t) for t in tensors]
