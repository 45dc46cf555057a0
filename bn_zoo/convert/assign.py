"""Deprecated: `bn_zoo.models.releases.assign`."""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    name: f"bn_zoo.models.releases.assign:{name}"
    for name in ("ConversionError", "assign", "check_classes", "units")
})
