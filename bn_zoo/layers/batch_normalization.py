"""Batch Normalization (Ioffe & Szegedy, 2015) as a Keras 3 layer.

Algorithm 1 in training, Algorithm 2 in inference, Section 3.2 for
convolutions. On the TensorFlow backend the training step runs on the fused
kernel (`FusedBatchNormV3`) wherever it computes exactly what the layer
promises; every other case takes a generic path built from `keras.ops`.
"""

import contextlib
import math
import threading

import keras
from keras import constraints, initializers, ops, regularizers

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
    says, which is what fine-tuning wants.

    **Distribution.** With `synchronized=True` under a `tf.distribute`
    strategy, μ_B and σ²_B (and m') are computed over the global batch of all
    replicas by all-reduce, and gradients flow through it. Without
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
            statistics inference uses. Saved in the config; can be changed
            on a built layer by assigning the attribute.
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

    @property
    def inference_statistics(self):
        """Which statistics inference uses: `"moving"` or `"population"`."""
        return self._inference_statistics

    @inference_statistics.setter
    def inference_statistics(self, value):
        if value not in INFERENCE_STATISTICS:
            raise ValueError(
                f"`inference_statistics` must be one of {INFERENCE_STATISTICS}. "
                f"Received: inference_statistics={value!r}"
            )
        self._inference_statistics = value

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
        return self._normalize(inputs, mean, variance)

    def _inference_moments(self):
        if self.inference_statistics == "population":
            return self.population_mean, self.population_variance
        return self.moving_mean, self.moving_variance

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
            outputs, mean, unbiased = self._fused_training(inputs)
            count = self._guard_count(inputs, self._local_count(inputs), mask)
            biased = unbiased * ((count - 1.0) / count)
        else:
            outputs, mean, biased, count = self._generic_training(inputs, mask)
        records = _active_records()
        if records is not None:
            records.append((self, mean, biased, ops.convert_to_tensor(count, "float32")))
        else:
            self._update_moving_statistics(mean, biased, count)
        return outputs

    def _update_moving_statistics(self, mean, biased_variance, count):
        if not isinstance(count, float) and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # In a graph the m' > 1 assertion guards only `count`: without this
            # a refused step would still write μ_B (NaN for an empty mask).
            with tf.control_dependencies([count]):
                mean = tf.identity(mean)
                biased_variance = tf.identity(biased_variance)
        variance = biased_variance
        if self.variance_correction == "unbiased":
            variance = biased_variance * (count / (count - 1.0))
        decay = 1.0 - self.momentum
        self.moving_mean.assign(
            self.moving_mean * self.momentum + ops.cast(mean, "float32") * decay
        )
        self.moving_variance.assign(
            self.moving_variance * self.momentum
            + ops.cast(variance, "float32") * decay
        )

    def _generic_training(self, inputs, mask):
        x = _to_float32(inputs)
        mean, variance, count = self._moments(x, mask)
        count = self._guard_count(inputs, count, mask)
        outputs = ops.batch_normalization(
            x,
            mean=mean,
            variance=variance,
            axis=self._channel_axis,
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype), mean, variance, count

    def _moments(self, x, mask):
        """Returns (mean, biased variance, m') over the reduction axes."""
        axes = self._reduction_axes
        if mask is None:
            weights = None
            local_count = self._local_count(x)
        else:
            # The mask covers every axis but the channel axis.
            weights = ops.broadcast_to(
                ops.expand_dims(ops.cast(mask, "float32"), self._channel_axis),
                ops.shape(x),
            )
            # m' is the same for every channel: count channel 0's weights.
            local_count = ops.sum(ops.take(weights, 0, axis=self._channel_axis))
        replica = _replica_context() if self.synchronized else None
        total = ops.sum(x if weights is None else x * weights, axis=axes)
        if replica is not None:
            local_count = ops.convert_to_tensor(local_count, "float32")
            total, count = replica.all_reduce([total, local_count])
        else:
            count = local_count
        mean = total / count
        centered = ops.square(x - _expand_to(mean, self._channel_axis, len(x.shape)))
        if weights is not None:
            centered = centered * weights
        squares = ops.sum(centered, axis=axes)
        if replica is not None:
            squares = replica.all_reduce(squares)
        return mean, squares / count, count

    def _fused_training(self, inputs):
        import tensorflow as tf

        outputs, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=self._fused_scale(),
            offset=self._fused_offset(),
            mean=tf.zeros((0,), "float32"),
            variance=tf.zeros((0,), "float32"),
            epsilon=self.epsilon,
            data_format=self._fused_format,
            is_training=True,
        )
        return ops.cast(outputs, self.compute_dtype), mean, unbiased_variance

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

    def _guard_count(self, inputs, count, mask):
        """Refuses m' <= 1, at trace time when m' is static, else with a
        run-time assertion (only where m' is not already known to exceed 1)."""
        if isinstance(count, float):
            if count <= 1:
                raise ValueError(_single_value_message(self.name, inputs.shape))
            return count
        known = math.prod(inputs.shape[i] or 1 for i in self._reduction_axes)
        if (mask is None and known > 1) or keras.backend.backend() != "tensorflow":
            return count
        import tensorflow as tf

        check = tf.debugging.assert_greater(
            count, 1.0, message=_single_value_message(self.name, inputs.shape)
        )
        with tf.control_dependencies([check]):
            return tf.identity(count)

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


def _expand_to(vector, axis, rank):
    shape = [1] * rank
    shape[axis] = -1
    return ops.reshape(vector, shape)


def _replica_context():
    """The tf.distribute replica context when there is more than one replica."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return _ReplicaSum(context)


class _ReplicaSum:
    """Sum across replicas with a differentiable all-reduce."""

    def __init__(self, context):
        self._context = context

    def all_reduce(self, values):
        import tensorflow as tf

        return self._context.all_reduce(tf.distribute.ReduceOp.SUM, values)
