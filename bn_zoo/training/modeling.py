"""The model of a resolved config, built from the registry (the zoo's
models, those added with `bn_zoo.register_model`, and builders named by
import path, `"package.module:function"`)."""

import bn_zoo
from bn_zoo.models import catalogue


def create_model(config, classifier_activation=None):
    """`bn_zoo.create_model` for `config.model`, with random weights.

    The trainer builds it with `classifier_activation=None` and trains on the
    logits; `config.model.weights` is loaded afterwards, layer by layer
    (`bn_zoo.training.warm_start`), so that a head of another class count is
    built new. `config.synchronized_batch_norm` adds `synchronized=True` to
    `batch_norm_kwargs` (BN statistics over the global batch of all replicas);
    the initializers are seeded with `config.seed` unless `model.kwargs` sets
    a seed. A builder of your own gets `seed` and `batch_norm_kwargs` only if
    it takes them (`bn_zoo.register_model`).
    """
    kwargs = config.model.kwargs
    # Nested sub-configs (batch_norm_kwargs) must reach the factory as dicts.
    kwargs = kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs)
    if config.synchronized_batch_norm:
        batch_norm_kwargs = dict(kwargs.get("batch_norm_kwargs") or {})
        batch_norm_kwargs["synchronized"] = True
        kwargs["batch_norm_kwargs"] = batch_norm_kwargs
    kwargs.setdefault("seed", config.seed)
    return bn_zoo.create_model(
        config.model.name,
        weights=None,
        classifier_activation=classifier_activation,
        **kwargs,
    )


def registered_weights(config):
    """`config.model.weights` if it names registered weights of the model,
    else None (random weights, a file or a workdir)."""
    weights = config.model.get("weights")
    if isinstance(weights, str) and weights in catalogue.model_info(config.model.name).weights:
        return weights
    return None


def preprocessing_mode(config):
    """The input scaling mode (`preprocess_input`) of the model and its
    registered weights (their data config), else of the model."""
    return catalogue.data_config(config.model.name, registered_weights(config)).preprocessing


def data_classes(config, num_classes):
    """`config.model.kwargs` with `classes` set to the data's `num_classes`
    where the builder takes `classes`, the config leaves it unset and the
    builder's default differs; None where nothing changes."""
    kwargs = config.model.kwargs
    if num_classes is None or kwargs.get("classes") is not None:
        return None
    builder = catalogue.model_info(config.model.name).factory
    takes = getattr(builder, "takes", None)
    if takes is None or not takes("classes"):
        return None
    default = builder.arguments({}).get("classes") if hasattr(builder, "arguments") else None
    if default == num_classes:
        return None
    return num_classes
