"""Versioned, atomic export in the layout TensorFlow Serving loads.

    EXPORT_DIR/
      1/  saved_model.pb  variables/  assets/labels.txt   (format="saved_model", the default)
      2/  model.onnx  labels.txt                          (format="onnx")
      3/  model.tflite  labels.txt                        (format="litert", float32 or int8)

A new version is written to `EXPORT_DIR/.tmp-<version>-<host>-<pid>` and
renamed into place only once complete, so a version directory is never seen
half-written and an existing version is never overwritten. A temporary left
by an export that was killed (its process on this host is gone) is removed
by the next export to the same directory. Every check that
can fail (an existing version, an unknown model, a workdir without a
checkpoint, an export directory this process cannot write, class names that
do not fit the model, a preprocessing mode for a model that scales its
input itself) runs before
anything is written; a disk that fills up during the write leaves nothing
behind and is reported as an OSError (ENOSPC) naming the version.
"""

import errno
import os
import shutil
import socket
import tempfile
import zipfile

from absl import logging

from bn_zoo import models
from bn_zoo.export import calibration, folding, formats, portable, signatures
from bn_zoo.export import class_names as class_names_lib
from bn_zoo.models import catalogue, weights_files
from bn_zoo.runs.files import WRITE_ERRORS

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
        PermissionError, OSError: `export_dir` (or, if it does not exist
            yet, the directory it would be created in) cannot be written:
            errno EACCES, or EROFS on a read-only file system.
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
    _check_writable(export_dir)
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


def _check_writable(export_dir):
    """Raises the OSError a write into `export_dir` would raise, before
    anything is built or written: for a directory that does not exist yet,
    about its nearest existing parent, in which it would be created."""
    directory = os.path.abspath(export_dir)
    while not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory or os.path.exists(directory):
            return  # A file on the way: os.makedirs reports it.
        directory = parent
    if os.access(directory, os.W_OK | os.X_OK):
        return
    code = errno.EACCES
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            code = errno.EROFS
    except OSError:
        pass
    raise OSError(code, os.strerror(code), directory)


