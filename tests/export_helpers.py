"""The small Inception networks that tests/test_export.py (SavedModel) and
tests/test_export_formats.py (ONNX, LiteRT) export and check against Keras.

`inception(name, seed, cache_dir)` builds one with non-trivial BN maps. Both
modules build the same four networks; the first to build one saves its
weights in `cache_dir` (a directory of this pytest session, so never stale)
and the other loads them, under a file lock, instead of estimating the
population statistics again.
"""

import fcntl
import os

import keras
import numpy as np

from bn_zoo import models, population
from bn_zoo.layers import BatchNormalization

# bn_x5 and bn_x30 build the bn_inception network (only their registered
# recipes differ; tests/test_models_inception.py checks that), so exporting
# them would repeat bn_inception's exports.
INCEPTION_VARIANTS = ("inception", "bn_baseline", "bn_inception", "bn_x5_sigmoid")
SIZE, CLASSES = 32, 10


def bn_layers(model):
    types = (BatchNormalization, keras.layers.BatchNormalization)
    return [layer for layer in model.layers if isinstance(layer, types)]


def perturb_affine(model, rng):
    """γ scaled by U(0.7, 1.4), β shifted by N(0, 0.2), per channel."""
    for layer in bn_layers(model):
        n = layer.gamma.shape[0]
        layer.gamma.assign(layer.gamma.numpy() * rng.uniform(0.7, 1.4, n).astype("float32"))
        layer.beta.assign(layer.beta.numpy() + rng.normal(0.0, 0.2, n).astype("float32"))


def cache_dir(tmp_path_factory):
    """A directory shared by the pytest-xdist workers of this session."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base
    path = root / "export_helpers_cache"
    path.mkdir(exist_ok=True)
    return path


def inception(name, seed, cache=None):
    """A small Inception variant (depth multiplier 0.25, SIZE², CLASSES)
    with non-trivial BN maps: γ, β perturbed, then population statistics
    estimated from two random batches (so that activations stay normalized
    and the logits O(1)); the BN-x5-sigmoid one then selects moving
    averages set 10-25% away from them. `inception` (no BN) gets its head
    scaled so that its near-zero logits are O(1).

    With `cache` (see `cache_dir`), the weights are built once per session."""
    keras.utils.set_random_seed(seed)
    model = models.create_model(
        name, input_shape=(SIZE, SIZE, 3), depth_multiplier=0.25, classes=CLASSES,
        weights=None,
    )
    if cache is None:
        return _randomize(model, name, seed)
    weights = cache / f"{name}-{seed}.weights.h5"
    with open(cache / f"{name}-{seed}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if weights.exists():
            model.load_weights(str(weights))
            if bn_layers(model):
                population.set_inference_statistics(
                    model, "moving" if name == "bn_x5_sigmoid" else "population")
            return model
        _randomize(model, name, seed)
        temporary = cache / f".{name}-{seed}-{os.getpid()}.weights.h5"
        model.save_weights(str(temporary))
        os.replace(temporary, weights)
    return model


def _randomize(model, name, seed):
    rng = np.random.default_rng(seed)
    layers = bn_layers(model)
    if not layers:  # The baseline: make its near-zero logits O(1).
        head = model.get_layer("predictions")
        head.kernel.assign(head.kernel.numpy() * 100.0)
        return model
    perturb_affine(model, rng)
    batches = [rng.uniform(-1, 1, (8, SIZE, SIZE, 3)).astype("float32") for _ in range(2)]
    population.estimate(model, batches, num_batches=2)
    if name == "bn_x5_sigmoid":
        for layer in layers:
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(
                layer.population_mean.numpy() * rng.uniform(0.9, 1.1, n).astype("float32"))
            layer.moving_variance.assign(
                layer.population_variance.numpy() * rng.uniform(0.8, 1.25, n).astype("float32"))
        population.set_inference_statistics(model, "moving")
    return model
