"""Population statistics for inference (the paper's Algorithm 2, steps 8-10).

After training, the inference network normalizes with fixed statistics of the
whole population. The paper estimates them from training mini-batches B of
size m (m' = m·p·q for convolutions) run through the *training* network:

    E[x]   ← E_B[μ_B]
    Var[x] ← m'/(m'−1) · E_B[σ²_B]

`estimate` does exactly that for every `bn_zoo.layers.BatchNormalization` in a
model, without changing any trainable weight or moving average. It takes the
data `model.fit` takes (arrays with a `batch_size`, `tf.data.Dataset`,
`keras.utils.PyDataset`, generators), each handled explicitly here.
`bn_zoo.callbacks.PopulationStatistics` runs it inside `fit`.
"""

import contextlib
import itertools
import sys
import types
import weakref

import keras
import numpy as np

from bn_zoo import population_checks
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


def estimate(model, data, num_batches=None, activate=True, *, batch_size=None,
             shuffle=True, include_frozen=False):
    """Sets every BN layer's population statistics from training mini-batches.

    Each batch goes through `model` in training mode, so every layer sees the
    inputs it saw in training (the paper's N_BN^tr), but no trainable weight
    and no moving average is updated. For each layer, over the batches B:

        population_mean     = mean over B of μ_B
        population_variance = mean over B of m'_B/(m'_B − 1) · σ²_B

    (with `variance_correction="biased"` the factor is 1). Every batch counts
    once, whatever its size (a last, smaller batch of an epoch too).

    Args:
        model: A built Keras model (or layer) containing bn_zoo BN layers.
        data: The training data, in any form `model.fit` takes as `x`:
            - NumPy arrays or tensors (a list or dict of them for several
              inputs), batched here with `batch_size`; a tuple `(x, y)` or
              `(x, y, sample_weight)` of them, as `fit`'s `validation_data`;
            - a `tf.data.Dataset` of batches. An unbatched one (elements
              one example each, as `from_tensor_slices(x)` gives) is batched
              with `batch_size`, or refused without it;
            - a `keras.utils.PyDataset`, a Python generator, a torch
              `DataLoader`;
            - with `batch_size=None`, also a list (a list of batches, not
              of inputs) or any other iterable of batches.
            A batch is an input, or an `(x, y)` / `(x, y, sample_weight)`
            tuple whose labels and weights are ignored. Batches should be
            training mini-batches of the training size m, preprocessed as in
            training.
        num_batches: How many batches to average over (> 0). None (default):
            one pass over finite data (`ceil(len(x) / batch_size)` batches of
            arrays); endless data (a repeated dataset, an infinite PyDataset)
            needs a number. With a number, the data must yield at least that
            many batches.
        activate: If True, every updated layer then uses the population
            statistics in inference (`inference_statistics="population"`),
            in every function already traced too.
        batch_size: The training mini-batch size m, for arrays and unbatched
            datasets (required for them).
        shuffle: For arrays: draw the batches from a random permutation, as
            `fit` does (Algorithm 2 averages over training mini-batches).
            Ignored for other data, which comes already batched.
        include_frozen: Layers frozen with `trainable=False` run in inference
            mode and are left unchanged, unless this is True: they are then
            run in training mode for the estimate (as if unfrozen) and get
            population statistics too. Their `trainable` stays False.

    Returns:
        The number of layers updated.

    Raises:
        TypeError, ValueError: `num_batches` or `batch_size` is not a positive
            integer; arrays or an unbatched dataset without `batch_size`;
            endless data without `num_batches`; data that runs out before
            `num_batches`; a model with no BN layer to estimate (or only
            frozen ones, without `include_frozen`); a distributed dataset
            (pass the plain one) or batches that do not fit the model's
            inputs (`bn_zoo.population_checks`). Nothing is changed.
    """
    num_batches = _check_positive("num_batches", num_batches)
    batch_size = _check_positive("batch_size", batch_size)
    layers = _layers_to_estimate(model, include_frozen)
    frozen = [layer for layer in layers if not layer.trainable]
    population_checks.check_not_distributed(data)
    batches, endless = _batches(model, data, batch_size, shuffle)
    if num_batches is None and endless:
        raise ValueError(
            "The data is endless (a repeated tf.data.Dataset or an infinite "
            "PyDataset), so one pass over it never ends. Pass `num_batches=`: how "
            "many training batches to average over."
        )
    with _training_mode(frozen):
        sums, calls, seen = _accumulate(model, layers, batches, num_batches)
    if num_batches is not None and seen < num_batches:
        raise ValueError(
            f"The data ran out after {seen} batches; `num_batches={num_batches}` "
            "asks for more. Pass a repeated dataset or a smaller num_batches."
        )
    if not seen:
        raise ValueError("The data yielded no batch: there is nothing to estimate from.")
    updated = 0
    for layer, total, n in zip(layers, sums, calls):
        if not n:
            continue
        # float64 sums, stored in the statistics' own dtype (float64 in a
        # float64 layer, float32 under float32 and mixed precision).
        dtype = keras.backend.standardize_dtype(layer.population_mean.dtype)
        layer.population_mean.assign((total[0] / n).astype(dtype))
        layer.population_variance.assign((total[1] / n).astype(dtype))
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


