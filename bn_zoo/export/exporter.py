"""Versioned, atomic export in the layout TensorFlow Serving loads.

    EXPORT_DIR/
      1/  saved_model.pb  variables/  ...     (format="saved_model", the default)
      2/  model.onnx                          (format="onnx")
      3/  model.tflite                        (format="litert", float32 or int8)

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
from bn_zoo.export import calibration, folding, formats, portable, signatures
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
    format=formats.SAVED_MODEL,
    quantize=None,
    calibration_batches=None,
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
        constant_weights: SavedModel: store the weights as graph constants
            (the frozen inference network), which TensorFlow serves faster;
            False keeps them as variables. See `bn_zoo.export.ServingModule`.
            ONNX and LiteRT files always hold constants (False is refused).
        top_k: Number of top classes the signatures return.
        image_shape: `(height, width, channels)` of the served images, for
            models whose input is not an image (e.g. a flat MLP input).
        with_image_bytes: SavedModel only: add the `image_bytes` signature;
            see `bn_zoo.export.signatures.ServingModule`.
        format: `"saved_model"` (`EXPORT_DIR/<version>/saved_model.pb`),
            `"onnx"` (`.../model.onnx`) or `"litert"` (`.../model.tflite`);
            see `bn_zoo.export.formats`.
        quantize: With `"litert"`: None (float32) or `"int8"`, post-training
            full-integer quantization (`bn_zoo.export.portable`).
        calibration_batches: With `quantize="int8"`: a function returning an
            iterable of float32 pixel batches from the training data
            (`bn_zoo.export.calibration`).

    Returns:
        The path of the written version directory.

    Raises:
        ValueError: an unknown format or quantization, `quantize` without
            LiteRT, int8 without `calibration_batches`, or an argument
            `ServingModule` refuses.
        ImportError: the format's packages are missing (the `export` extra).
        FileExistsError, NotADirectoryError: see `check_destination`.
    """
    formats.check_format(format, quantize)
    if format != formats.SAVED_MODEL:
        if not constant_weights:
            raise ValueError(
                f"The {format} format always stores the weights as constants; "
                "constant_weights=False (--noconstant_weights) applies to saved_model only."
            )
        if with_image_bytes:
            raise ValueError(
                f"The {format} format has no string inputs, so no `image_bytes`; "
                "export a saved_model for it, or pass with_image_bytes=None."
            )
        if quantize and calibration_batches is None:
            raise ValueError(
                f"quantize={quantize!r} needs calibration_batches: representative "
                "training images (see bn_zoo.export.calibration)."
            )
    formats.require_runtime(format)
    version = check_destination(export_dir, version)
    if fold_batch_norm:
        model = folding.fold_batch_normalization(model)
    if format == formats.SAVED_MODEL:
        module = signatures.ServingModule(
            model,
            preprocessing,
            image_shape=image_shape,
            top_k=top_k,
            with_image_bytes=with_image_bytes,
            constant_weights=constant_weights,
        )
        write = module.save
    else:
        preprocessing, image_shape, resize, _, _ = signatures.serving_settings(
            model, preprocessing, image_shape, top_k, with_image_bytes=False
        )
        served = formats.serving_model(model, preprocessing, image_shape, top_k, resize)

        def write(directory):
            os.makedirs(directory)
            path = os.path.join(directory, formats.FILENAMES[format])
            if format == formats.ONNX:
                portable.write_onnx(served, path)
            else:
                portable.write_litert(served, path, quantize, calibration_batches)

    created = not os.path.isdir(export_dir)
    os.makedirs(export_dir, exist_ok=True)
    remove_stale_temporaries(export_dir)
    final = os.path.join(export_dir, str(version))
    tmp = os.path.join(export_dir, _temporary_name(version))
    try:
        write(tmp)
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


def export_registered_model(name, export_dir, weights=None,
                            calibration_steps=formats.DEFAULT_CALIBRATION_STEPS,
                            data_dir=None, data_source="tfds", **kwargs):
    """Builds registered model `name` (with `weights`: None, a registered
    name such as "mnist", or a path) and exports it; see `export_model`.

    With `quantize="int8"` the calibration uses `calibration_steps` batches
    of the model's training data: MNIST for the MLPs, ImageNet for the
    Inception family (`data_source` "tfds" or "tfrecord" at `data_dir`;
    None: `$TFDS_DATA_DIR`); see `bn_zoo.export.calibration`."""
    _check_options(export_dir, kwargs, calibration_steps)
    info = models.model_info(name)  # Unknown names fail here, with the list.
    model = models.create_model(name, weights=weights)
    if isinstance(weights, str) and weights in info.weights:
        # e.g. the Caffe release's BGR-minus-means scaling.
        kwargs.setdefault("preprocessing", weights_lib.preprocessing_of(name, weights))
    if kwargs.get("quantize"):
        shape = tuple(model.inputs[0].shape[1:])
        shape = shape if len(shape) == 3 else info.default_input_shape
        kwargs.setdefault("calibration_batches", calibration.registered_model_batches(
            info, shape, calibration_steps, data_dir=data_dir, data_source=data_source))
    return _export_for_info(model, info, export_dir, **kwargs)


def export_workdir(workdir, export_dir, calibration_steps=formats.DEFAULT_CALIBRATION_STEPS,
                   **kwargs):
    """Restores the latest checkpoint of a training workdir and exports it;
    see `export_model`. The model name comes from `workdir/config.json`;
    int8 calibration uses `calibration_steps` batches of the run's own
    training data (its `config.data`)."""
    from bn_zoo import training

    _check_options(export_dir, kwargs, calibration_steps)
    name = workdir_model_name(workdir)
    info = models.model_info(name)
    model = training.restore_model(workdir)
    if kwargs.get("quantize"):
        from bn_zoo.training import config as config_lib
        from bn_zoo.training import workdir as workdir_lib

        config = config_lib.resolve(workdir_lib.Workdir(workdir).saved_config())
        kwargs.setdefault("calibration_batches",
                          calibration.workdir_batches(config, calibration_steps))
    return _export_for_info(model, info, export_dir, **kwargs)


def _check_options(export_dir, kwargs, calibration_steps):
    """The checks that need no model, run before building one."""
    formats.check_format(kwargs.get("format", formats.SAVED_MODEL), kwargs.get("quantize"),
                         calibration_steps)
    formats.require_runtime(kwargs.get("format", formats.SAVED_MODEL))
    check_destination(export_dir, kwargs.get("version"))


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
