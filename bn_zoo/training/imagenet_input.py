"""Deprecated: ImageNet's trainer input lives in `bn_zoo.data.imagenet`.

`bn_zoo.data.imagenet.ImageNetInput` is the trainer's ImageNet data source
(`config.data.name = "imagenet"`) and `bn_zoo.data.imagenet.pipeline_config`
turns a `config.data` into the pipeline's config; this module re-exports them
under their former names for one release.
"""

import warnings

from bn_zoo.data.imagenet import ImageNetInput  # noqa: F401 - re-exported
from bn_zoo.data.imagenet import pipeline_config as _pipeline_config  # noqa: F401

warnings.warn(
    "bn_zoo.training.imagenet_input is deprecated: import ImageNetInput and "
    "pipeline_config from bn_zoo.data.imagenet.", DeprecationWarning, stacklevel=2)
