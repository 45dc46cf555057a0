"""Batch Normalization (Ioffe & Szegedy, 2015) as a Keras 3 layer.

Algorithm 1 in training, Algorithm 2 in inference, Section 3.2 for
convolutions. On the TensorFlow backend 4-D and 5-D inputs run on the fused
kernel (`FusedBatchNormV3`, `bn_zoo.layers.fused`), in training on a shifted
input so that its statistics stay exact (`bn_zoo.layers.moments`); every
other case takes a generic path built from `keras.ops`
(`bn_zoo.layers.training`). `bn_zoo.layers.arguments` checks the layer's
arguments and `bn_zoo.layers.moving` updates its moving averages.
"""

import keras
from keras import constraints, initializers, ops, regularizers

from bn_zoo.layers import arguments, fused, moving
from bn_zoo.layers import renorm as renorm_lib
from bn_zoo.layers import training as training_lib
# `bn_zoo.layers` and `bn_zoo.population` import the constants and
# `record_batch_statistics` from here.
from bn_zoo.layers.arguments import INFERENCE_STATISTICS, VARIANCE_CORRECTIONS  # noqa: F401
from bn_zoo.layers.recording import active_records, record_batch_statistics  # noqa: F401


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
    a custom gradient all-reduces Σ dy and Σ dy·x̂ in one more
    (`bn_zoo.layers.sync`). Without
    synchronization each replica normalizes with its own statistics; the
    moving averages are then updated with the *mean over replicas* of every
    replica's update (variables with `aggregation="mean"`), not with replica
    0's alone. The mean of per-replica variances misses the spread of the
    per-replica means, so use `synchronized=True` when exact global statistics
    matter.

    **Mixed precision.** Statistics, γ, β and all four statistic variables stay
    float32; the output has the layer's compute dtype.

    **Batch Renormalization** (`renorm=True`; Ioffe, 2017). Training
    computes y = γ(x̂·r + d) + β with r = σ_B/σ and d = (μ_B − μ)/σ, held
    constant in backprop and clipped by `renorm_clipping`; μ and σ are the
    variables `renorm_mean` and `renorm_stddev`, moving averages with
    `renorm_momentum` of μ_B and of √(c·σ²_B + ε) (`bn_zoo.layers.renorm`).
    Unclipped, the training output is (x − μ)/σ, the inference network's. As
    in Keras, the moving averages for inference are then of μ_B and of
    √(c·σ²_B + ε), and `moving_variance` is that average squared minus ε.
    Algorithm 2 is unchanged: the population statistics are E[μ_B] and
    c·E[σ²_B] of the mini-batches through the training network (with its r
    and d), and inference is the same affine map. With
    `variance_correction="biased"` (c = 1) this is Keras' and tf_keras'
    arithmetic. On TensorFlow 4-D and 5-D inputs still take the fused kernel:
    y = γx̂ + β comes out of it and is corrected as r·y + (γd + β(1 − r)).

    **Ghost batches** (`virtual_batch_size=v`; Hoffer et al., 2017). In
    training a batch of n is split into n/v ghost batches of v examples (as
    in tf_keras, ghost batch j holds examples j, j + n/v, ...), each
    normalized with its own μ_B and σ²_B, m' = v·p·q (`bn_zoo.layers.ghost`).
    The moving averages take one step per batch with the mean over its ghost
    batches of μ_B and of c·σ²_B (of √(c·σ²_B + ε) under renorm), as
    tf_keras. Under Algorithm 2 each ghost batch is a mini-batch B of size v:
    E[x] is the mean of their μ_B and Var[x] the mean of v'/(v'−1)·σ²_B, with
    v' = v·p·q. Under renorm, r and d are computed per ghost batch (tf_keras
    computes them from the mean of the ghost batches' statistics). Inference
    is per example and takes any batch size. Ghost batches run on the generic
    path (the fused kernel has no per-ghost statistics).

    **Moving averages that have not caught up.** After t updates the
    initializers still weigh momentum^t in the moving averages (37% after 100
    steps at 0.99). The layer counts its updates in
    `moving_statistics_updates`. `zero_debias=True` divides each average by
    1 − momentum^t (`bn_zoo.layers.moving`), as TensorFlow's zero-debiased
    `assign_moving_average`; the default, False, is Keras' plain average, and
    inference with it logs a warning while the initial values weigh more than
    1%. Population statistics (`bn_zoo.population.estimate`) are the other
    remedy.

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
        renorm: Whether to use Batch Renormalization in training.
        renorm_clipping: With `renorm`, a dict with optional keys `"rmin"`,
            `"rmax"`, `"dmax"`: r is clipped to [rmin, rmax] and d to
            [−dmax, dmax] (a missing key: no bound; the paper's interval is
            rmin = 1/rmax). A value is a number or a linear warm-up
            `(start, end, begin_step, end_step)` over the layer's updates,
            e.g. rmax `(1, 3, 5000, 40000)`.
        renorm_momentum: Momentum of `renorm_mean` and `renorm_stddev`.
        virtual_batch_size: None, or the size v of the ghost batches; it must
            divide every training batch size (a static batch that it does not
            divide raises a `ValueError`, a dynamic one an
            `InvalidArgumentError` that writes nothing). Not with
            `synchronized` or a mask.
        zero_debias: Whether the moving averages are divided by
            1 − momentum^t after t updates.
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
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        virtual_batch_size=None,
        zero_debias=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        axis = arguments.check_axis(axis)
        momentum = arguments.check_momentum("momentum", momentum)
        epsilon = arguments.check_epsilon(epsilon)
        variance_correction = arguments.check_variance_correction(variance_correction)
        synchronized = arguments.check_synchronized(synchronized)
        renorm_momentum = arguments.check_momentum("renorm_momentum", renorm_momentum)
        renorm_clipping = arguments.check_renorm_clipping(renorm, renorm_clipping)
        virtual_batch_size = arguments.check_virtual_batch_size(
            virtual_batch_size, synchronized
        )
        zero_debias = arguments.check_zero_debias(
            zero_debias, momentum, renorm, renorm_momentum
        )
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
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
        self.synchronized = synchronized
        self.variance_correction = variance_correction
        self.inference_statistics = inference_statistics
        self.renorm = bool(renorm)
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.virtual_batch_size = virtual_batch_size
        self.zero_debias = zero_debias
        self.supports_masking = True
        self.gamma = self.beta = None
        self.moving_mean = self.moving_variance = None
        self.population_mean = self.population_variance = None
        self.use_population_statistics = None
        self.moving_statistics_updates = None
        self.renorm_mean = self.renorm_stddev = None

    @property
    def inference_statistics(self):
        """Which statistics inference uses: `"moving"` or `"population"`.

        Backed by the variable `use_population_statistics` once built, so an
        assignment takes effect in every traced function without retracing,
        and the choice travels with the weights and checkpoints.
        """
        flag = getattr(self, "use_population_statistics", None)
        read = arguments.statistics_of(flag) if flag is not None else None
        return read or self._inference_statistics

    @inference_statistics.setter
    def inference_statistics(self, value):
        self._inference_statistics = arguments.check_inference_statistics(value)
        if getattr(self, "use_population_statistics", None) is not None:
            self.use_population_statistics.assign(arguments.flag(value))

    def load_own_variables(self, store):
        """Loads the variables, then takes the inference statistics they name.

        Files written before `moving_statistics_updates` existed hold one
        variable less, and those written before `use_population_statistics`
        two: they load, the layer keeps its configured choice, and its update
        count is set to `moving.UNKNOWN_UPDATES` (statistics taken as caught
        up).
        """
        from bn_zoo.layers import keras_layout

        if keras_layout.load_keras_variables(self, store):  # keras.layers' 2-4 variables
            return
        variables = self._trainable_variables + self._non_trainable_variables
        saved = len(store.keys())
        if self.built and not self.renorm and saved in (
            len(variables) - 1, len(variables) - 2
        ):
            counter = self.moving_statistics_updates
            missing = [counter]
            if saved == len(variables) - 2:
                missing.append(self.use_population_statistics)
            kept = (v for v in variables if all(v is not m for m in missing))
            for i, variable in enumerate(kept):
                variable.assign(store[f"{i}"])
            counter.assign(moving.UNKNOWN_UPDATES)
        else:
            super().load_own_variables(store)
        if self.built:
            read = arguments.statistics_of(self.use_population_statistics)
            self._inference_statistics = read or self._inference_statistics

    def build(self, input_shape):
        rank = len(input_shape)
        axis, channels = arguments.channel_axis(self, input_shape)
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

        # Synchronized replicas compute the same bits of the global statistics
        # (`bn_zoo.layers.moments.all_reduce_moments`) and each writes its own
        # copy; otherwise the copies take the mean of the replicas' updates.
        aggregation = "none" if self.synchronized else "mean"

        def statistic(name, initializer):
            return self.add_weight(
                shape=shape,
                name=name,
                initializer=initializer,
                trainable=False,
                autocast=False,
                aggregation=aggregation,
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
            initializer=initializers.Constant(arguments.flag(self._inference_statistics)),
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
        )
        self.moving_statistics_updates = self.add_weight(
            shape=(),
            name="moving_statistics_updates",
            initializer="zeros",
            trainable=False,
            autocast=False,
            aggregation=aggregation,
        )
        if self.renorm:
            variance_initializer = self.moving_variance_initializer

            def stddev_initializer(shape, dtype=None):
                return ops.sqrt(variance_initializer(shape, dtype=dtype))

            self.renorm_mean = statistic("renorm_mean", self.moving_mean_initializer)
            self.renorm_stddev = statistic("renorm_stddev", stddev_initializer)
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={axis: channels}
        )
        self._channel_axis = axis
        self._reduction_axes = [i for i in range(rank) if i != axis]
        self._fused_format = fused.data_format(rank, axis)

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
            outputs = fused.inference(
                inputs, self.gamma, self.beta, mean, variance, self.epsilon,
                self._fused_format,
            )
            return ops.cast(outputs, self.compute_dtype)
        return self._normalize(inputs, mean, variance)

    def _inference_moments(self):
        """E[x], Var[x] chosen at run time by the `use_population_statistics`
        variable, so that switching needs no retrace of any function."""
        moving.warn_if_not_caught_up(self)
        use_population = ops.greater(self.use_population_statistics, 0.5)
        # Variables are read into tensors first: JAX's `where` refuses them.
        read = ops.convert_to_tensor
        return (
            ops.where(use_population, read(self.population_mean), read(self.moving_mean)),
            ops.where(
                use_population, read(self.population_variance), read(self.moving_variance)
            ),
        )

    def _use_fused(self, inputs, mask):
        return fused.applies(self._fused_format, inputs, mask, self.synchronized)

    def _call_training(self, inputs, mask):
        if self.virtual_batch_size is not None:
            outputs, mean, biased, count, stddev = training_lib.ghost_batches(
                self, inputs, mask
            )
            self._record_or_update(mean, biased, count, stddev)
            return outputs
        if self._use_fused(inputs, mask):
            count = training_lib.local_count(inputs, self._reduction_axes)
            outputs, mean, unbiased = fused.training(
                training_lib.to_float32(inputs), self._channel_axis, self.gamma,
                self.beta, self.epsilon, self._fused_format,
            )
            outputs = ops.cast(outputs, self.compute_dtype)
            biased = unbiased * ((count - 1.0) / count)
        else:
            outputs, mean, biased, count = training_lib.generic(self, inputs, mask)
        check = training_lib.count_check(self, inputs, count, mask)
        if check is not None:
            # Everything downstream (the loss, every gradient and every update
            # computed from them) waits for the check, so a refused step
            # writes nothing that depends on this layer's output.
            outputs, mean, biased, count = training_lib.after(
                check, [outputs, mean, biased, count]
            )
        if self.renorm:
            outputs = training_lib.renormalize(self, outputs, mean, biased)
        self._record_or_update(mean, biased, count)
        return outputs

    def _record_or_update(self, mean, biased, count, stddev=None):
        """Appends the step's statistics to an active `record_batch_statistics`
        recording, else updates the moving averages with them."""
        records = active_records()
        if records is not None:
            records.append((self, mean, biased, ops.convert_to_tensor(count, "float32")))
        else:
            moving.update(self, mean, biased, count, stddev)

    def _renorm_correction(self, mean, biased):
        """Batch Renormalization's (r, d) for batch moments of any shape that
        broadcasts with the channels (`bn_zoo.layers.renorm`)."""
        dtype = keras.backend.standardize_dtype(mean.dtype)
        step = ops.cast(ops.convert_to_tensor(self.moving_statistics_updates), dtype)
        return renorm_lib.correction(
            mean,
            ops.sqrt(biased + self.epsilon),
            ops.cast(ops.convert_to_tensor(self.renorm_mean), dtype),
            ops.cast(ops.convert_to_tensor(self.renorm_stddev), dtype),
            self.epsilon,
            self.renorm_clipping,
            step,
        )

    def _normalize(self, inputs, mean, variance):
        outputs = ops.batch_normalization(
            training_lib.to_float32(inputs),
            mean=mean,
            variance=variance,
            axis=self._channel_axis,
            offset=self.beta,
            scale=self.gamma,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

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
                "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum,
                "virtual_batch_size": self.virtual_batch_size,
                "zero_debias": self.zero_debias,
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

