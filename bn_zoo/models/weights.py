"""Registered weights and safe weight loading for the model zoo.

`weights=` of every factory is `None`, a path to a `.weights.h5` file, or the
name of a registered file. Registered files are fetched with
`keras.utils.get_file` into the Keras cache and verified by sha256, so a file
that is corrupted, truncated or replaced is refused. Files shipped inside the
package (`bn_zoo/weights/`) are registered with a `file://` origin, which
`get_file` copies into the cache like any download.

To register a file, add ONE entry to `WEIGHTS` below, e.g.

    ("mlp", "mnist"): shipped("mlp_mnist.weights.h5", sha256="...", classes=10),

`sha256sum bn_zoo/weights/mlp_mnist.weights.h5` gives the hash.
"""

import dataclasses
import hashlib
import os
import pathlib
import tempfile
import uuid

import h5py
import keras
from keras.src.utils import naming

WEIGHTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "weights"
# Keras cache directory for registered weights; None means `~/.keras` (or
# `$KERAS_HOME`). Tests point it at a temporary directory.
CACHE_DIR = None
CACHE_SUBDIR = "models/bn_zoo"
WEIGHTS_SUFFIX = ".weights.h5"


@dataclasses.dataclass(frozen=True)
class RegisteredWeights:
    """One registered weights file.

    Attributes:
        file_name: Name of the file in the Keras cache.
        origin: URL (`https://...` or `file://...`) to fetch it from.
        sha256: Expected sha256 hex digest of the file.
        classes: Number of classes of the classifier the weights were saved
            with (`include_top=True` must use this many).
        description: What the weights are (data, recipe, accuracy).
        inference_statistics: The BN statistics ("moving" or "population")
            the weights are served with, unless the caller chooses with
            `batch_norm_kwargs={"inference_statistics": ...}`; None leaves the
            layers' own choice.
        preprocessing: The `preprocess_input` mode the weights expect; None
            means the model's (`model_info(name).preprocessing`).
        model_kwargs: Factory arguments the weights need (e.g. the
            architecture variant); arguments that differ are refused.
        release: None for a ready `.weights.h5` file; "slim" or
            "caffe_torch" for a public release converted on first use
            (`bn_zoo.convert`), whose `sha256` is then None.
        release_classes: Classes of the release's own classifier when it
            differs from `classes` (slim's 1001, class 0 = background), also
            accepted as `classes` with include_top=True.
        source: Who released the weights, and under what license.
        reported_accuracy: The release's own ImageNet validation figures,
            {"top1": fraction, "top5": fraction, "protocol": text}.
        verified: What bn_zoo checked about the conversion, and how.
    """

    file_name: str
    origin: str
    sha256: str
    classes: int
    description: str = ""
    inference_statistics: str = None
    preprocessing: str = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    release: str = None
    release_classes: int = None
    source: str = ""
    reported_accuracy: dict = dataclasses.field(default_factory=dict)
    verified: str = ""

    @property
    def accepted_classes(self):
        """The class counts `include_top=True` may use with these weights."""
        return tuple(c for c in (self.classes, self.release_classes) if c is not None)


def shipped(file_name, sha256, classes, **fields):
    """A `RegisteredWeights` for a file shipped in `bn_zoo/weights/`."""
    return RegisteredWeights(
        file_name=file_name,
        origin=(WEIGHTS_DIR / file_name).as_uri(),
        sha256=sha256,
        classes=classes,
        **fields,
    )


_MNIST_SOURCE = "trained by bn_zoo (`python -m trainers.figure1`), shipped in the package"
_MNIST_CHECK = ("tests/test_mnist_weights.py: sha256 on load, and the accuracy on the "
                "real MNIST test set")


