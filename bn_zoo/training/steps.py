"""The compiled parts of the training loop: many steps per call, evaluation,
the activation probe of Figure 1(b, c).

`train_loop(iterator, n)` runs n training steps inside ONE `tf.function` (a
`tf.range` loop around `strategy.run`, as Keras' `steps_per_execution`), so
Python is entered once per n steps. Each replica computes the loss of its
share of the global batch divided by the GLOBAL batch size (and the
regularization divided by the number of replicas), so the gradients the Keras
optimizer sums across replicas are those of the mean loss over the global
batch, as on one device.

A run with a freeze schedule (`bn_zoo.training.freezing`) has two training
loops, one per phase: a layer's `trainable` flag is read when the step is
traced (which variables get gradients, whether BN runs in training mode), so
each phase is traced once with its own flags and never reuses the other's
trace. `train_loop(iterator, n, frozen)` picks the phase's loop.

Running sums (loss, correct predictions, examples) are kept in
sync-on-read variables: each replica adds to its own copy, a read in the
cross-replica context sums them.
"""

import keras
import numpy as np
import tensorflow as tf


def _sum_variable():
    return tf.Variable(
        0.0,
        trainable=False,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.SUM,
    )


class Sums:
    """Named sync-on-read running sums (create inside `strategy.scope()`)."""

    def __init__(self, *names):
        self._vars = {name: _sum_variable() for name in names}

    def add(self, **values):
        for name, value in values.items():
            self._vars[name].assign_add(tf.cast(value, tf.float32))

    def read_and_reset(self):
        values = {name: float(v.numpy()) for name, v in self._vars.items()}
        for v in self._vars.values():
            v.assign(0.0)
        return values


def _per_example_loss(labels, logits, label_smoothing):
    if label_smoothing:
        one_hot = tf.one_hot(labels, tf.shape(logits)[-1])
        return keras.losses.categorical_crossentropy(
            one_hot, logits, from_logits=True, label_smoothing=label_smoothing
        )
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


