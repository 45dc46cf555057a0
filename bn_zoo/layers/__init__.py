"""Layers of bn_zoo."""

from bn_zoo.layers.batch_normalization import (
    INFERENCE_STATISTICS,
    VARIANCE_CORRECTIONS,
    BatchNormalization,
    inference_affine,
    record_batch_statistics,
)

__all__ = [
    "BatchNormalization",
    "INFERENCE_STATISTICS",
    "VARIANCE_CORRECTIONS",
    "inference_affine",
    "record_batch_statistics",
]
