"""Deprecated: `bn_zoo.models.releases.caffe_torch`."""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    name: f"bn_zoo.models.releases.caffe_torch:{name}"
    for name in ("CLASSIFIER", "caffe_unit", "from_caffe_torch", "read_state_dict")
})
