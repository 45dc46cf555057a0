"""The three BN-Inception networks the zoo builds: the paper's, and the two
public releases whose ImageNet weights practitioners use.

Google never released the paper's weights. The two public releases train the
same design with small differences, and their weights fit only their own
network, so `BNInception(variant=...)` builds each exactly:

| variant | stem | 4c / 4d pool projections | BN | padding of stride-2 layers |
|---|---|---|---|---|
| `"paper"` | 7×7 separable | 128 (608 channels) | γ, ε = 1e-3 | TF `"same"` |
| `"slim"` | 7×7 separable with a bias, ReLU, no BN | 96 (576 channels) | no γ, ε = 1e-3 | TF `"same"` |
| `"caffe"` | plain 7×7 | 128 (608 channels) | γ, ε = 1e-5 | symmetric, Caffe |

- `"slim"`: TF-slim's `inception_v2` (`nets/inception_v2.py`, the network of
  `inception_v2_2016_08_28.tar.gz`). Its arg scope applies BN with
  `scale=False`, decay 0.9997 and ε = 0.001 to `conv2d` only, so the separable
  stem keeps its bias and ReLU and has no BN. Its end points are named
  `Conv2d_1a_7x7` ... `Mixed_5c`.
- `"caffe"`: the Caffe BN-Inception (Xiong et al.'s release for TSN), as ported
  to PyTorch by the pretrained-models package (`bninception`). Every conv has
  a bias before its BN; the converter folds it into the BN mean, so the
  network here has none. Stride-2 convolutions pad k//2 on every side
  (`ZeroPadding2D` then `"valid"`); stride-2 max pools use Caffe's ceil
  rounding (one zero row and column at the end, then `"valid"`: exact because
  their inputs are ReLU outputs, never negative); the module average pools
  count their zero padding (`count_include_pad`). Its end points are named as
  its blobs: `conv1_7x7_s2` ... `inception_5b_output`.

Every variant keeps the zoo's layer names (`inception_3a_1x1_conv`, ...), so
weights, folding and export treat them alike; `end_points(variant)` maps each
release's end-point names to them.
"""

import dataclasses

VARIANTS = ("paper", "slim", "caffe")


@dataclasses.dataclass(frozen=True)
class Variant:
    """How one variant differs from the paper's network.

    Attributes:
        name: One of `VARIANTS`.
        stem: Default `stem` ("separable" or "conv").
        pool_proj_widths: Filters of the pool projections that differ from
            Figure 5, {module name: filters}.
        stem_batch_norm: Whether BN follows the stem (else it has a bias).
        batch_norm: BN arguments the variant fixes, {name: value}.
        caffe_padding: Whether stride-2 layers and average pools pad as Caffe.
        preprocessing: The `preprocess_input` mode its weights expect.
    """

    name: str
    stem: str
    pool_proj_widths: dict
    stem_batch_norm: bool
    batch_norm: dict
    caffe_padding: bool
    preprocessing: str


_VARIANTS = {
    "paper": Variant(
        "paper", "separable", {}, True, {"scale": True, "epsilon": 1e-3}, False, "inception"
    ),
    "slim": Variant(
        "slim", "separable", {"4c": 96, "4d": 96}, False,
        {"scale": False, "epsilon": 1e-3}, False, "inception",
    ),
    "caffe": Variant(
        "caffe", "conv", {}, True, {"scale": True, "epsilon": 1e-5}, True, "caffe_bn_inception"
    ),
}


def get(name):
    """The `Variant` called `name`; a ValueError names the choices."""
    if name not in _VARIANTS:
        raise ValueError(
            f"`variant` must be one of {VARIANTS}: 'paper' is Figure 5, 'slim' "
            "TF-slim's inception_v2 and 'caffe' the Caffe BN-Inception (the "
            f"networks of the 'imagenet' and 'imagenet_caffe' weights). "
            f"Received: variant={name!r}"
        )
    return _VARIANTS[name]


# Figure 5's stem and modules, in order, with the layer each ends in.
_STEM = (
    ("conv1", "conv1_relu"),
    ("pool1", "pool1_pool"),
    ("conv2_reduce", "conv2_reduce_relu"),
    ("conv2", "conv2_relu"),
    ("pool2", "pool2_pool"),
)
_MODULE_NAMES = ("3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
_SLIM_STEM = ("Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3")
_SLIM_MODULES = (
    "Mixed_3b", "Mixed_3c", "Mixed_4a", "Mixed_4b", "Mixed_4c",
    "Mixed_4d", "Mixed_4e", "Mixed_5a", "Mixed_5b", "Mixed_5c",
)
_CAFFE_STEM = ("conv1_7x7_s2", "pool1_3x3_s2", "conv2_3x3_reduce", "conv2_3x3", "pool2_3x3_s2")

# The outputs at strides 8, 16 and 32, for feature pyramids.
PYRAMID = {"slim": ("Mixed_3c", "Mixed_4e", "Mixed_5c")}
PYRAMID["paper"] = PYRAMID["caffe"] = (
    "inception_3b_output", "inception_4d_output", "inception_5b_output",
)


def end_points(variant):
    """{end-point name: zoo layer name} of `variant`, in network order.

    slim's names for "slim" (`Conv2d_1a_7x7` ... `Mixed_5c`); the Caffe blob
    names for "caffe" and "paper" (`conv1_7x7_s2` ... `inception_5b_output`).
    """
    get(variant)
    stem_names = _SLIM_STEM if variant == "slim" else _CAFFE_STEM
    modules = (
        _SLIM_MODULES if variant == "slim"
        else tuple(f"inception_{m}_output" for m in _MODULE_NAMES)
    )
    points = {name: layer for name, (_, layer) in zip(stem_names, _STEM)}
    for name, module in zip(modules, _MODULE_NAMES):
        points[name] = f"inception_{module}_concat"
    return points
