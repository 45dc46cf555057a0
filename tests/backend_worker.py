"""The JAX / PyTorch side of tests/test_backends.py, run in a fresh process.

    KERAS_BACKEND=jax python tests/backend_worker.py DIR

DIR holds what the TensorFlow parent wrote: `inputs.npz` (the arrays and the
models' tiny factory arguments) and one `<model>.weights.h5` per model. For
every registered model the worker loads those weights, predicts and runs
one training step with `fit`; for some (`ESTIMATE`, `ROUND_TRIP`) it also
estimates the population statistics and saves and reloads a `.keras` file; it writes every value it saw to `DIR/<backend>.npz` (and the
files to DIR) for the parent to check against numpy and TensorFlow. It
asserts nothing itself.
"""

import json
import os
import sys

import keras
import numpy as np

import bn_zoo
from bn_zoo import population
from bn_zoo.layers import BatchNormalization
from bn_zoo.models import lrn
from bn_zoo.models import weights as weights_lib


def numpy_of(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def first_bn_input(model):
    """The input of the first BN layer, a probe through Keras' own layers
    (no BN runs before it)."""
    first = population.batch_normalization_layers(model)[0]
    return keras.Model(model.input, first.input)


# Every model predicts and trains; these also estimate population statistics
# and round-trip through a .keras file. Together they hold every layer type
# (Dense, Conv2D, the separable stem, BN, LRN, pooling, dropout); bn_inception,
# bn_x5 and bn_x30 share one architecture.
ESTIMATE = ("bn_mlp", "bn_baseline", "bn_x5")
ROUND_TRIP = ("mlp", "bn_mlp", "inception", "bn_baseline")


def check_model(name, kwargs, data, out, results):
    model = bn_zoo.create_model(name, **kwargs)
    model.load_weights(os.path.join(out, f"{name}.weights.h5"))
    # Compiled functions for the small MLPs; the Inception models run
    # eagerly, where compiling ten modules would cost more than the step.
    eager = name not in ("mlp", "bn_mlp")
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
                  run_eagerly=eager)
    x, y = data[f"{name}/x"], data[f"{name}/y"]
    results[f"{name}/predict"] = model.predict(x, batch_size=len(x), verbose=0)
    layers = population.batch_normalization_layers(model)
    if layers:
        first = layers[0]
        results[f"{name}/first_bn"] = json.dumps({
            "mean": first.moving_mean.path, "variance": first.moving_variance.path,
            "momentum": first.momentum, "layers": len(layers)})
        results[f"{name}/bn_input_before"] = numpy_of(first_bn_input(model)(x))
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for w in model.weights:
        results[f"{name}/after_fit/{w.path}"] = numpy_of(w)
    if name in ESTIMATE:
        # Two batches of the training shape (on JAX, new shapes would cost
        # compilations).
        batches = [x, data[f"{name}/x2"]]
        results[f"{name}/bn_input_batches"] = np.stack(
            [numpy_of(first_bn_input(model)(b)) for b in batches])
        results[f"{name}/estimated"] = population.estimate(model, batches, 2)
        results[f"{name}/population_mean"] = numpy_of(first.population_mean)
        results[f"{name}/population_variance"] = numpy_of(first.population_variance)
    if name in ROUND_TRIP:
        results[f"{name}/predict_after"] = model.predict(x, batch_size=len(x), verbose=0)
        path = os.path.join(out, f"{name}.{keras.backend.backend()}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        results[f"{name}/reloaded_predict"] = loaded.predict(x, batch_size=len(x),
                                                             verbose=0)


def main(out):
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(1)  # Tiny tensors, 2 shared cores: threads only cost.
    data = dict(np.load(os.path.join(out, "inputs.npz")))
    kwargs = json.loads(str(data.pop("kwargs")))
    weights_lib.CACHE_DIR = os.path.join(out, f"cache_{backend}")
    results = {}
    for name in bn_zoo.list_models():
        check_model(name, kwargs[name], data, out, results)
    for name in ("mlp", "bn_mlp"):
        model = bn_zoo.create_model(name, weights="mnist")
        results[f"mnist/{name}"] = model.predict(data["mnist"], batch_size=64, verbose=0)
    results["lrn"] = numpy_of(lrn.LocalResponseNormalization(**json.loads(
        str(data["lrn_kwargs"])))(data["lrn_x"]))
    results["lrn_function"] = numpy_of(lrn.local_response_normalization(
        data["lrn_x"], **json.loads(str(data["lrn_kwargs"]))))
    errors = {}
    try:
        BatchNormalization(synchronized=True)
    except ValueError as error:
        errors["synchronized"] = str(error)
    try:
        from bn_zoo import training

        training.train(training.default_config(), os.path.join(out, f"workdir_{backend}"))
    except training.ConfigError as error:
        errors["trainer"] = str(error)
    errors["workdir_created"] = os.path.exists(os.path.join(out, f"workdir_{backend}"))
    results["errors"] = json.dumps(errors)
    np.savez(os.path.join(out, f"{backend}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
