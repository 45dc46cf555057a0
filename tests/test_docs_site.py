"""The API reference of the documentation site (mkdocs.yml, docs/api/) covers
every public name of bn_zoo's public packages.

mkdocstrings renders, for a `::: module` block, the names in its `members:`
list, or else the module's `__all__`, or else (a module without `__all__`) the
names the module defines itself. This test reads the pages' blocks that way
and checks them against the modules as Python sees them: each public name
(`__all__`, or the module's own non-underscore, non-module names) is rendered on
the module's page; a deprecated module's moved names on the page of their new
home. `mkdocs build --strict` (.ci/run) checks that every block, link and
page resolves.
"""

import importlib
import inspect
import os
import re

import yaml

from commands import ROOT

PUBLIC_PACKAGES = ("bn_zoo", "bn_zoo.layers", "bn_zoo.population", "bn_zoo.callbacks",
                   "bn_zoo.export", "bn_zoo.convert", "bn_zoo.data", "bn_zoo.training",
                   "bn_zoo.evaluation")


def _blocks():
    """{page: [(module, members or None)]} of docs/api/*.md."""
    pages = {}
    directory = os.path.join(ROOT, "docs", "api")
    for name in sorted(os.listdir(directory)):
        text = open(os.path.join(directory, name), encoding="utf-8").read()
        blocks = []
        for match in re.finditer(r"^::: (\S+)\n((?:    .*\n)*)", text, re.M):
            options = yaml.safe_load(re.sub(r"^    ", "", match.group(2), flags=re.M)) or {}
            blocks.append((match.group(1), (options.get("options") or {}).get("members")))
        pages[f"api/{name}"] = blocks
    return pages


def _public(module):
    """`__all__`; else a package's non-underscore names from bn_zoo (what it
    re-exports), a plain module's own."""
    if hasattr(module, "__all__"):
        return set(module.__all__)
    prefix = "bn_zoo" if hasattr(module, "__path__") else module.__name__
    return {n for n, v in vars(module).items() if not n.startswith("_")
            and not inspect.ismodule(v) and str(getattr(v, "__module__", prefix))
            .startswith(prefix)}


def _rendered(module_name, members):
    module = importlib.import_module(module_name)
    if members is False:
        return set()
    if members is not None:
        return set(members)
    return _public(module)


def test_every_public_name_has_its_api_page_and_the_nav_lists_every_page():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        config = yaml.load(f, Loader=yaml.BaseLoader)  # Its !!python tags stay text.
    api = next(entry["API reference"] for entry in config["nav"]
               if isinstance(entry, dict) and "API reference" in entry)
    nav_pages = {page for entry in api for page in entry.values()}
    pages = _blocks()
    assert set(pages) == nav_pages
    rendered = {}
    for blocks in pages.values():
        for module_name, members in blocks:
            rendered.setdefault(module_name, set()).update(_rendered(module_name, members))
    for name in PUBLIC_PACKAGES:
        assert name in rendered, f"no page renders {name}"
        module = importlib.import_module(name)
        moved = vars(module).get("_moved")
        if moved:  # A deprecated module: its names at their new home.
            for old, new in moved.items():
                home, _, attribute = new.partition(":")
                assert attribute in rendered.get(home, set()), (name, old, new)
            continue
        missing = _public(module) - rendered[name]
        missing = {n for n in missing if not inspect.ismodule(getattr(module, n))}
        assert not missing, f"{name}: {sorted(missing)} are not on its API page"