# (registered model name, weights name) -> RegisteredWeights. The one table.
WEIGHTS = {
    ("mlp", "mnist"): shipped(
        "mlp_mnist.weights.h5",
        sha256="2c6b32f88a3e6d251420c191fa3b58e0784c788473588bb31a1b361fac6eaca7",
        classes=10,
        description="Section 4.1 baseline, trained by `python -m trainers.figure1` "
        "(50,000 steps of batch 60, the registry recipe): 97.55% MNIST test accuracy.",
        source=_MNIST_SOURCE,
        reported_accuracy={"top1": 0.9755, "protocol": "MNIST test set"},
        verified=_MNIST_CHECK,
    ),
    ("bn_mlp", "mnist"): shipped(
        "bn_mlp_mnist.weights.h5",
        sha256="b9189cdd8fa7b19336c381e66dba71fe3d32f422b55ff0aa34aaea20b1d41f2c",
        classes=10,
        description="Section 4.1 BN network, trained by `python -m trainers.figure1`, "
        "served with Algorithm 2's population statistics over the training set "
        "(98.15% MNIST test accuracy); 98.14% with the moving averages, "
        "batch_norm_kwargs={'inference_statistics': 'moving'}.",
        inference_statistics="population",
        source=_MNIST_SOURCE,
        reported_accuracy={"top1": 0.9815, "protocol": "MNIST test set, population statistics"},
        verified=_MNIST_CHECK,
    ),
}


_BN_INCEPTION_RELEASE = {"depth_multiplier": 1.0, "lrn": False, "activation": "relu"}
_RELEASE_CHECK = (
    "tests/test_convert_{}.py: every variable of the reference network ({}) set "
    "to random values, moving statistics and biases included, saved in the "
    "release's format, converted; logits and every block output agree to 1e-4 "
    "relative on random images"
)

WEIGHTS[("bn_inception", "imagenet")] = RegisteredWeights(
    file_name="inception_v2_2016_08_28.tar.gz",
    origin="http://download.tensorflow.org/models/inception_v2_2016_08_28.tar.gz",
    sha256=None,
    classes=1000,
    release_classes=1001,
    release="slim",
    preprocessing="inception",
    model_kwargs=dict(_BN_INCEPTION_RELEASE, variant="slim", stem="separable"),
    description="TF-slim's inception_v2 (BN-Inception), trained by Google on "
    "ImageNet; converted from `inception_v2.ckpt`. classes=1000 drops slim's "
    "background class 0, classes=1001 keeps it.",
    source="TF-slim image classification models (github.com/tensorflow/models, "
    "research/slim), Apache License 2.0",
    reported_accuracy={"top1": 0.739, "top5": 0.918, "protocol": "single central crop"},
    verified=_RELEASE_CHECK.format("slim", "tf_slim's nets.inception_v2"),
)
WEIGHTS[("bn_inception", "imagenet_caffe")] = RegisteredWeights(
    file_name="bn_inception-52deb4733.pth",
    origin="http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
    sha256=None,
    classes=1000,
    release="caffe_torch",
    preprocessing="caffe_bn_inception",
    model_kwargs=dict(_BN_INCEPTION_RELEASE, variant="caffe", stem="conv"),
    description="The Caffe BN-Inception (Xiong et al., for Temporal Segment "
    "Networks) in the PyTorch port of the pretrained-models package; conv "
    "biases folded into the BN means.",
    source="Cadene's pretrained-models.pytorch (BSD 3-Clause) porting Yuanjun "
    "Xiong's Caffe BN-Inception; the weights file states no license of its own",
    reported_accuracy={"top1": 0.73524, "top5": 0.91562,
                       "protocol": "single crop 224 of the image resized to 256"},
    verified=_RELEASE_CHECK.format("caffe_torch", "pretrained-models' bninception module"),
)


def registered_weights(model_name):
    """The weights registered for `model_name`, as {weights name: entry}."""
    return {w: entry for (m, w), entry in WEIGHTS.items() if m == model_name}


def preprocessing_of(model_name, weights_name=None):
    """The `preprocess_input` mode for `model_name` with the registered
    weights `weights_name` (or the model's own mode when None)."""
    from bn_zoo.models import registry

    info = registry.model_info(model_name)
    if weights_name is None:
        return info.preprocessing
    if weights_name not in info.weights:
        names = sorted(info.weights) or "none registered"
        raise ValueError(
            f"Unknown weights {weights_name!r} for model {model_name!r}; "
            f"registered: {names}."
        )
    return info.weights[weights_name].preprocessing or info.preprocessing


