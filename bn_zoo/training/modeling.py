"""The model of a resolved config, built from the registry (the zoo's
models, those added with `bn_zoo.register_model`, and builders named by
import path, `"package.module:function"`)."""

import bn_zoo


def create_model(config, classifier_activation=None):
    """`bn_zoo.create_model` for `config.model`, with random weights.

    The trainer builds it with `classifier_activation=None` and trains on the
    logits. `config.synchronized_batch_norm` adds `synchronized=True` to
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


def preprocessing_mode(config):
    """The registry's input scaling mode of the model (`preprocess_input`)."""
    return bn_zoo.model_info(config.model.name).preprocessing
