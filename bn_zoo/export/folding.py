"""Folding batch normalization into the layer before it (Algorithm 2, step 11).

In the inference network of Ioffe & Szegedy (2015), Algorithm 2, every BN
layer is a fixed per-channel affine map y = a·x + b, with

    a = γ / √(Var[x] + ε),   b = β − a·E[x].

When x = W·u + c is the output of a convolution or a fully connected layer
(Section 3.2: BN is applied to x = Wu + b, right before the nonlinearity), the
two linear maps compose into one:

    y = a·(W·u + c) + b = (a·W)·u + (a·c + b)

so the BN layer can be dropped and the kernel scaled per output channel. This
is exact arithmetic; in float32 the folded network differs from the unfolded
one only by rounding.
"""

import keras
import numpy as np

from bn_zoo.layers.batch_normalization import BatchNormalization

# Layers whose last kernel axis (pointwise kernel for separable convolutions)
# indexes the output channels, and whose bias is added per output channel.
_KERNEL_LAST_AXIS_LAYERS = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
_DEPTHWISE_LAYERS = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
FOLDABLE_LAYERS = _KERNEL_LAST_AXIS_LAYERS + _DEPTHWISE_LAYERS
BATCH_NORMALIZATION_LAYERS = (BatchNormalization, keras.layers.BatchNormalization)


def batch_norm_affine(layer):
    """The inference map `(a, b)` of a built BN layer, as float64 numpy arrays.

    Works for `bn_zoo.layers.BatchNormalization` (with whichever statistics
    its `inference_statistics` selects) and for `keras.layers.BatchNormalization`
    (moving statistics).
    """
    if isinstance(layer, BatchNormalization):
        a, b = layer.inference_affine()
        return np.asarray(a, np.float64), np.asarray(b, np.float64)
    if isinstance(layer, keras.layers.BatchNormalization):
        variance = np.asarray(layer.moving_variance, np.float64)
        a = 1.0 / np.sqrt(variance + layer.epsilon)
        if layer.scale:
            a = a * np.asarray(layer.gamma, np.float64)
        b = -a * np.asarray(layer.moving_mean, np.float64)
        if layer.center:
            b = b + np.asarray(layer.beta, np.float64)
        return a, b
    raise TypeError(
        "batch_norm_affine() takes a bn_zoo or Keras BatchNormalization layer; "
        f"received {type(layer).__name__} '{getattr(layer, 'name', '?')}'."
    )


def foldable_pairs(model):
    """Maps each BN layer of `model` that can be folded to the layer before it.

    A BN layer is foldable when it is called once, on the output of a
    Conv/SeparableConv/DepthwiseConv/Dense layer (called once, with a linear
    activation) that feeds nothing else, is not a model output, and whose
    output channels are the axis the BN normalizes.

    Returns:
        A dict `{id(bn_layer): (producer_layer, bn_layer)}` (of `model`'s own
        graph; a Sequential model is read as the functional graph of its
        layers, and nested models are not searched).
    """
    model = _as_functional(model)
    consumers = {}
    for node in _model_nodes(model):
        for tensor in node.input_tensors:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    outputs = {id(t) for t in model.outputs}
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, BATCH_NORMALIZATION_LAYERS):
            continue
        if len(layer._inbound_nodes) != 1:
            continue
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1:
            continue
        tensor = inputs[0]
        producer = tensor._keras_history.operation
        if (
            isinstance(producer, FOLDABLE_LAYERS)
            and len(producer._inbound_nodes) == 1
            and _is_linear(producer)
            and consumers.get(id(tensor)) == 1
            and id(tensor) not in outputs
            and _channel_axis(producer, len(tensor.shape))
            == layer.axis % len(tensor.shape)
        ):
            pairs[id(layer)] = (producer, layer)
    return pairs


