"""bn_zoo: the networks of *Batch Normalization* (Ioffe & Szegedy, 2015) in Keras 3."""

from bn_zoo import layers, models, population
from bn_zoo.layers import BatchNormalization, inference_affine
from bn_zoo.models import create_model, list_models, model_info, preprocess_input

__version__ = "0.1.0"
