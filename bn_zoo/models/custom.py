"""Deprecated: networks of your own are registered with the one
`register_model` of `bn_zoo.models.catalogue` (also `bn_zoo.register_model`),
which the zoo's own models use too. Every name below still works, with a
DeprecationWarning.
"""

from bn_zoo import _deprecation


def _registered():
    from bn_zoo.models import catalogue

    return {name: catalogue.model_info(name) for name in catalogue.list_models()
            if catalogue.model_info(name).family == "custom"}


_deprecation.alias(
    __name__,
    {
        "register_model": "bn_zoo.models.catalogue:register_model",
        "import_builder": "bn_zoo.models.catalogue:import_builder",
        "BuilderArgumentError": "bn_zoo.models.catalogue:BuilderArgumentError",
        "CUSTOM_RECIPE": "bn_zoo.models.catalogue:CUSTOM_RECIPE",
    },
    computed={
        # {name: ModelInfo} of the models registered in this process (a copy).
        "REGISTERED": (_registered, "bn_zoo.list_models() and bn_zoo.model_info(name)"),
    },
)
