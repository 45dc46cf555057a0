"""Converters from the public BN-Inception releases to the zoo's models.

    model = bn_zoo.convert.from_slim("inception_v2_2016_08_28.tar.gz")
    model = bn_zoo.convert.from_caffe_torch("bn_inception-52deb4733.pth")

Both take the keyword arguments of `create_model("bn_inception", ...)` and
return the converted `keras.Model`; `python -m trainers.convert` writes one
to a `.weights.h5` file. `create_model("bn_inception", weights="imagenet")`
(slim) and `weights="imagenet_caffe"` fetch and convert the releases
themselves (`bn_zoo.convert.releases`).
"""

from bn_zoo.convert.assign import ConversionError
from bn_zoo.convert.caffe_torch import from_caffe_torch
from bn_zoo.convert.slim import from_slim

SOURCES = ("slim", "caffe_torch")

__all__ = ["ConversionError", "SOURCES", "from_caffe_torch", "from_slim"]