# ------------------------------------------------------------------ helpers
def _check_positive(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer; received {value!r}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0; received {value}.")
    return int(value)


def _layers_to_estimate(model, include_frozen):
    all_layers = batch_normalization_layers(model)
    layers = [l for l in all_layers if include_frozen or l.trainable]
    if not layers:
        if all_layers:
            raise ValueError(
                f"Every bn_zoo BatchNormalization layer of '{model.name}' is frozen "
                "(trainable=False), and frozen layers are left unchanged. Pass "
                "`include_frozen=True` to estimate their population statistics too."
            )
        raise ValueError(
            "The model has no trainable bn_zoo.layers.BatchNormalization layer, so "
            "there are no population statistics to estimate."
        )
    return layers


@contextlib.contextmanager
def _training_mode(frozen):
    """Lets the frozen layers normalize with batch statistics in training mode
    (the layer tests `self.trainable`), then freezes them exactly as before."""
    saved = [(layer, [(v, v.trainable) for v in layer.weights]) for layer in frozen]
    for layer in frozen:
        layer.trainable = True
    try:
        yield
    finally:
        for layer, flags in saved:
            layer.trainable = False
            for variable, trainable in flags:
                variable.trainable = trainable


def _accumulate(model, layers, batches, num_batches):
    """Sums of the (mean, corrected variance) per layer over the batches, in
    float64 whatever the layers' dtype."""
    index = {id(layer): i for i, layer in enumerate(layers)}
    step = _cached_batch_statistics_fn(model)
    sums = [None] * len(layers)
    calls = [0] * len(layers)
    seen = 0
    for batch in batches:
        x = keras.utils.unpack_x_y_sample_weight(batch)[0] if isinstance(
            batch, (tuple, list)) else batch
        population_checks.check_batch(model, x, seen + 1)
        try:
            statistics = step(x)
        except (ValueError, TypeError) as error:
            raise population_checks.call_error(model, x, seen + 1, error) from error
        for layer_id, mean, variance, count in zip(*statistics):
            i = index.get(int(layer_id))
            if i is None:
                continue
            layer = layers[i]
            mean = keras.ops.convert_to_numpy(mean).astype(np.float64)
            variance = keras.ops.convert_to_numpy(variance).astype(np.float64)
            count = float(keras.ops.convert_to_numpy(count))
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
    return sums, calls, seen


def _batches(model, data, batch_size, shuffle):
    """(an iterable of batches, whether it is endless), for each form of
    `data` that `estimate` takes."""
    tf = sys.modules.get("tensorflow")  # A tf.data.Dataset exists only if it is imported.
    if tf is not None and isinstance(data, tf.data.Dataset):
        data = _batched_dataset(model, data, batch_size)
        endless = int(data.cardinality()) == tf.data.INFINITE_CARDINALITY
        if keras.backend.backend() != "tensorflow":
            return data.as_numpy_iterator(), endless
        return data, endless
    if isinstance(data, list) and batch_size is None:
        return data, False  # A list of batches.
    if _is_arrays(data):
        if batch_size is None:
            raise ValueError(
                "Arrays need `batch_size=`: the training mini-batch size m the "
                "statistics are averaged over (Algorithm 2 runs training "
                "mini-batches through the training network)."
            )
        return _array_batches(data, batch_size, shuffle), False
    if isinstance(data, keras.utils.PyDataset):
        return _py_dataset_batches(data), data.num_batches is None
    if isinstance(data, types.GeneratorType) or _is_torch_dataloader(data):
        return _backend_batches(data), False
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"`data` must be arrays, a tf.data.Dataset, a PyDataset, a generator "
            f"or an iterable of batches; received {type(data).__name__}."
        )
    # Any other iterable of batches (an iterator...; a distributed dataset
    # was refused above).
    return data, False


