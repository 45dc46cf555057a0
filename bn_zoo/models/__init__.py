"""The paper's networks: architectures, a catalogue of models, and a hub.

    bn_zoo.list_models()
    model = bn_zoo.create_model("bn_mlp", weights="mnist")
    info = bn_zoo.model_info("bn_mlp")
    config = bn_zoo.models.data_config("bn_mlp", "mnist")   # input, crop, scaling, labels
    x = bn_zoo.preprocess_input(images, model="bn_mlp", weights="mnist")
    bn_zoo.decode_predictions(model.predict(x), top=3, weights="mnist")

The package in three layers, each importing only those below it:

- architectures, plain arguments and random weights: `inception.inception`,
  `mlp.mlp` (with `common`, `inception_variants`, `lrn`, `input_scaling`);
- the catalogue, pure data: `catalogue` (`ModelInfo`, `RegisteredWeights`,
  `DataConfig`, `register_model`, lookups, `data_config`), `labels` (the
  class names of each label set, shipped in the package), `recipes`, and
  `zoo`, the paper's eight models and their weights, registered with the
  same `register_model` as yours;
- the hub: `hub.create_model` resolves `weights=` (a registered name, a
  file, a public release fetched and converted by `releases`) and loads it
  once with `weights_files.load_weights`; `factories` spells out the
  `keras.applications` signatures (`BNInception(weights=...)`),
  `preprocessing.preprocess_input` knows each model's input scaling, and
  `predictions.decode_predictions` names the classes of its outputs.
"""

from bn_zoo.models import zoo  # noqa: F401  (registers the zoo's models)
from bn_zoo.models.catalogue import (
    DataConfig,
    ModelInfo,
    RegisteredWeights,
    data_config,
    list_models,
    model_info,
    register_model,
    register_weights,
)
from bn_zoo.models.factories import (
    MLP,
    BNBaseline,
    BNInception,
    BNMLP,
    BNx5,
    BNx5Sigmoid,
    BNx30,
    Inception,
)
from bn_zoo.models.hub import create_model
from bn_zoo.models.inception import MODULES
from bn_zoo.models.labels import register_label_set
from bn_zoo.models.lrn import LocalResponseNormalization
from bn_zoo.models.predictions import decode_predictions
from bn_zoo.models.preprocessing import (
    PREPROCESSING_MODES,
    PreprocessInput,
    preprocess_input,
)
from bn_zoo.models.weights_files import load_weights

__all__ = [
    "BNBaseline",
    "BNInception",
    "BNMLP",
    "BNx30",
    "BNx5",
    "BNx5Sigmoid",
    "DataConfig",
    "Inception",
    "LocalResponseNormalization",
    "MLP",
    "MODULES",
    "ModelInfo",
    "PREPROCESSING_MODES",
    "PreprocessInput",
    "RegisteredWeights",
    "create_model",
    "data_config",
    "decode_predictions",
    "list_models",
    "load_weights",
    "model_info",
    "preprocess_input",
    "register_label_set",
    "register_model",
    "register_weights",
]
