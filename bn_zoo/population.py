"""Population statistics for inference (the paper's Algorithm 2, steps 8-10).

After training, the inference network normalizes with fixed statistics of the
whole population. The paper estimates them from training mini-batches B of
size m (m' = m·p·q for convolutions) run through the *training* network:

    E[x]   ← E_B[μ_B]
    Var[x] ← m'/(m'−1) · E_B[σ²_B]

`estimate` does exactly that for every `bn_zoo.layers.BatchNormalization` in a
model, without changing any trainable weight or moving average.
"""

import weakref

import keras
import numpy as np

from bn_zoo.layers.batch_normalization import (
    INFERENCE_STATISTICS,
    BatchNormalization,
    record_batch_statistics,
)


def batch_normalization_layers(model):
    """Every bn_zoo `BatchNormalization` layer in `model`, nested ones included."""
    if isinstance(model, BatchNormalization):
        return [model]
    return [l for l in model._flatten_layers() if isinstance(l, BatchNormalization)]


def estimate(model, dataset, num_batches, activate=True):
    """Sets every BN layer's population statistics from training mini-batches.

    Each batch goes through `model` in training mode, so every layer sees the
    inputs it saw in training (the paper's N_BN^tr), but no trainable weight
    and no moving average is updated. For each layer, over the batches B:

        population_mean     = mean over B of μ_B
        population_variance = mean over B of m'_B/(m'_B − 1) · σ²_B

    (with `variance_correction="biased"` the factor is 1). Layers frozen with
    `trainable=False` run in inference mode and are left unchanged.

    Args:
        model: A built Keras model (or layer) containing bn_zoo BN layers.
        dataset: A `tf.data.Dataset` or any iterable of batches. A batch is an
            input tensor, or a tuple/list whose first element is the input.
            Batches should be training mini-batches of the training size m.
        num_batches: How many batches to average over (> 0). The dataset must
            yield at least this many.
        activate: If True, every updated layer then uses the population
            statistics in inference (`inference_statistics="population"`),
            in every function already traced too.

    Returns:
        The number of layers updated.
    """
    if isinstance(num_batches, bool) or not isinstance(num_batches, (int, np.integer)):
        raise TypeError(f"`num_batches` must be an integer; received {num_batches!r}.")
    if num_batches <= 0:
        raise ValueError(f"`num_batches` must be > 0; received {num_batches}.")
    layers = [l for l in batch_normalization_layers(model) if l.trainable]
    if not layers:
        raise ValueError(
            "The model has no trainable bn_zoo.layers.BatchNormalization layer, so "
            "there are no population statistics to estimate."
        )
    index = {id(layer): i for i, layer in enumerate(layers)}
    step = _cached_batch_statistics_fn(model)
    sums = [None] * len(layers)
    calls = [0] * len(layers)
    seen = 0
    for batch in dataset:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        for layer_id, mean, variance, count in zip(*step(batch)):
            i = index.get(int(layer_id))
            if i is None:
                continue
            layer = layers[i]
            mean = np.asarray(mean, np.float64)
            variance = np.asarray(variance, np.float64)
            count = float(count)
            if layer.variance_correction == "unbiased":
                if count <= 1:
                    raise ValueError(
                        f"Layer '{layer.name}' saw m' = {count:g} values per channel: "
                        "the unbiased variance needs batches of more than one value."
                    )
                variance = variance * count / (count - 1.0)
            if sums[i] is None:
                sums[i] = [mean, variance]
            else:
                sums[i][0] += mean
                sums[i][1] += variance
            calls[i] += 1
        seen += 1
        if seen == num_batches:
            break
    if seen < num_batches:
        raise ValueError(
            f"The dataset ran out after {seen} batches; `num_batches={num_batches}` "
            "asks for more. Pass a repeated dataset or a smaller num_batches."
        )
    updated = 0
    for layer, total, n in zip(layers, sums, calls):
        if not n:
            continue
        layer.population_mean.assign((total[0] / n).astype("float32"))
        layer.population_variance.assign((total[1] / n).astype("float32"))
        if activate:
            layer.inference_statistics = "population"
        updated += 1
    return updated


def set_inference_statistics(model, statistics):
    """Chooses `"moving"` or `"population"` statistics for every BN layer of
    `model`. The choice is a variable read at run time, so it takes effect in
    `predict`, `evaluate` and any traced function without retracing."""
    if statistics not in INFERENCE_STATISTICS:
        raise ValueError(
            f"`statistics` must be one of {INFERENCE_STATISTICS}; received {statistics!r}."
        )
    for layer in batch_normalization_layers(model):
        layer.inference_statistics = statistics


# model -> (which BN layers train, its batch-statistics function): repeated
# estimates on one model reuse one traced function instead of retracing.
_STEP_CACHE = weakref.WeakKeyDictionary()


def _cached_batch_statistics_fn(model):
    key = tuple((id(layer), layer.trainable) for layer in batch_normalization_layers(model))
    cached = _STEP_CACHE.get(model)
    if cached is None or cached[0] != key:
        cached = (key, _batch_statistics_fn(model))
        _STEP_CACHE[model] = cached
    return cached[1]


def _batch_statistics_fn(model):
    """A function from an input batch to the (layer ids, means, biased
    variances, counts) that every training-mode BN call saw."""

    def collect(batch):
        with record_batch_statistics() as records:
            model(batch, training=True)
        ids = [id(r[0]) for r in records]
        return records, ids

    if keras.backend.backend() != "tensorflow":

        def step(batch):
            records, ids = collect(batch)
            return ids, [r[1] for r in records], [r[2] for r in records], [
                r[3] for r in records
            ]

        return step
    import tensorflow as tf

    traced_ids = []

    @tf.function(reduce_retracing=True)
    def graph_step(batch):
        records, ids = collect(batch)
        traced_ids[:] = ids
        return [r[1] for r in records], [r[2] for r in records], [r[3] for r in records]

    def step(batch):
        means, variances, counts = graph_step(batch)
        return traced_ids, means, variances, counts

    return step
