"""The paper's networks, with a registry of their recipes and results.

    bn_zoo.list_models()
    model = bn_zoo.create_model("bn_mlp")
    info = bn_zoo.model_info("bn_mlp")
    x = bn_zoo.preprocess_input(images, model="bn_mlp", weights="mnist")
"""

from bn_zoo.models.inception import (
    MODULES,
    BNBaseline,
    BNInception,
    BNx5,
    BNx5Sigmoid,
    BNx30,
    Inception,
)
from bn_zoo.models.lrn import LocalResponseNormalization
from bn_zoo.models.mlp import BNMLP, MLP
from bn_zoo.models.preprocessing import (
    PREPROCESSING_MODES,
    PreprocessInput,
    preprocess_input,
)
from bn_zoo.models.registry import ModelInfo, create_model, list_models, model_info
from bn_zoo.models.weights import load_weights

__all__ = [
    "BNBaseline",
    "BNInception",
    "BNMLP",
    "BNx30",
    "BNx5",
    "BNx5Sigmoid",
    "Inception",
    "LocalResponseNormalization",
    "MLP",
    "MODULES",
    "ModelInfo",
    "PREPROCESSING_MODES",
    "PreprocessInput",
    "create_model",
    "list_models",
    "load_weights",
    "model_info",
    "preprocess_input",
]
