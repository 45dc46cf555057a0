"""Deprecated: fetching, verifying, converting and caching the registered
releases is `bn_zoo.models.hub`'s; `converter` is `bn_zoo.models.releases`'."""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    "converter": "bn_zoo.models.releases:converter",
    "ConversionError": "bn_zoo.models.releases:ConversionError",
    "RELEASES_SUBDIR": "bn_zoo.models.hub:RELEASES_SUBDIR",
    **{name: f"bn_zoo.models.hub:{name}" for name in (
        "converted_path", "fetch_converted", "fetch_release", "verify_hash_prefix")},
})
