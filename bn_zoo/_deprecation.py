"""Old import paths kept working for one release, with a DeprecationWarning.

A module whose names moved calls `alias(__name__, {old name: "new.module:name"})`:
reading (or, for names in `settable`, assigning) a moved name then warns
once per calling line and hands the new object on. The new home is imported
only when a moved name is first read, so an old path never adds an import
at load time (and no import circle).
"""

import importlib
import sys
import types
import warnings


def warn(old, new, stacklevel=3):
    """A DeprecationWarning that `old` is now `new`."""
    warnings.warn(
        f"{old} is deprecated and will be removed in a future release; use {new}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def _target(path):
    module, _, name = path.partition(":")
    return importlib.import_module(module), name


def _public(path):
    module, _, name = path.partition(":")
    return f"{module}.{name}"


class _AliasModule(types.ModuleType):
    """A module that hands on its moved names (see `alias`)."""

    def __getattr__(self, name):  # Called only for names the module lacks.
        moved = self.__dict__.get("_moved", {})
        computed = self.__dict__.get("_computed", {})
        if name in computed:
            make, new = computed[name]
            warn(f"{self.__name__}.{name}", new)
            return make()
        if name not in moved:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        warn(f"{self.__name__}.{name}", _public(moved[name]))
        module, attribute = _target(moved[name])
        return getattr(module, attribute)

    def __setattr__(self, name, value):
        if name in self.__dict__.get("_settable", ()):
            path = self.__dict__["_moved"][name]
            warn(f"{self.__name__}.{name}", _public(path))
            module, attribute = _target(path)
            setattr(module, attribute, value)
            return
        super().__setattr__(name, value)

    def __dir__(self):
        names = set(self.__dict__.get("_moved", {})) | set(self.__dict__.get("_computed", {}))
        return sorted(set(super().__dir__()) | names)


def alias(module_name, moved, settable=(), computed=None):
    """Makes module `module_name` hand on the names in `moved`.

    Args:
        module_name: The old module (`__name__` of the caller).
        moved: {old name: "new.module:new_name"}.
        settable: Old names whose assignment sets the new one (module-level
            settings such as a cache directory).
        computed: {old name: (function, what to use instead)}, for old names
            whose value is now made from the new homes (a view of a table).
    """
    module = sys.modules[module_name]
    module._moved = dict(moved)
    module._settable = frozenset(settable)
    module._computed = dict(computed or {})
    module.__class__ = _AliasModule