def validate_weights_argument(model_name, weights, include_top, classes):
    """Checks `weights=` the way `keras.applications` does, before building.

    Returns the `RegisteredWeights` entry when `weights` is a registered name,
    else None.
    """
    if weights is None:
        return None
    known = registered_weights(model_name)
    if isinstance(weights, str) and weights in known:
        entry = known[weights]
        if include_top and classes not in entry.accepted_classes:
            accepted = " or ".join(str(c) for c in entry.accepted_classes)
            raise ValueError(
                f"The registered weights {weights!r} of {model_name!r} have a "
                f"{entry.classes}-way classifier, so with `include_top=True` "
                f"`classes` must be {accepted}. Received: classes={classes}. "
                "Use include_top=False to put your own classifier on top."
            )
        return entry
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if path.endswith(WEIGHTS_SUFFIX) and os.path.isfile(path):
            return None
        if path.endswith(WEIGHTS_SUFFIX):
            raise FileNotFoundError(
                f"The weights file {path!r} does not exist. Pass an existing "
                f"'*{WEIGHTS_SUFFIX}' file, a registered name, or None."
            )
    names = sorted(known) or "none registered"
    raise ValueError(
        "The `weights` argument should be None (random initialization), a "
        f"registered name of {model_name!r} ({names}), or the path to an "
        f"existing '*{WEIGHTS_SUFFIX}' file (as written by "
        f"`model.save_weights`). Received: weights={weights!r}"
    )


def fetch(model_name, weights_name):
    """Local path of registered weights, fetched into the Keras cache and
    verified by sha256."""
    entry = registered_weights(model_name)[weights_name]
    if CACHE_DIR is not None:
        # get_file falls back to /tmp/.keras when the directory is missing.
        os.makedirs(CACHE_DIR, exist_ok=True)
    try:
        return keras.utils.get_file(
            fname=entry.file_name,
            origin=entry.origin,
            file_hash=entry.sha256,
            hash_algorithm="sha256",
            cache_subdir=CACHE_SUBDIR,
            cache_dir=CACHE_DIR,
        )
    except ValueError as error:
        if "hash" not in str(error):
            raise
        raise ValueError(
            f"The registered weights {weights_name!r} of {model_name!r} failed "
            f"the sha256 check: {entry.origin} does not have the registered "
            f"hash {entry.sha256}, so the file is corrupted or not the one that "
            "was registered. It was not loaded. Restore the file (or update the "
            "hash in bn_zoo/models/weights.py if the new file is intended)."
        ) from error


def save_weights_atomically(model, path):
    """`model.save_weights(path)`, atomically: written to a hidden partial file
    beside `path`, then renamed over it, so `path` is never half-written and
    a failure leaves no file behind. Creates the directory if needed."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{uuid.uuid4().hex}.partial{WEIGHTS_SUFFIX}")
    try:
        model.save_weights(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def sha256_of(path):
    """The sha256 hex digest of a file (what `WEIGHTS` entries record)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_weights(model, filepath, allow_unused_layers=False):
    """Loads a `.weights.h5` file into `model`, all or nothing.

    The file's variables are first checked against the model's: every
    variable the model has must be in the file with the same shape, and the
    file must have nothing else (except, with `allow_unused_layers=True`,
    whole layers the model does not have, such as the classifier of a model
    built with `include_top=False`). A file that does not fit is refused with
    the variables that differ, and the model is left untouched. If loading
    still fails half-way, every variable is restored to its previous value.

    Args:
        model: A built Keras model.
        filepath: Path to a `*.weights.h5` file.
        allow_unused_layers: Accept layers in the file that the model lacks.
    """
    filepath = os.fspath(filepath)
    expected = _expected_structure(model)
    try:
        with h5py.File(filepath, "r") as f:
            found = _datasets(f)
    except OSError as error:
        raise ValueError(
            f"Cannot read {filepath!r} as a Keras '*{WEIGHTS_SUFFIX}' file "
            f"({error}). It may be truncated or corrupted."
        ) from error
    problems = _structure_problems(
        expected, found, allow_unused_layers, _layer_names(model)
    )
    if problems:
        raise ValueError(
            f"The weights in {filepath!r} do not fit model {model.name!r}:\n  "
            + "\n  ".join(problems[:10])
            + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
            + "\nBuild the model with the arguments the weights were saved with "
            "(architecture, input_shape, classes, include_top)."
        )
    snapshot = [v.numpy() for v in model.variables]
    try:
        model.load_weights(filepath)
    except BaseException:
        for variable, value in zip(model.variables, snapshot):
            variable.assign(value)
        raise


