"""bn_zoo: the networks of *Batch Normalization* (Ioffe & Szegedy, 2015) in Keras 3."""

import importlib
import os
import sys

__version__ = "0.1.0"

# Public names and the module that defines each.
_FUNCTIONS = {
    "BatchNormalization": "bn_zoo.layers",
    "inference_affine": "bn_zoo.layers",
    "create_model": "bn_zoo.models",
    "decode_predictions": "bn_zoo.models",
    "list_models": "bn_zoo.models",
    "model_info": "bn_zoo.models",
    "preprocess_input": "bn_zoo.models",
    "register_model": "bn_zoo.models",
    "register_data_source": "bn_zoo.data.sources",
}

# Subpackages imported on first use (`bn_zoo.export.export_model(...)` after a
# plain `import bn_zoo`), so that importing bn_zoo stays light.
_LAZY = ("convert", "data", "evaluation", "export", "paper", "plots", "results", "runs", "training")
_EAGER = ("callbacks", "layers", "models", "population")


def _is_console_command():
    """True in a `bn-zoo-*` console command (bn-zoo-train, bn-zoo-export, ...)
    or while `python -m bn_zoo.<module>` imports its parent packages.

    Such a command imports this package before its own module, which must
    quiet TensorFlow and answer --help before TensorFlow is imported; there,
    every name loads on first use. Everywhere else the layers and models are
    imported at once, so that `import bn_zoo` registers bn_zoo's layers with
    Keras before a `.keras` file is loaded.
    """
    argv = getattr(sys, "argv", None) or [""]
    program = argv[0] or ""
    return program == "-m" or os.path.basename(program).startswith("bn-zoo-")


def __getattr__(name):
    if name in _LAZY or name in _EAGER:
        return importlib.import_module(f"bn_zoo.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'bn_zoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_EAGER) | set(_FUNCTIONS))


if not _is_console_command():
    from bn_zoo import callbacks, layers, models, population  # noqa: E402,F401
    from bn_zoo.layers import BatchNormalization, inference_affine  # noqa: E402,F401
    from bn_zoo.models import (  # noqa: E402,F401
        create_model,
        decode_predictions,
        list_models,
        model_info,
        preprocess_input,
        register_model,
    )
