"""Deprecated: `convert_batch_normalization` (Keras' BN swapped for ours) is
`bn_zoo.layers.swap`'s, also `bn_zoo.layers.convert_batch_normalization`;
`load_keras_variables` is `bn_zoo.layers.keras_layout`'s. Every name below
still works, with a DeprecationWarning.
"""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    "convert_batch_normalization": "bn_zoo.layers.swap:convert_batch_normalization",
    "load_keras_variables": "bn_zoo.layers.keras_layout:load_keras_variables",
})