def _is_arrays(data):
    """Whether `data` is an array (NumPy, a tensor of any backend, pandas) or
    a non-empty list, tuple or dict of them."""
    if isinstance(data, (list, tuple, dict)) and not data:
        return False
    leaves = keras.tree.flatten(data)
    return bool(leaves) and all(leaf is None or hasattr(leaf, "__array__") for leaf in leaves)


def _to_numpy(array):
    """A NumPy array of `array`; floats of another width than Keras' floatx
    become floatx (as `fit` feeds arrays)."""
    if array is None:
        return None
    if hasattr(array, "detach"):  # A torch tensor (maybe requiring grad, or on a GPU).
        array = array.detach().cpu()
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.dtype(keras.config.floatx()):
        array = array.astype(keras.config.floatx())
    return array


def _array_batches(data, batch_size, shuffle):
    """One pass over arrays `data` (x, or an (x, y[, sample_weight]) tuple)
    in batches of `batch_size` examples (the last one smaller), in a random
    order if `shuffle`. Each batch is `(x_batch,)`: labels are not needed."""
    x = data
    if isinstance(data, tuple) and len(data) in (2, 3):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        _check_examples(x, y, sample_weight)
    else:
        _check_examples(x)
    x = keras.tree.map_structure(_to_numpy, x)
    count = len(next(leaf for leaf in keras.tree.flatten(x) if leaf is not None))
    order = np.random.permutation(count) if shuffle else None

    def batches():
        for start in range(0, count, batch_size):
            rows = (slice(start, start + batch_size) if order is None
                    else order[start:start + batch_size])
            yield (keras.tree.map_structure(
                lambda a: None if a is None else a[rows], x),)

    return batches()


def _check_examples(*structures):
    counts = {len(leaf) for structure in structures if structure is not None
              for leaf in keras.tree.flatten(structure) if leaf is not None}
    if len(counts) > 1:
        raise ValueError(
            "The arrays hold different numbers of examples "
            f"({', '.join(str(c) for c in sorted(counts))}): x, y and sample_weight "
            "must have one row per example.")


def _py_dataset_batches(data):
    """The batches of a `keras.utils.PyDataset`, in index order, read in this
    process (an infinite one, `num_batches` None, without end)."""
    count = data.num_batches
    for index in itertools.count() if count is None else range(count):
        yield data[index]


def _is_torch_dataloader(data):
    torch = sys.modules.get("torch")  # A DataLoader exists only if torch is imported.
    return torch is not None and isinstance(data, torch.utils.data.DataLoader)


def _backend_batches(batches):
    """`batches` as they come on the PyTorch backend; elsewhere with torch
    tensors turned into NumPy arrays."""
    if keras.backend.backend() == "torch":
        yield from batches
        return
    for batch in batches:
        yield keras.tree.map_structure(
            lambda leaf: leaf.detach().cpu().numpy() if hasattr(leaf, "detach") else leaf,
            batch)


def _batched_dataset(model, dataset, batch_size):
    """`dataset`, batched with `batch_size` if its elements are single
    examples of the model's (single) input; a clear error without it."""
    try:
        inputs = model.inputs if isinstance(model, keras.Model) else None
    except (AttributeError, ValueError):  # A subclassed or unbuilt model.
        inputs = None
    if not inputs or len(inputs) != 1:
        return dataset
    spec = dataset.element_spec
    if isinstance(spec, (tuple, list)):
        spec = spec[0]
    shape = getattr(spec, "shape", None)
    if shape is None or shape.rank is None or shape.rank != len(inputs[0].shape) - 1:
        return dataset
    if batch_size is None:
        raise ValueError(
            f"The dataset is not batched: its elements have shape {tuple(shape)}, one "
            f"example of the model's input {tuple(inputs[0].shape)}. Pass "
            "`batch_size=` (the training mini-batch size m), or batch it with "
            "`dataset.batch(m)`."
        )
    return dataset.batch(batch_size)


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

    backend = keras.backend.backend()
    if backend != "tensorflow":
        no_grad = contextlib.nullcontext
        if backend == "torch":
            import torch

            no_grad = torch.no_grad

        def step(batch):
            with no_grad():
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