class Steps:
    """The `tf.function`s of one run.

    Args:
        config: The resolved config.
        strategy: The `tf.distribute` strategy the model was built under.
        model: The Keras model (logits output).
        optimizer: The Keras optimizer (possibly a LossScaleOptimizer).
    """

    def __init__(self, config, strategy, model, optimizer):
        self.config = config
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        with strategy.scope():
            self.train_sums = Sums("loss", "correct", "count")
            self.eval_sums = Sums("loss", "correct", "top5", "count")
        self._loss_scale = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        # L2 weight decay as a loss term, unless the optimizer decays (adamw).
        self._l2 = config.optimizer.weight_decay if config.optimizer.name != "adamw" else 0.0
        self._loops = {}

        # Evaluation reads the BN layers' inference statistics at run time, so
        # this one trace serves the moving and the population statistics.
        @tf.function
        def eval_loop(dataset):
            for batch in dataset:
                strategy.run(self._eval_step, args=batch)

        self._eval_loop = eval_loop

    def _make_train_loop(self, frozen):
        strategy = self.strategy
        step_fn = self._train_step
        if self.config.jit_compile:
            step_fn = tf.function(step_fn, jit_compile=True)

        # Two definitions, not one: TensorFlow counts the traces of a Python
        # function across its tf.functions, and each phase traces once.
        @tf.function
        def train_loop(iterator, num_steps):
            for _ in tf.range(num_steps):
                strategy.run(step_fn, args=next(iterator))

        @tf.function
        def frozen_train_loop(iterator, num_steps):
            for _ in tf.range(num_steps):
                strategy.run(step_fn, args=next(iterator))

        return frozen_train_loop if frozen else train_loop

    def train_loop(self, iterator, num_steps, frozen=False):
        """Runs `num_steps` (a scalar tensor) training steps; `frozen` picks
        the loop of a frozen phase (the model's `trainable` flags must be
        set for it: `freezing.Schedule.apply`)."""
        if frozen not in self._loops:
            self._loops[frozen] = self._make_train_loop(frozen)
        self._loops[frozen](iterator, num_steps)

    def _train_step(self, images, labels):
        config = self.config
        replicas = self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables  # Read when traced: this phase's.
        kernels = [v for v in variables if v.path.endswith("kernel")]
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(images, training=True), tf.float32)
            per_example = _per_example_loss(labels, logits, config.label_smoothing)
            loss = tf.reduce_sum(per_example) / config.global_batch_size
            regularization = [tf.cast(l, tf.float32) for l in self.model.losses]
            decay = self._l2
            if decay and kernels:
                regularization.append(
                    decay * tf.add_n([tf.nn.l2_loss(tf.cast(k, tf.float32)) for k in kernels])
                )
            if regularization:
                loss += tf.add_n(regularization) / replicas
            if self._loss_scale:
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        correct = tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels)
        self.train_sums.add(
            loss=tf.reduce_sum(per_example),
            correct=tf.reduce_sum(tf.cast(correct, tf.float32)),
            count=tf.shape(labels)[0],
        )

    def _eval_step(self, images, labels, weights=None):
        # With uneven inputs (a partial last evaluation batch, or workers with
        # different numbers of batches) a replica's share can be empty, and
        # TF's CPU kernel of SeparableConv2D rejects an empty batch.
        logits = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(self.model(images, training=False), tf.float32),
            lambda: tf.zeros([0, self.model.output_shape[-1]], tf.float32),
        )
        if weights is None:
            weights = tf.ones(tf.shape(labels), tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels)
        k = min(5, logits.shape[-1])
        top5 = tf.math.in_top_k(tf.cast(labels, tf.int32), logits, k)
        self.eval_sums.add(
            loss=tf.reduce_sum(weights * per_example),
            correct=tf.reduce_sum(weights * tf.cast(correct, tf.float32)),
            top5=tf.reduce_sum(weights * tf.cast(top5, tf.float32)),
            count=tf.reduce_sum(weights),
        )


    def evaluate(self, dataset):
        """Loss, top-1 and top-5 accuracy over a distributed eval dataset."""
        self.eval_sums.read_and_reset()
        self._eval_loop(dataset)
        sums = self.eval_sums.read_and_reset()
        count = max(sums["count"], 1.0)
        return {
            "eval_loss": sums["loss"] / count,
            "eval_accuracy": sums["correct"] / count,
            "eval_top5_accuracy": sums["top5"] / count,
        }

    @tf.function
    def weights_finite(self):
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in self.model.weights])


class Probe:
    """Percentiles of unit `unit` of the input of `layer` over fixed examples.

    This is Figure 1(b, c): "the evolution of input distributions to a typical
    sigmoid, over the course of training, shown as {15, 50, 85}th
    percentiles" (Section 4.1). The model runs in inference mode.
    """

    def __init__(self, model, layer, unit, percentiles, examples):
        from bn_zoo.training.errors import ConfigError

        try:
            target = model.get_layer(layer)
        except ValueError as error:
            raise ConfigError(
                f"config.probe.layer={layer!r} is not a layer of {model.name!r}. "
                f"Its layers: {', '.join(l.name for l in model.layers)}."
            ) from error
        width = target.input.shape[-1]
        if unit >= width:
            raise ConfigError(
                f"config.probe.unit={unit} is out of range: the input of {layer!r} "
                f"has {width} units."
            )
        self.percentiles = tuple(percentiles)
        self._model = keras.Model(model.inputs, target.input)
        self._unit = unit
        self._examples = examples

    @property
    def columns(self):
        return [column_name(p) for p in self.percentiles]

    @tf.function
    def _values(self):
        values = self._model(self._examples, training=False)
        return tf.reshape(tf.cast(values[..., self._unit], tf.float32), [-1])

    def __call__(self):
        values = self._values().numpy()
        return dict(zip(self.columns, np.percentile(values, self.percentiles).tolist()))


def column_name(percentile):
    """Metrics column of a probe percentile: 15 -> 'probe_p15'."""
    return f"probe_p{percentile:g}"