def fold_batch_normalization(model):
    """Returns a new functional model with its BN layers folded away.

    Every foldable BN layer (see `foldable_pairs`) is removed, and the layer
    before it gets the kernel a·W and the bias a·c + b (a bias is created
    if the layer had none), with `(a, b)` from `batch_norm_affine`. All other
    layers, including BN layers that cannot be folded, are copied with their
    weights. Models nested in the model (functional or Sequential, at any
    depth) are folded the same way, each within its own graph: a BN whose
    producer sits in another model (e.g. the first layer of a nested model
    after the outer model's convolution) is kept. The input model is left
    unchanged.

    Args:
        model: A built functional `keras.Model` or `keras.Sequential` (built
            with an input shape).

    Returns:
        A functional `keras.Model` with the same inputs, outputs and name. In
        inference mode it computes what `model` computes, up to float
        rounding.

    Raises:
        TypeError: `model`, or a model nested in it, is a subclassed model,
            whose layers' connections cannot be read (rebuild it as a
            functional or Sequential model).
        ValueError: `model` is not built.
    """
    model = _as_functional(model)
    pairs = foldable_pairs(model)
    folded_producers = {id(producer): bn for producer, bn in pairs.values()}
    clones = {}

    def clone_function(layer):
        if id(layer) in pairs:
            return layer  # Never called: `call_function` skips it.
        if _is_graph_model(layer):
            return fold_batch_normalization(layer)  # With its weights.
        config = layer.get_config()
        if id(layer) in folded_producers:
            config["use_bias"] = True
            config["bias_initializer"] = "zeros"
        clone = layer.__class__.from_config(config)
        clones[id(layer)] = (layer, clone)
        return clone

    def call_function(layer, *args, **kwargs):
        if id(layer) in pairs:
            return args[0]
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(
        model, clone_function=clone_function, call_function=call_function
    )
    for layer, clone in clones.values():
        bn = folded_producers.get(id(layer))
        if bn is None:
            clone.set_weights(layer.get_weights())
        else:
            kernel, bias = _folded_kernel_and_bias(layer, *batch_norm_affine(bn))
            values = {w.name: w for w in layer.weights}  # e.g. a depthwise kernel
            values[_kernel(layer).name] = kernel
            values[layer.bias.name if layer.bias is not None else "bias"] = bias
            for weight in clone.weights:
                weight.assign(np.asarray(values[weight.name]).astype(weight.dtype))
    return folded


def _as_functional(model):
    """`model` as a functional model over the same layers (a Sequential one
    becomes the functional graph of its layers), after the checks."""
    if isinstance(model, keras.Sequential):
        if not model.built or not getattr(model, "_functional", None):
            raise ValueError(
                f"Sequential model '{model.name}' is not built with an input shape; "
                "start it with keras.Input(shape) (or call model.build(input_shape)) "
                "before folding.")
        inputs, outputs = model.inputs, model.outputs
        model = keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                            outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    _check_functional(model)
    for layer in model.layers:
        if (isinstance(layer, keras.Model) and not _is_graph_model(layer)
                and any(isinstance(l, BATCH_NORMALIZATION_LAYERS)
                        for l in layer._flatten_layers())):
            _check_functional(layer, nested_in=model)  # Raises.
    return model


def _is_graph_model(layer):
    """Whether `layer` is a model whose layer graph can be read."""
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"))


def _folded_kernel_and_bias(layer, a, b):
    """(a·W, a·c + b) in float64 for a foldable layer and a BN map (a, b)."""
    kernel = np.asarray(_kernel(layer), np.float64)
    channels = a.shape[0]
    depthwise = isinstance(layer, _DEPTHWISE_LAYERS)
    outputs = kernel.shape[-1] * (kernel.shape[-2] if depthwise else 1)
    if outputs != channels:
        raise ValueError(
            f"Cannot fold: layer '{layer.name}' has {outputs} output channels "
            f"(kernel shape {kernel.shape}) but the BN after it normalizes "
            f"{channels}."
        )
    # A depthwise layer's output channel i·multiplier + j comes from input
    # channel i through kernel slice [..., i, j].
    scale = a.reshape(kernel.shape[-2:]) if depthwise else a
    bias = np.zeros(channels) if layer.bias is None else np.asarray(layer.bias, np.float64)
    return kernel * scale, a * bias.reshape(-1) + b


def _kernel(layer):
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        return layer.pointwise_kernel
    return layer.kernel


def _channel_axis(layer, rank):
    """The axis of `layer`'s output that indexes its output channels."""
    if isinstance(layer, keras.layers.Dense):
        return rank - 1
    return 1 if layer.data_format == "channels_first" else rank - 1


def _is_linear(layer):
    activation = getattr(layer, "activation", None)
    return activation is None or activation is keras.activations.linear


def _model_nodes(model):
    """Every node (layer call) of the functional graph of `model`."""
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]


def _check_functional(model, nested_in=None):
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        where = f" nested in model '{nested_in.name}'" if nested_in is not None else ""
        raise TypeError(
            "Folding needs a functional keras.Model or a keras.Sequential (built with "
            "keras.Input and layer calls) to see which layer feeds each BN; received "
            f"{type(model).__name__} '{getattr(model, 'name', '?')}'{where}. Rebuild "
            "that network as a functional or Sequential model."
        )
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built; build it before folding.")
