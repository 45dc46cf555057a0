"""Packaging: the metadata is in pyproject.toml (PEP 621); the package list is here.

The repository's top-level `trainers/` and `configs/` folders install as
`bn_zoo.trainers` and `bn_zoo.configs` (`[tool.setuptools.package-dir]` in
pyproject.toml), so the wheel installs one top-level package, `bn_zoo`.
setuptools' package discovery does not follow such a mapping, so the two
mapped packages are added to the packages found under `bn_zoo/`.
"""

from setuptools import find_packages, setup

MAPPED_PACKAGES = ["bn_zoo.configs", "bn_zoo.trainers"]

setup(packages=find_packages(include=["bn_zoo", "bn_zoo.*"]) + MAPPED_PACKAGES)