def _expected_structure(model):
    """Dataset paths and shapes `model.save_weights` would write."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "expected" + WEIGHTS_SUFFIX)
        model.save_weights(path)
        with h5py.File(path, "r") as f:
            return _datasets(f)


def _datasets(h5file):
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found[name] = tuple(obj.shape)

    h5file.visititems(visit)
    return found


def _layer_of(path):
    # "layers/dense_1/vars/0" -> "layers/dense_1"
    return "/".join(path.split("/")[:2])


def _layer_names(model):
    """{file group: layer name}. `.weights.h5` files address a layer by its
    class name and rank among the model's layers ("layers/dense_2" is the
    third Dense), not by its name; this recovers the names for messages."""
    used, names = {}, {}
    for layer in model.layers:
        base = naming.to_snake_case(layer.__class__.__name__)
        rank = used.get(base, 0)
        used[base] = rank + 1
        names[f"layers/{base}" + (f"_{rank}" if rank else "")] = layer.name
    return names


def _is_statistics_choice(path, shape, expected):
    """Whether `path` is a bn_zoo BN layer's `use_population_statistics` or
    `moving_statistics_updates`: the two scalar last variables of a
    "batch_normalization*" group. Files written before they existed lack
    them; the layer then keeps its configured choice, and its statistics
    count as caught up."""
    group, _, index = path.rpartition("/vars/")
    if shape != () or not group.rpartition("/")[2].startswith("batch_normalization"):
        return False
    indices = [int(p.rpartition("/")[2]) for p in expected if p.startswith(group + "/vars/")]
    return index.isdigit() and int(index) >= max(indices) - 1


def _structure_problems(expected, found, allow_unused_layers, layer_names):
    def where(path):
        name = layer_names.get(_layer_of(path))
        return f"{path} (layer {name!r})" if name else path

    problems = []
    for path, shape in sorted(expected.items()):
        if path not in found:
            if not _is_statistics_choice(path, shape, expected):
                problems.append(f"missing from the file: {where(path)}, shape {shape}")
        elif found[path] != shape:
            problems.append(
                f"shape mismatch at {where(path)}: model {shape}, file {found[path]}"
            )
    model_layers = {_layer_of(p) for p in expected}
    for path in sorted(set(found) - set(expected)):
        if allow_unused_layers and _layer_of(path) not in model_layers:
            continue
        problems.append(f"not in the model: {path}, shape {found[path]}")
    return problems


def load_into(model, model_name, weights, include_top, batch_norm_kwargs=None,
              classes=None):
    """Loads `weights` (a path or a registered name) into a fresh `model`.

    Registered releases (`entry.release`) are converted on first use and
    cached (`bn_zoo.convert.releases`); `classes` picks the classifier to
    convert (with include_top=False, the registered one).

    BN layers then use, in this order of precedence: the
    `inference_statistics` of `batch_norm_kwargs`, the one registered weights
    name, the one the file carries (files written before bn_zoo saved the
    choice carry none, and the layers keep their configured one).
    """
    if weights is None:
        return
    entry = registered_weights(model_name).get(weights) if isinstance(weights, str) else None
    if entry is not None and entry.release is not None:
        from bn_zoo.convert import releases

        path = releases.fetch_converted(model_name, weights, classes if include_top else None)
    elif entry is not None:
        path = fetch(model_name, weights)
    else:
        path = os.fspath(weights)
    load_weights(model, path, allow_unused_layers=not include_top)
    chosen = (batch_norm_kwargs or {}).get("inference_statistics")
    if chosen is None and entry is not None:
        chosen = entry.inference_statistics
    if chosen is not None:
        from bn_zoo.population import set_inference_statistics

        set_inference_statistics(model, chosen)
