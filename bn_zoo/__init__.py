"""bn_zoo: the networks of *Batch Normalization* (Ioffe & Szegedy, 2015) in Keras 3."""

import importlib

from bn_zoo import callbacks, layers, models, population
from bn_zoo.layers import BatchNormalization, inference_affine
from bn_zoo.models import create_model, list_models, model_info, preprocess_input
from bn_zoo.models.custom import register_model

__version__ = "0.1.0"

# Subpackages imported on first use (`bn_zoo.export.export_model(...)` after a
# plain `import bn_zoo`), so that importing bn_zoo stays light.
_LAZY = ("convert", "data", "evaluation", "export", "plots", "results", "training")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"bn_zoo.{name}")
    raise AttributeError(f"module 'bn_zoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
