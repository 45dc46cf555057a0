"""`decode_predictions`: a classifier's outputs as class IDs, names and scores.

    preds = model.predict(bn_zoo.preprocess_input(pixels, model="bn_inception",
                                                  weights="imagenet"))
    bn_zoo.decode_predictions(preds, top=3, weights="imagenet")
    # [[('n02123045', 'tabby', 0.61), ('n02123159', 'tiger_cat', 0.22), ...], ...]

The answer has `keras.applications.imagenet_utils.decode_predictions`' shape;
the classes come from the label set of the weights' data config
(`bn_zoo.models.labels`), read from files in the package: nothing is
downloaded.
"""

import os

import numpy as np
from keras import ops

from bn_zoo.models import catalogue, labels

# Without model, weights or class_names: ImageNet, as keras.applications.
DEFAULT_LABEL_SET = "imagenet1001_background"


def decode_predictions(preds, top=5, *, weights=None, model=None, class_names=None):
    """The `top` classes of each prediction, best first.

    Args:
        preds: Scores `[samples, classes]` (probabilities or logits): a numpy
            array, a tensor or a nested list.
        top: How many classes per sample (all of them if there are fewer).
        weights: The registered weights that made `preds` (e.g. "imagenet",
            "imagenet_caffe", "mnist"); their data config's label set names
            the columns. Without `model`, every model registering weights of
            that name must agree on it.
        model: The catalogued model; without `weights`, its own data
            config's label set (e.g. "bn_inception": ImageNet's 1000).
        class_names: Instead of `model`/`weights`: one name per column (e.g.
            the class folders of a fine-tuning run); the ID is the name.
            Without any of the three: ImageNet's classes (1000 columns, or
            1001 with TF-slim's background first), as keras.applications.

    Returns:
        A list with, per sample, a list of `top` tuples `(class_id,
        class_name, score)` sorted by decreasing score (ties: lower column
        first); `class_id` is the WordNet ID for ImageNet ("n01440764"),
        the name itself otherwise; `score` is the column's value as a
        Python float.

    TF-slim's 1001 columns (`weights="imagenet"` built with `classes=1001`):
    column 0 is background, not an ImageNet class, so it is never returned;
    the 1000 real classes are ranked by their own scores, which are not
    renormalized (they sum to 1 minus the background's probability). With
    `classes=1000` the model has dropped that column already.

    Raises:
        ValueError: `preds` that is not 2-D, a column count that does not fit
            the label set or `class_names`, weights or a model without a
            label set (pass `class_names`), an unknown model or weights name,
            `top` that is not a positive integer, or `class_names` together
            with `model`/`weights` ("Received: ..." says what came in).
        TypeError: `class_names` that are not strings.
    """
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"`top` must be a positive integer. Received: top={top!r}")
    scores = _as_2d(preds)
    ids, names = _columns(scores.shape[1], weights, model, class_names)
    offset = scores.shape[1] - len(ids)  # 1 for slim's background column.
    scores = scores[:, offset:]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return [[(ids[i], names[i], float(row[i])) for i in ranking]
            for row, ranking in zip(scores, order)]


def _as_2d(preds):
    if not isinstance(preds, np.ndarray):
        preds = ops.convert_to_numpy(preds) if hasattr(preds, "shape") else np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] < 1:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of "
            "shape (samples, classes)). Received array with shape: "
            f"{tuple(preds.shape)}")
    if not np.issubdtype(preds.dtype, np.number):
        raise ValueError(f"`preds` must be numbers. Received: dtype {preds.dtype}")
    return preds


def _columns(width, weights, model, class_names):
    """(IDs, names) of the ranked columns, for `width` columns."""
    if class_names is not None:
        if weights is not None or model is not None:
            raise ValueError(
                "Pass either `class_names` or `model`/`weights`. Received: "
                f"class_names and model={model!r}, weights={weights!r}")
        names = labels._strings("class_names", class_names)
        if len(names) != width:
            raise ValueError(
                f"`class_names` has {len(names)} names for predictions with {width} "
                f"classes; give one name per column. Received: {len(names)} names, "
                f"preds with {width} columns.")
        return names, names
    label_set, source = _label_set(weights, model)
    try:
        ids = labels.class_ids(label_set, width)
        names = labels.class_names(label_set, width)
    except ValueError:
        widths = " or ".join(str(w) for w in labels.get(label_set).output_widths)
        raise ValueError(
            f"{source}: label set {label_set!r} has {widths} columns, but the "
            f"predictions have {width}. Pass the `weights`/`model` that made them, or "
            f"`class_names`. Received: preds with {width} columns.") from None
    # A background column is never a class: rank the others.
    if labels.get(label_set).background and width == len(labels.get(label_set).class_ids):
        return ids[1:], names[1:]
    return ids, names


def _label_set(weights, model):
    """The label set named by `weights`/`model`, and a phrase saying whose."""
    if weights is None and model is None:
        return DEFAULT_LABEL_SET, "ImageNet predictions (the default)"
    if model is not None:
        config = catalogue.data_config(model, weights)
        source = f"Model {model!r}" + (f" with weights {weights!r}" if weights else "")
        if config.label_set is None:
            raise ValueError(
                f"{source} has no label set in its data config, so its classes have no "
                "names: pass `class_names` (one per output column). Received: "
                f"model={model!r}, weights={weights!r}")
        return config.label_set, source
    if not isinstance(weights, str) or "/" in weights or os.sep in weights or weights.endswith(
            (".h5", ".keras")):
        raise ValueError(f"`weights` is a registered weights name; a file needs `model` "
                         f"too, or `class_names`. Received: weights={weights!r}")
    found = {}
    for name in catalogue.list_models():
        if weights in catalogue.weights_of(name):
            found.setdefault(catalogue.data_config(name, weights).label_set, []).append(name)
    if not found:
        registered = sorted({w for name in catalogue.list_models()
                             for w in catalogue.weights_of(name)})
        raise ValueError(f"No model registers weights {weights!r}; registered: {registered}. "
                         f"Received: weights={weights!r}")
    if len(found) > 1:
        raise ValueError(
            f"Models register weights {weights!r} with different classes "
            f"({found}); pass `model` too. "
            f"Received: weights={weights!r}")
    (label_set, models), = found.items()
    if label_set is None:
        raise ValueError(
            f"The weights {weights!r} ({', '.join(models)}) have no label set in their "
            "data config: pass `class_names` (one per output column). Received: "
            f"weights={weights!r}")
    return label_set, f"The weights {weights!r}"
