"""Random releases of the two public BN-Inception networks, made and run by
their own reference code (test-only oracles, never downloads):

- TF-slim: `tf_slim.nets.inception_v2` in a `tf.compat.v1` graph, saved as
  the release is: `inception_v2.ckpt` (V1 single-file checkpoint) in
  `inception_v2_2016_08_28.tar.gz`.
- Caffe BN-Inception: the pretrained-models package's `bninception` module
  (loaded from its file, so the package's torchvision imports are skipped),
  saved as a legacy-format `torch.save` state dict named with its own sha256
  prefix, like `bn_inception-52deb4733.pth`.

Every variable, moving statistics and biases included, gets random values,
so that nothing cancels in the comparison.
"""

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
import tarfile

import numpy as np
import pytest


def _slim():
    """tf_slim, importable on TF 2.21 once `tf_keras.legacy_tf_layers` (which
    TF's `tensorflow.python.layers` forwards to) names tf_keras' private copy."""
    pytest.importorskip("tf_keras")
    pytest.importorskip("tf_slim")
    legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    for module in pkgutil.iter_modules(legacy.__path__):
        sys.modules.setdefault(
            f"tf_keras.legacy_tf_layers.{module.name}",
            importlib.import_module(f"tf_keras.src.legacy_tf_layers.{module.name}"),
        )
    import tf_slim
    from tf_slim.nets import inception_v2

    return tf_slim, inception_v2


def _random_value(name, shape, rng):
    if name.endswith("moving_variance") or name.endswith("running_var"):
        return rng.uniform(0.5, 2.0, shape)
    if name.endswith(("moving_mean", "running_mean")):
        return rng.normal(0.0, 0.2, shape)
    if name.endswith(("beta", "biases", "bias")):
        return rng.normal(0.0, 0.2, shape)
    if name.endswith("gamma") or (len(shape) == 1):  # torch BN weight
        return rng.uniform(0.5, 1.5, shape)
    if "depthwise" in name:
        fan_in = shape[0] * shape[1]
    elif len(shape) == 4 and name.endswith(".weight"):  # torch [out, in, h, w]
        fan_in = shape[1] * shape[2] * shape[3]
    elif len(shape) == 2:  # torch linear [out, in]
        fan_in = shape[1]
    else:  # TF [h, w, in, out]
        fan_in = int(np.prod(shape[:-1]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def slim_release(directory, images, seed=0, checkpoint_format="V1"):
    """Makes a random slim inception_v2 release and runs it.

    Args:
        directory: Where to write `inception_v2_2016_08_28.tar.gz`.
        images: [n, h, w, 3] float images in [-1, 1].
        checkpoint_format: "V1" (the release's) or "V2".

    Returns:
        (archive path, {end point: float64 array} incl. "Logits" [n, 1001]).
    """
    import tensorflow as tf

    slim, inception_v2 = _slim()
    rng = np.random.default_rng(seed)
    work = os.path.join(directory, f"slim_{checkpoint_format}")
    os.makedirs(work, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None,) + images.shape[1:])
        with slim.arg_scope(inception_v2.inception_v2_arg_scope()):
            logits, end_points = inception_v2.inception_v2(
                x, num_classes=1001, is_training=False
            )
        variables = tf.compat.v1.global_variables()
        with tf.compat.v1.Session() as session:
            session.run(
                [v.initializer for v in variables],
                {v.initial_value: _random_value(v.op.name, v.shape.as_list(), rng)
                 for v in variables},
            )
            version = getattr(tf.compat.v1.train.SaverDef, checkpoint_format)
            saver = tf.compat.v1.train.Saver(variables, write_version=version)
            saver.save(session, os.path.join(work, "inception_v2.ckpt"), write_meta_graph=False)
            names = [n for n in end_points if n != "Predictions"]
            outputs = session.run([end_points[n] for n in names], {x: images})
    archive = os.path.join(work, "inception_v2_2016_08_28.tar.gz")
    # Level 1: random weights barely compress, and level 9 only costs time.
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name in sorted(os.listdir(work)):
            if name.startswith("inception_v2.ckpt"):
                tar.add(os.path.join(work, name), arcname=name)
    return archive, {n: np.asarray(o, np.float64) for n, o in zip(names, outputs)}


def _bninception_module():
    """pretrained-models' `bninception.py`, loaded from its file."""
    pytest.importorskip("torch")
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None:
        pytest.skip("pretrainedmodels is not installed (pip install --no-deps pretrainedmodels)")
    path = os.path.join(spec.submodule_search_locations[0], "models", "bninception.py")
    module_spec = importlib.util.spec_from_file_location("_reference_bninception", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


CAFFE_STEM = {
    "conv1_7x7_s2": "conv1_relu_7x7",
    "pool1_3x3_s2": "pool1_3x3_s2",
    "conv2_3x3_reduce": "conv2_relu_3x3_reduce",
    "conv2_3x3": "conv2_relu_3x3",
    "pool2_3x3_s2": "pool2_3x3_s2",
}
CAFFE_BLOCKS = tuple(
    f"inception_{m}_output"
    for m in ("3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
)


def caffe_release(directory, images, seed=0):
    """Makes a random Caffe BN-Inception state dict and runs the module.

    Args:
        directory: Where to write `bn_inception-<sha256 prefix>.pth`.
        images: [n, h, w, 3] float images, already BGR minus means.

    Returns:
        (state dict path, {end point: float64 NHWC array} incl. "logits").
    """
    import torch

    module = _bninception_module()
    rng = np.random.default_rng(seed)
    net = module.BNInception(num_classes=1000)
    state = net.state_dict()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        state[key] = torch.from_numpy(_random_value(key, tuple(value.shape), rng).astype(np.float32))
    net.load_state_dict(state)
    net.eval()

    outputs = {}
    for name, attribute in CAFFE_STEM.items():
        getattr(net, attribute).register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().clone())
        )
    blocks = []
    real_cat = torch.cat

    def recording_cat(tensors, dim=0):
        result = real_cat(tensors, dim)
        blocks.append(result.detach().clone())
        return result

    torch.cat = recording_cat
    try:
        with torch.no_grad():
            logits = net(torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32)))
    finally:
        torch.cat = real_cat
    assert len(blocks) == len(CAFFE_BLOCKS)
    outputs.update(zip(CAFFE_BLOCKS, blocks))
    result = {n: o.numpy().astype(np.float64).transpose(0, 2, 3, 1) for n, o in outputs.items()}
    result["logits"] = logits.numpy().astype(np.float64)

    partial = os.path.join(directory, "bn_inception.pth.partial")
    # The release predates the zip format: save the legacy pickle format.
    torch.save(net.state_dict(), partial, _use_new_zipfile_serialization=False)
    with open(partial, "rb") as f:
        prefix = hashlib.sha256(f.read()).hexdigest()[:9]
    path = os.path.join(directory, f"bn_inception-{prefix}.pth")
    os.replace(partial, path)
    return path, result


def assert_close(ours, reference, name, rtol=1e-4):
    """Agreement to `rtol` of the reference's scale (max |value|) everywhere."""
    ours = np.asarray(ours, np.float64)
    assert ours.shape == reference.shape, (name, ours.shape, reference.shape)
    scale = np.max(np.abs(reference))
    assert scale > 0, name
    error = np.max(np.abs(ours - reference)) / scale
    assert error <= rtol, f"{name}: max |ours - reference| / max |reference| = {error:.2e}"
