"""Refusing a training step with m' <= 1 at run time, leaving every variable as it was.

With a static shape the layer raises a `ValueError` while tracing, before
anything runs. With a dynamic batch inside a `tf.function` it can only assert
when the step runs, and in a graph an assertion stops only the ops that wait
for it. Making the layer's outputs wait for it holds back the loss, every
gradient and every update computed from them, but not what Keras' optimizer
does without looking at the gradients: it increments `iterations`, applies
decoupled weight decay (AdamW) and updates EMA weights, and the loss tracker
counts the batch, none of which depends on the loss.

TensorFlow orders a function's stateful ops by the resources they touch
(automatic control dependencies). The resolver below declares that the
refusal's `Assert` writes every resource the function has captured, so every
later variable access in program order, including all of the above, runs after
it and not at all when it fails. It relies on `auto_control_deps`' resolver
registry, which tf.data and TPU code use the same way; if a TensorFlow release
drops it, refusals fall back to holding back what depends on the outputs.
"""

import tensorflow as tf

_MARK = "bn_zoo_refuse_single_value"


def assert_more_than_one(count, message):
    """An assertion that `count` > 1, ordered before every later variable access."""
    return tf.debugging.Assert(tf.greater(count, 1.0), [message], name=_MARK)


def _orders_every_later_resource_access(op, reads, writes):
    if op.type != "Assert" or _MARK not in op.name:
        return False
    captured = [
        t for t in getattr(op.graph, "internal_captures", ()) if t.dtype == tf.resource
    ]
    size = len(writes)
    writes.update(captured)
    return len(writes) != size


try:
    from tensorflow.python.framework import auto_control_deps as _acd

    _acd.register_acd_resource_resolver(_orders_every_later_resource_access)
except (ImportError, AttributeError):  # a TensorFlow without the registry
    pass
