"""Deprecated: `bn_zoo.models.releases.slim`."""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    name: f"bn_zoo.models.releases.slim:{name}"
    for name in ("ARCHIVE_SUFFIXES", "CHECKPOINT_NAME", "LOGITS", "SCOPE",
                 "extract_checkpoint", "from_slim", "slim_scope")
})
