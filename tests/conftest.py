"""Test session set-up: quiet TensorFlow, 2 logical CPUs, offline MNIST.

The logical devices must exist before TensorFlow initializes its runtime, so
this runs at import time, before any test module touches TensorFlow.
"""

import os

from commands import ROOT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED_TFDS = os.path.join(ROOT, os.pardir, "shared", "tensorflow_datasets")
if "TFDS_DATA_DIR" not in os.environ and os.path.isdir(_SHARED_TFDS):
    os.environ["TFDS_DATA_DIR"] = os.path.abspath(_SHARED_TFDS)

import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 2
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS
)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One `MirroredStrategy` over the logical CPUs, shared by every test.

    Its all-reduces are collective ops, whose instance keys are numbered per
    strategy: two strategies in one process can give different all-reduces the
    same key, and TensorFlow then aborts them with a shape mismatch.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < NUM_LOGICAL_CPUS:
        pytest.fail(f"conftest.py should make {NUM_LOGICAL_CPUS} logical CPUs: {devices}")
    return tf.distribute.MirroredStrategy(devices[:NUM_LOGICAL_CPUS])


@pytest.fixture
def policy(request):
    """Sets the global dtype policy named by the `policy` parameter
    (`@pytest.mark.parametrize("policy", [...], indirect=True)`), and restores
    the previous one afterwards."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy(previous)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "heavy: a test file that takes a minute or more; run before the others")


def pytest_collection_modifyitems(session, config, items):
    """Files marked `heavy` (`pytestmark = pytest.mark.heavy`) first, each
    file's tests in their own order. pytest-xdist's `--dist loadfile` hands
    out whole files in collection order, so a long file collected last would
    keep one worker busy after the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
