"""Deprecated: registered weights and safe loading have new homes.

- `bn_zoo.models.catalogue`: `RegisteredWeights`, `shipped`, the weights of
  each model (`weights_of`, `register_weights`, `preprocessing_of`);
- `bn_zoo.models.hub`: `create_model(weights=...)`, `fetch`, `CACHE_DIR`;
- `bn_zoo.models.weights_files`: `load_weights`, `save_weights_atomically`,
  `sha256_of`, `WEIGHTS_SUFFIX`.

Every name below still works, with a DeprecationWarning; `WEIGHTS` is a view
of the catalogue keyed by (model name, weights name), as before.
"""

import collections.abc

from bn_zoo import _deprecation


class _WeightsTable(collections.abc.MutableMapping):
    """The catalogue's registered weights as the old
    {(model name, weights name): RegisteredWeights} table."""

    def __getitem__(self, key):
        from bn_zoo.models import catalogue

        model_name, weights_name = key
        if model_name not in catalogue.list_models():
            raise KeyError(key)
        return catalogue.weights_of(model_name)[weights_name]

    def __setitem__(self, key, entry):
        from bn_zoo.models import catalogue

        catalogue.register_weights(*key, entry)

    def __delitem__(self, key):
        from bn_zoo.models import catalogue

        self[key]  # KeyError if absent
        catalogue._remove_weights(*key)

    def __iter__(self):
        from bn_zoo.models import catalogue

        return iter([(m, w) for m in catalogue.list_models() for w in catalogue.weights_of(m)])

    def __len__(self):
        return sum(1 for _ in self)


def registered_weights(model_name):
    """Deprecated: `bn_zoo.models.catalogue.weights_of`."""
    from bn_zoo.models import catalogue

    _deprecation.warn(f"{__name__}.registered_weights", "bn_zoo.models.catalogue.weights_of")
    return catalogue.weights_of(model_name)


def validate_weights_argument(model_name, weights, include_top, classes):
    """Deprecated: `bn_zoo.create_model` checks `weights=` itself."""
    from bn_zoo.models import catalogue, hub

    _deprecation.warn(f"{__name__}.validate_weights_argument", "bn_zoo.create_model")
    arguments = {"include_top": include_top, "classes": classes}
    return hub._check_weights(catalogue.model_info(model_name), weights, arguments)


def load_into(model, model_name, weights, include_top, batch_norm_kwargs=None, classes=None):
    """Deprecated: `bn_zoo.create_model(name, weights=...)` loads the weights."""
    from bn_zoo import population
    from bn_zoo.models import catalogue, hub, weights_files

    _deprecation.warn(f"{__name__}.load_into", "bn_zoo.create_model(name, weights=...)")
    if weights is None:
        return
    info = catalogue.model_info(model_name)
    registered = info.weights.get(weights) if isinstance(weights, str) else None
    path = hub._weights_path(info, weights, registered, classes if include_top else None)
    weights_files.load_weights(model, path, allow_unused_layers=not include_top)
    chosen = (batch_norm_kwargs or {}).get("inference_statistics")
    if chosen is None and registered is not None:
        chosen = registered.inference_statistics
    if chosen is not None:
        population.set_inference_statistics(model, chosen)


_deprecation.alias(
    __name__,
    {
        "RegisteredWeights": "bn_zoo.models.catalogue:RegisteredWeights",
        "shipped": "bn_zoo.models.catalogue:shipped",
        "preprocessing_of": "bn_zoo.models.catalogue:preprocessing_of",
        "WEIGHTS_DIR": "bn_zoo.models.catalogue:WEIGHTS_DIR",
        "CACHE_DIR": "bn_zoo.models.hub:CACHE_DIR",
        "CACHE_SUBDIR": "bn_zoo.models.hub:CACHE_SUBDIR",
        "fetch": "bn_zoo.models.hub:fetch",
        "WEIGHTS_SUFFIX": "bn_zoo.models.weights_files:WEIGHTS_SUFFIX",
        "load_weights": "bn_zoo.models.weights_files:load_weights",
        "save_weights_atomically": "bn_zoo.models.weights_files:save_weights_atomically",
        "sha256_of": "bn_zoo.models.weights_files:sha256_of",
    },
    settable=("CACHE_DIR",),
    computed={"WEIGHTS": (_WeightsTable, "bn_zoo.models.catalogue.weights_of and register_weights")},
)
