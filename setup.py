"""Packaging for bn_zoo: the Batch Normalization paper's networks in Keras 3."""

from setuptools import find_packages, setup

setup(
    name="bn_zoo",
    version="0.1.0",
    description=(
        "Reference Keras 3 / TensorFlow implementation of Batch Normalization "
        "(Ioffe & Szegedy, 2015): layer, model zoo, trainers and export."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["bn_zoo", "bn_zoo.*", "trainers", "configs"]),
    package_data={"bn_zoo": ["weights/*.weights.h5"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        "importlib_resources",
        "absl-py",
        "ml-collections",
        "matplotlib",
    ],
    extras_require={
        # Reading the Caffe BN-Inception's .pth (bn_zoo.convert.from_caffe_torch).
        "torch": ["torch"],
        # Test-only oracles: tf_slim's inception_v2 and PyTorch for the
        # pretrained-models bninception module. .ci/run adds tf_keras of the
        # installed TensorFlow's release (tf_slim's layers on TF 2.16+) and
        # pretrained-models without its torchvision dependency.
        "test": ["pytest", "tf_slim", "torch"],
    },
)
