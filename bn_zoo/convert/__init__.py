"""Deprecated: the release converters moved beside the weights they make,
`bn_zoo.models.releases` (`from_slim`, `from_caffe_torch`, `ConversionError`,
`SOURCES`); fetching and caching the registered releases is
`bn_zoo.models.hub`'s. Every name below still works, with a
DeprecationWarning.
"""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    name: f"bn_zoo.models.releases:{name}"
    for name in ("ConversionError", "SOURCES", "from_caffe_torch", "from_slim")
})
