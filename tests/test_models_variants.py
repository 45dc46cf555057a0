"""Argument handling of the BN-Inception variants and feature outputs (the
networks themselves are checked against the releases' reference code in
tests/test_convert_*.py)."""

import pytest

import bn_zoo
from bn_zoo.models import inception_variants


def test_paper_pyramid_is_strides_8_16_32_by_caffe_names():
    model = bn_zoo.create_model("bn_inception", include_top=False, features="pyramid",
                                input_shape=(64, 64, 3), depth_multiplier=0.25)
    shapes = {name: tuple(t.shape[1:3]) for name, t in model.output.items()}
    assert shapes == {"inception_3b_output": (8, 8), "inception_4d_output": (4, 4),
                      "inception_5b_output": (2, 2)}


def test_every_end_point_names_a_layer_of_its_variant():
    for variant in inception_variants.VARIANTS:
        points = inception_variants.end_points(variant)
        assert len(points) == 15
        assert set(inception_variants.PYRAMID[variant]) <= set(points)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(features=["Mixed_9z"]), ValueError, "Unknown end points"),
        (dict(features="Mixed_3c"), TypeError, "'pyramid' or a list"),
        (dict(features="pyramid", include_top=True), ValueError, "include_top=False"),
        (dict(features="pyramid", pooling="avg"), ValueError, "pooling=None"),
        (dict(variant="tf"), ValueError, "`variant` must be one of"),
    ],
)
def test_bad_variant_and_feature_arguments_are_refused(kwargs, error, match):
    kwargs = {"include_top": False, **kwargs}
    with pytest.raises(error, match=match):
        bn_zoo.create_model("bn_inception", variant=kwargs.pop("variant", "slim"), **kwargs)


def test_release_variants_need_batch_norm():
    with pytest.raises(ValueError, match="has no BN"):
        bn_zoo.create_model("inception", variant="caffe")
