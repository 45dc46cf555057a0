"""Layers of bn_zoo."""

from bn_zoo.layers.batch_normalization import (
    INFERENCE_STATISTICS,
    VARIANCE_CORRECTIONS,
    BatchNormalization,
    inference_affine,
    record_batch_statistics,
)
from bn_zoo.layers.swap import convert_batch_normalization

__all__ = [
    "BatchNormalization",
    "INFERENCE_STATISTICS",
    "VARIANCE_CORRECTIONS",
    "convert_batch_normalization",
    "inference_affine",
    "record_batch_statistics",
]
