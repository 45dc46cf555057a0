"""The Caffe BN-Inception, as ported to PyTorch, to `bn_inception(variant="caffe")`.

The release is the state dict `bn_inception-52deb4733.pth` of the
pretrained-models package's `bninception` (a port of the Caffe model). Its
keys are the Caffe layer names:

    <unit>.{weight [out, in, h, w], bias [out]}
    <unit>_bn.{weight, bias, running_mean, running_var}
    last_linear.{weight [1000, 1024], bias [1000]}

with units `conv1_7x7_s2`, `conv2_3x3_reduce`, `conv2_3x3` and
`inception_<m>_<branch>` (the zoo's own unit names). Every convolution has a
bias before its BN; since BN subtracts the mean, the bias folds into it
exactly: BN(Wx + b) = γ·(Wx − (μ − b))/√(σ² + ε) + β, so the zoo's bias-free
convolution gets moving mean μ − b. Reading the file needs PyTorch
(`pip install bn_zoo[torch]`).
"""

import os

import numpy as np

from bn_zoo.models.releases.assign import ConversionError, assign, build, check_classes, units

_STEM = {"conv1": "conv1_7x7_s2", "conv2_reduce": "conv2_3x3_reduce", "conv2": "conv2_3x3"}
CLASSIFIER = "last_linear"


def caffe_unit(unit):
    """The Caffe layer name of a zoo unit ("conv1" -> "conv1_7x7_s2")."""
    return _STEM.get(unit, unit)


def read_state_dict(path):
    """{key: float32 array} of a PyTorch state dict file.

    Raises:
        ImportError: PyTorch is not installed.
        ConversionError: the file is truncated, corrupted, or not a state dict.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading a PyTorch '.pth' file needs PyTorch: pip install 'bn_zoo[torch]' "
            "(or pip install torch)."
        ) from error
    path = os.fspath(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError...
        raise ConversionError(
            f"{path} cannot be read by torch.load ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}): it is "
            "truncated or corrupted. Download it again."
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{path} is not a PyTorch state dict of tensors.")
    return {key: value.detach().cpu().numpy() for key, value in state.items()}


def from_caffe_torch(state_dict_path, **factory_kwargs):
    """The zoo's BN-Inception with the weights of the Caffe BN-Inception's
    PyTorch state dict.

    Args:
        state_dict_path: The `.pth` file (e.g. `bn_inception-52deb4733.pth`).
        **factory_kwargs: Arguments of `create_model("bn_inception", ...)`:
            `include_top`, `classes` (1000), `classifier_activation`,
            `input_shape`, `pooling`, ... The variant is "caffe".

    Returns:
        A `keras.Model` with the moving statistics for inference. It expects
        `preprocess_input(x, "caffe_bn_inception")` inputs (BGR minus means).

    Raises:
        ImportError: PyTorch is not installed.
        ConversionError: the file is not this network's state dict, or is
            truncated; no model is returned.
    """
    if "weights" in factory_kwargs:
        raise TypeError("from_caffe_torch takes its weights from the file; drop `weights`.")
    check_classes(factory_kwargs, (1000,), "Caffe BN-Inception")
    state = read_state_dict(state_dict_path)
    model, finish = build("caffe", factory_kwargs)
    source = os.fspath(state_dict_path)
    used = set()

    def take(key):
        if key not in state:
            raise ConversionError(
                f"{source}: no {key!r}. It is not the Caffe BN-Inception state "
                f"dict (it has {len(state)} keys, e.g. {sorted(state)[:3]})."
            )
        used.add(key)
        return state[key].astype(np.float64)

    values = {}
    for unit, (conv, bn) in units(model).items():
        name = caffe_unit(unit)
        if conv.name != f"{unit}_conv" or bn is None or not hasattr(conv, "kernel"):
            raise ConversionError(f"The zoo model has no Caffe counterpart for {unit!r}.")
        values[(conv.name, "kernel")] = take(f"{name}.weight").transpose(2, 3, 1, 0)
        bias = take(f"{name}.bias")
        values[(bn.name, "gamma")] = take(f"{name}_bn.weight")
        values[(bn.name, "beta")] = take(f"{name}_bn.bias")
        values[(bn.name, "moving_mean")] = take(f"{name}_bn.running_mean") - bias
        values[(bn.name, "moving_variance")] = take(f"{name}_bn.running_var")
        used.add(f"{name}_bn.num_batches_tracked")
    if any(layer.name == "predictions" for layer in model.layers):
        values[("predictions", "kernel")] = take(f"{CLASSIFIER}.weight").T
        values[("predictions", "bias")] = take(f"{CLASSIFIER}.bias")
    else:
        used.update({f"{CLASSIFIER}.weight", f"{CLASSIFIER}.bias"})
    unused = sorted(set(state) - used)
    if unused:
        raise ConversionError(
            f"{source}: keys the zoo's network does not have: {unused[:5]}"
            f"{' ...' if len(unused) > 5 else ''}. It is another network."
        )
    assign(model, values, source)
    return finish(model)
