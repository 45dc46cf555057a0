"""Versioned, atomic SavedModel export in the layout TensorFlow Serving loads.

    EXPORT_DIR/
      1/  saved_model.pb  variables/  ...
      2/  ...

A new version is written to `EXPORT_DIR/.tmp-<version>-<host>-<pid>` and
renamed into place only once complete, so a version directory is never seen
half-written and an existing version is never overwritten. A temporary left
by an export that was killed (its process on this host is gone) is removed
by the next export to the same directory. Every check that
can fail (an existing version, an unknown model, a workdir without a
checkpoint) runs before anything is written.
"""

import json
import os
import shutil
import socket

from absl import logging

from bn_zoo import models
from bn_zoo.export import folding, signatures
from bn_zoo.models import weights as weights_lib
from bn_zoo.models.preprocessing import preprocessing_layer

_TMP_PREFIX = ".tmp-"


def next_version(export_dir):
    """1 + the largest integer version in `export_dir` (1 if there is none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(n) for n in os.listdir(export_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def check_destination(export_dir, version=None):
    """Validates `export_dir` and `version`; returns the version to write.

    Raises:
        NotADirectoryError: `export_dir` exists and is not a directory.
        ValueError: `version` is not a positive integer.
        FileExistsError: `EXPORT_DIR/<version>` exists already.
    """
    if not export_dir:
        raise ValueError("`export_dir` is empty; pass the directory to export to.")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise NotADirectoryError(
            f"export_dir '{export_dir}' exists and is not a directory; pass a "
            "directory (new or holding earlier versions)."
        )
    if version is None:
        return next_version(export_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"`version` must be a positive integer (TensorFlow Serving loads "
            f"numbered directories); received {version!r}."
        )
    path = os.path.join(export_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(
            f"Version {version} already exists at '{path}'; exports are never "
            "overwritten. Pick another --version or omit it to use the next one "
            f"({next_version(export_dir)})."
        )
    return version


def export_model(
    model,
    export_dir,
    preprocessing=None,
    version=None,
    fold_batch_norm=True,
    constant_weights=True,
    top_k=5,
    image_shape=None,
    with_image_bytes=None,
):
    """Exports `model` for serving to `EXPORT_DIR/<version>/`.

    Args:
        model: A built functional `keras.Model` ending in class
            probabilities or logits. Its BN layers use whichever inference
            statistics (moving or population) they are set to.
        export_dir: The model's base directory (created if needed).
        preprocessing: A `bn_zoo.models.preprocess_input` mode: `"mnist"`,
            `"inception"` or `"caffe_bn_inception"` (`bn_zoo.model_info(name)
            .preprocessing`, or the registered weights' own). None for a
            model built with `include_preprocessing=True`, which scales its
            own input (the signatures then feed it raw pixels).
        version: Positive integer; defaults to the next free one.
        fold_batch_norm: Fold every BN into the layer before it (Algorithm 2,
            step 11; see `bn_zoo.export.folding`). False keeps the BN layers.
        constant_weights: Store the weights as graph constants (the frozen
            inference network), which TensorFlow serves faster; False keeps
            them as variables. See `bn_zoo.export.ServingModule`.
        top_k: Number of top classes the signatures return.
        image_shape: `(height, width, channels)` of the served images, for
            models whose input is not an image (e.g. a flat MLP input).
        with_image_bytes: Add the `image_bytes` signature; see
            `bn_zoo.export.signatures.ServingModule`.

    Returns:
        The path of the written version directory.
    """
    version = check_destination(export_dir, version)
    if fold_batch_norm:
        model = folding.fold_batch_normalization(model)
    module = signatures.ServingModule(
        model,
        preprocessing,
        image_shape=image_shape,
        top_k=top_k,
        with_image_bytes=with_image_bytes,
        constant_weights=constant_weights,
    )
    created = not os.path.isdir(export_dir)
    os.makedirs(export_dir, exist_ok=True)
    remove_stale_temporaries(export_dir)
    final = os.path.join(export_dir, str(version))
    tmp = os.path.join(export_dir, _temporary_name(version))
    try:
        module.save(tmp)
        if os.path.exists(final):  # Written by a concurrent export meanwhile.
            raise FileExistsError(
                f"Version {version} appeared at '{final}' during the export; "
                "it was left untouched. Export again to get the next version."
            )
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not os.listdir(export_dir):
            os.rmdir(export_dir)
        raise
    return final


def _temporary_name(version):
    """`.tmp-<version>-<host>-<pid>`: this process's temporary for `version`."""
    return f"{_TMP_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}"


def remove_stale_temporaries(export_dir):
    """Deletes the `.tmp-<version>-<host>-<pid>` directories of exports on
    this host whose process no longer runs (killed mid-write). Temporaries of
    running exports and of other hosts are left alone. Returns the paths
    removed."""
    host = socket.gethostname()
    removed = []
    for name in sorted(os.listdir(export_dir)):
        if not name.startswith(_TMP_PREFIX):
            continue
        # The inverse of _temporary_name; host names may contain "-".
        owner, _, pid = name[len(_TMP_PREFIX):].partition("-")[2].rpartition("-")
        if owner != host or not pid.isdigit() or _is_running(int(pid)):
            continue
        path = os.path.join(export_dir, name)
        shutil.rmtree(path, ignore_errors=True)
        logging.info("Removed %s, left by an export that did not finish.", path)
        removed.append(path)
    return removed


def _is_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Another user's process.
        return True
    return True


def export_registered_model(name, export_dir, weights=None, **kwargs):
    """Builds registered model `name` (with `weights`: None, a registered
    name such as "mnist", or a path) and exports it; see `export_model`."""
    check_destination(export_dir, kwargs.get("version"))
    info = models.model_info(name)  # Unknown names fail here, with the list.
    model = models.create_model(name, weights=weights)
    if isinstance(weights, str) and weights in info.weights:
        # e.g. the Caffe release's BGR-minus-means scaling.
        kwargs.setdefault("preprocessing", weights_lib.preprocessing_of(name, weights))
    return _export_for_info(model, info, export_dir, **kwargs)


def export_workdir(workdir, export_dir, **kwargs):
    """Restores the latest checkpoint of a training workdir and exports it;
    see `export_model`. The model name comes from `workdir/config.json`."""
    from bn_zoo import training

    check_destination(export_dir, kwargs.get("version"))
    name = workdir_model_name(workdir)
    info = models.model_info(name)
    model = training.restore_model(workdir)
    return _export_for_info(model, info, export_dir, **kwargs)


def workdir_model_name(workdir):
    """The registered model name a training workdir was run with."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError(
            f"Workdir '{workdir}' does not exist; pass the --workdir of a "
            "training run."
        )
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"'{path}' not found: '{workdir}' is not a training workdir "
            "(python -m trainers.train writes config.json there)."
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    name = config.get("model")
    if isinstance(name, dict):
        name = name.get("name")
    if not isinstance(name, str):
        raise ValueError(f"'{path}' names no model (no 'model' entry).")
    return name


def _export_for_info(model, info, export_dir, **kwargs):
    if preprocessing_layer(model) is None:
        kwargs.setdefault("preprocessing", info.preprocessing)
    if len(model.inputs[0].shape) != 4:
        kwargs.setdefault("image_shape", info.default_input_shape)
    return export_model(model, export_dir, **kwargs)