def _as_os_error(error, path, tmp):
    """`error`, raised while writing `path` through its temporary `tmp`, as
    the OSError that names the cause and the version (a file elsewhere, such
    as a converter's own temporary, stays named): TensorFlow's file errors
    (`ResourceExhaustedError` for a full disk, `PermissionDeniedError`)
    carry the system's message but no errno, and Python's own carry no file
    name when written through a file object. Returns None for other errors."""
    def named(filename):
        inside = filename and os.path.abspath(filename).startswith(os.path.abspath(tmp))
        return path if not filename or inside else filename

    if isinstance(error, OSError):
        if error.errno not in WRITE_ERRORS:
            return None
        return OSError(error.errno, error.strerror or os.strerror(error.errno),
                       named(error.filename))
    import tensorflow as tf

    if not isinstance(error, tf.errors.OpError):
        return None
    message = str(error)
    # TensorFlow's file errors read "<file>; <strerror>".
    filename = message.split(";")[0].strip()
    filename = named(filename if os.path.isabs(filename) else None)
    for code in WRITE_ERRORS:
        if os.strerror(code) in message:
            return OSError(code, os.strerror(code), filename)
    fallback = {tf.errors.ResourceExhaustedError: errno.ENOSPC,
                tf.errors.PermissionDeniedError: errno.EACCES}
    for kind, code in fallback.items():
        if isinstance(error, kind):
            return OSError(code, os.strerror(code), filename)
    return None


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
    class_names=None,
    data_config=None,
):
    """Exports `model` for serving to `EXPORT_DIR/<version>/`.

    Args:
        model: A built functional `keras.Model` ending in class
            probabilities or logits. Its BN layers use whichever inference
            statistics (moving or population) they are set to.
        export_dir: The model's base directory (created if needed).
        preprocessing: A `bn_zoo.models.preprocess_input` mode
            (`bn_zoo.models.PREPROCESSING_MODES`: `bn_zoo.model_info(name)
            .preprocessing`, or the registered weights' own). None for a
            model that scales its own input: a `PreprocessInput` layer at
            any depth (`include_preprocessing=True`, of the model or of a
            backbone inside it); the signatures then feed it raw pixels, and
            a mode given for it is refused (the pixels would be scaled
            twice).
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
        with_image_bytes: SavedModel only: add the `image_bytes` signature
            (None: for square RGB inputs); see
            `bn_zoo.export.signatures.ServingModule`.
        format: `"saved_model"` (`EXPORT_DIR/<version>/saved_model.pb`),
            `"onnx"` (`.../model.onnx`) or `"litert"` (`.../model.tflite`);
            see `bn_zoo.export.formats`.
        quantize: With `"litert"`: None (float32) or `"int8"`, post-training
            full-integer quantization (`bn_zoo.export.portable`).
        calibration_batches: With `quantize="int8"`: a function returning an
            iterable of float32 pixel batches from the training data
            (`bn_zoo.export.calibration`).
        class_names: One string per output column, in output order, carried
            by the export (`bn_zoo.export.class_names`): the SavedModel's
            signatures return them as `class_names`, with `assets/labels.txt`;
            the ONNX and LiteRT files hold them as metadata, with a
            `labels.txt` beside. None: the indices, "0".."N-1".
        data_config: The weights' `bn_zoo.models.catalogue.DataConfig`
            (`bn_zoo.models.catalogue.data_config(name, weights)`), or None:
            how `image_bytes` crops and resizes (crop fraction and mode,
            interpolation) and how `images` of another size are resized.

    Returns:
        The path of the written version directory.

    Raises:
        ValueError: an unknown format or quantization, `quantize` without
            LiteRT, int8 without `calibration_batches`, class names whose
            count differs from the model's outputs, or an argument
            `ServingModule` refuses (among them a `preprocessing` mode for
            a model that scales its input itself).
        ImportError: the format's packages are missing (the `export` extra).
        FileExistsError, NotADirectoryError: see `check_destination`.
        OSError: `export_dir` cannot be written (checked first: EACCES,
            EROFS), or the disk filled up (ENOSPC, EDQUOT) during the
            write; `filename` names the version directory, and nothing is
            left behind.
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
    # Every check of the arguments, before the (slow) folding.
    signatures.serving_settings(model, preprocessing, image_shape, top_k,
                                with_image_bytes if format == formats.SAVED_MODEL else False)
    signatures.image_crop(data_config)
    num_classes = int(model.outputs[0].shape[-1])
    names = (class_names_lib.index_names(num_classes) if class_names is None
             else class_names_lib.check_class_names(class_names, num_classes, model.name))
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
            class_names=names,
            data_config=data_config,
        )
        write = module.save
    else:
        settings = signatures.serving_settings(
            model, preprocessing, image_shape, top_k, with_image_bytes=False)
        crop = signatures.image_crop(data_config)
        served = formats.serving_model(
            model, settings.preprocessing, settings.image_shape, top_k, settings.resize,
            export_format=format, interpolation=crop.interpolation)

        def write(directory):
            os.makedirs(directory)
            path = os.path.join(directory, formats.FILENAMES[format])
            if format == formats.ONNX:
                portable.write_onnx(served, path, class_names=names)
            else:
                portable.write_litert(served, path, quantize, calibration_batches,
                                      class_names=names)
            class_names_lib.write_labels_file(
                os.path.join(directory, class_names_lib.LABELS_FILE), names)

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
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not os.listdir(export_dir):
            os.rmdir(export_dir)
        cause = _as_os_error(error, final, tmp) if isinstance(error, Exception) else None
        if cause is not None:
            raise cause from error
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
                            data_dir=None, data_source="tfds", class_names=None, **kwargs):
    """Builds registered model `name` (with `weights`: None, a registered
    name such as "mnist", or a path) and exports it; see `export_model`.

    The registered weights' data config (`catalogue.data_config(name,
    weights)`) gives the preprocessing mode, how `image_bytes` crops and
    resizes, and the class names (its label set, when its width is the
    model's outputs; `class_names=` overrides them; otherwise "0".."N-1").
    With `quantize="int8"` the calibration uses `calibration_steps` batches
    of the model's training data: MNIST for the MLPs, ImageNet for the
    Inception family (`data_source` "tfds" or "tfrecord" at `data_dir`;
    None: `$TFDS_DATA_DIR`); see `bn_zoo.export.calibration`."""
    _check_options(export_dir, kwargs, calibration_steps)
    info = models.model_info(name)  # Unknown names fail here, with the list.
    data_config = _data_config(name, weights)
    model = models.create_model(name, weights=weights)
    if kwargs.get("quantize"):
        shape = tuple(model.inputs[0].shape[1:])
        shape = shape if len(shape) == 3 else info.default_input_shape
        kwargs.setdefault("calibration_batches", calibration.registered_model_batches(
            info, shape, calibration_steps, data_dir=data_dir, data_source=data_source))
    names = _class_names(model, class_names, data_config=data_config)
    return _export_for_info(model, info, export_dir, data_config=data_config,
                            class_names=names, **kwargs)


def export_workdir(workdir, export_dir, calibration_steps=formats.DEFAULT_CALIBRATION_STEPS,
                   class_names=None, **kwargs):
    """Restores the latest checkpoint of a training workdir and exports it;
    see `export_model`. The model name comes from `workdir/config.json`;
    int8 calibration uses `calibration_steps` batches of the run's own
    training data (its `config.data`).

    The class names are `class_names=`, else those the run recorded
    (`bn_zoo.export.class_names.recorded_class_names`: `WORKDIR/labels.txt`),
    else, for a run on one of the zoo's own datasets (MNIST, ImageNet), the
    label set of its model's data config, else "0".."N-1"."""
    from bn_zoo import runs

    _check_options(export_dir, kwargs, calibration_steps)
    name = workdir_model_name(workdir)
    info = models.model_info(name)
    run = runs.restore(workdir)
    if kwargs.get("quantize"):
        kwargs.setdefault("calibration_batches",
                          calibration.workdir_batches(run.config, calibration_steps))
    config = run.config if isinstance(run.config, dict) else runs.to_json_dict(run.config)
    data_config = _data_config(name, (config.get("model") or {}).get("weights"))
    recorded, origin = class_names_lib.recorded_class_names(workdir, config)
    data_name = (config.get("data") or {}).get("name")
    registered = data_config if data_name in _ZOO_DATASETS else None
    names = _class_names(run.model, class_names, recorded=recorded, data_config=registered,
                         recorded_origin=origin)
    return _export_for_info(run.model, info, export_dir, data_config=data_config,
                            class_names=names, **kwargs)


# The trainer's data sources whose classes the zoo's label sets describe
# (MNIST's digits, ImageNet's sorted synsets).
_ZOO_DATASETS = ("mnist", "mnist_inception", "imagenet")


def export_model_file(model_file, export_dir, class_names=None, **kwargs):
    """Loads a Keras model file (`model.save("model.keras")`, with the zoo's
    layers or any registered with `keras.saving.register_keras_serializable`
    in this process) and exports it; see `export_model`.

    A model built with `include_preprocessing=True` (or holding a backbone
    that was) scales its own input; any other needs `preprocessing=`. Its
    classes are `class_names=`, or "0".."N-1". int8 calibration needs
    `calibration_batches=` (the file carries no training data).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is not a `.keras` model file, or one Keras
            cannot load (e.g. a custom layer whose module was not imported);
            one that fails its checksum file (`<file>.sha256`, if any) or
            holds NaN or Inf (`CorruptWeightsError`); see `export_model`.
    """
    formats.check_format(kwargs.get("format", formats.SAVED_MODEL), kwargs.get("quantize"))
    formats.require_runtime(kwargs.get("format", formats.SAVED_MODEL))
    check_destination(export_dir, kwargs.get("version"))
    if kwargs.get("quantize") and kwargs.get("calibration_batches") is None:
        raise ValueError(
            f"quantize={kwargs['quantize']!r} needs calibration images, which a .keras file "
            "does not carry: export a --workdir or a --model (calibrated on their training "
            "data), or call bn_zoo.export.export_model_file(..., calibration_batches=...).")
    model = load_model_file(model_file)
    return export_model(model, export_dir, class_names=class_names, **kwargs)


def load_model_file(model_file):
    """The Keras model in `model_file` (a `.keras` file), compiled=False.

    Raises:
        FileNotFoundError, ValueError: see `export_model_file`.
        CorruptWeightsError: (a ValueError) the file fails its checksum file
            (`<file>.sha256`, if there is one) or its weights hold NaN or Inf.
    """
    import keras

    from bn_zoo import layers  # noqa: F401  (registers the zoo's layers for loading)

    path = os.fspath(model_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Model file '{path}' does not exist; pass a .keras file written by "
            "model.save('model.keras').")
    if not path.endswith(".keras"):
        hint = (" A .weights.h5 file holds weights only: export it with --model=NAME "
                "--weights=FILE." if path.endswith(".weights.h5") else "")
        raise ValueError(f"Model file '{path}' is not a .keras file (model.save("
                         f"'model.keras') writes one).{hint}")
    weights_files.verify_checksum(path)  # `<file>.sha256` beside it, if any.
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises TypeError, ValueError, zipfile errors.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"Cannot load model file '{path}': {first} If it holds layers of your own, "
            "import the module that registers them (keras.saving."
            "register_keras_serializable) before exporting.") from error
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as scratch:
        if "model.weights.h5" in archive.namelist():  # Keras 3's weights in a .keras zip.
            weights_files.check_finite(archive.extract("model.weights.h5", scratch),
                                       weights_files.variable_names(model),
                                       source=f"the model file '{path}'")
    return model


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
    from bn_zoo import runs

    config = runs.RunDir(workdir).read_config()  # A torn one: TornFileError, one line.
    name = config.get("model")
    if isinstance(name, dict):
        name = name.get("name")
    if not isinstance(name, str):
        raise ValueError(f"'{path}' names no model (no 'model' entry).")
    return name


def _data_config(name, weights):
    """The data config of catalogued model `name` with `weights` (a
    registered name, a path or None), or None where the catalogue has none
    for them (unknown weights: the model's own)."""
    lookup = getattr(catalogue, "data_config", None)
    if lookup is None:
        return None
    try:
        return lookup(name, weights)
    except ValueError:
        return lookup(name, None)


def _class_names(model, explicit, recorded=None, data_config=None, recorded_origin=None):
    """The class names to export `model` with (see `class_names.resolve`)."""
    num_classes = int(model.outputs[0].shape[-1]) if len(model.outputs) == 1 else None
    if num_classes is None:
        return explicit  # export_model refuses the model with its own message.
    registered = class_names_lib.registered_class_names(data_config, num_classes)
    names, source = class_names_lib.resolve(num_classes, model.name, explicit, recorded,
                                            registered, recorded_origin)
    logging.info("Class names (%s): %s", source, ", ".join(names[:5]) +
                 (", ..." if len(names) > 5 else ""))
    return names


def _export_for_info(model, info, export_dir, **kwargs):
    if signatures.find_preprocessing_layer(model) is None:
        mode = getattr(kwargs.get("data_config"), "preprocessing", None) or info.preprocessing
        kwargs.setdefault("preprocessing", mode)
    if len(model.inputs[0].shape) != 4 or None in tuple(model.inputs[0].shape[1:]):
        shape = getattr(kwargs.get("data_config"), "input_shape", None)
        kwargs.setdefault("image_shape", shape or info.default_input_shape)
    return export_model(model, export_dir, **kwargs)
