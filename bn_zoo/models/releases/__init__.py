"""Converters from the public BN-Inception releases to the zoo's network.

They make the weights registered as `bn_inception`'s "imagenet" (TF-slim's
`inception_v2`) and "imagenet_caffe" (the Caffe BN-Inception's PyTorch port):

    model = bn_zoo.models.releases.from_slim("inception_v2_2016_08_28.tar.gz")
    model = bn_zoo.models.releases.from_caffe_torch("bn_inception-52deb4733.pth")

Both take the keyword arguments of `create_model("bn_inception", ...)` and
return the converted `keras.Model`; `python -m trainers.convert` writes one
to a `.weights.h5` file. `create_model("bn_inception", weights="imagenet")`
(slim) and `weights="imagenet_caffe"` fetch, convert and cache the releases
themselves (`bn_zoo.models.hub`).
"""

from bn_zoo.models.releases.assign import ConversionError
from bn_zoo.models.releases.caffe_torch import from_caffe_torch
from bn_zoo.models.releases.slim import from_slim

SOURCES = ("slim", "caffe_torch")


def converter(source):
    """The converter function of a release kind, one of `SOURCES`."""
    if source not in SOURCES:
        raise ValueError(f"Unknown release {source!r}; known: {SOURCES}.")
    return {"slim": from_slim, "caffe_torch": from_caffe_torch}[source]


__all__ = ["ConversionError", "SOURCES", "converter", "from_caffe_torch", "from_slim"]
