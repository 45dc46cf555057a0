"""The private TensorFlow and Keras APIs bn_zoo relies on: one, on purpose.

bn_zoo uses public Keras and TensorFlow APIs wherever they offer one. The
exception is `bn_zoo.layers.refusal`: TensorFlow has no public way to order
every later variable access of a `tf.function` after an assertion, so it
registers a resolver with `tensorflow.python.framework.auto_control_deps`.
If a TensorFlow release drops that registry, refusals quietly fall back to
holding back only what depends on the layer's outputs (docs/layer.md): the
tests here fail loudly instead, naming what disappeared.
"""

import ast
import pathlib

import tensorflow as tf

import commands

ROOT = pathlib.Path(commands.ROOT)
PRIVATE = ("tensorflow.python", "keras.src", "tf_keras.src")
# {file: the private modules it may import, and why}.
ALLOWED = {
    "bn_zoo/layers/refusal.py": {
        "tensorflow.python.framework": "auto_control_deps' resource resolver registry",
    },
}


def _private_imports(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n for n in names if n.startswith(PRIVATE))
    return found


def test_no_private_imports_but_the_refusal_resolver():
    used = {}
    for top in ("bn_zoo", "trainers", "configs"):
        for path in sorted((ROOT / top).rglob("*.py")):
            private = _private_imports(path)
            if private:
                used[str(path.relative_to(ROOT))] = private
    unexpected = {f: sorted(m for m in modules if m not in ALLOWED.get(f, {}))
                  for f, modules in used.items()}
    unexpected = {f: m for f, m in unexpected.items() if m}
    assert not unexpected, (
        f"Private Keras/TensorFlow imports: {unexpected}. Use the public API, or, where "
        "there is none, add the file to ALLOWED with the reason and say so in its docs.")
    stale = {f: m for f, modules in ALLOWED.items() for m in modules
             if m not in used.get(f, set())}
    assert not stale, f"ALLOWED names imports that are gone: {stale}; remove them."


def test_tensorflow_still_has_the_resolver_registry():
    try:
        from tensorflow.python.framework import auto_control_deps
    except ImportError as error:  # pragma: no cover - a TensorFlow without it
        raise AssertionError(
            f"TensorFlow {tf.__version__} has no tensorflow.python.framework."
            f"auto_control_deps ({error}); bn_zoo.layers.refusal can no longer order "
            "variable updates after a refusal.") from None
    assert callable(getattr(auto_control_deps, "register_acd_resource_resolver", None)), (
        f"TensorFlow {tf.__version__} dropped auto_control_deps."
        "register_acd_resource_resolver; bn_zoo.layers.refusal can no longer order "
        "variable updates after a refusal (it falls back silently).")


def _control_predecessors(mark):
    """Whether, in a traced function, a variable update written after an
    assertion named `mark` waits for it (a control dependency)."""
    variable = tf.Variable(0.0)

    @tf.function(autograph=False)
    def step(count):
        tf.debugging.Assert(tf.greater(count, 1.0), ["refused"], name=mark)
        variable.assign_add(1.0)

    graph = step.get_concrete_function(tf.TensorSpec([], tf.float32)).graph
    assertion = next(op for op in graph.get_operations() if op.type == "Assert")
    update = next(op for op in graph.get_operations() if op.type == "AssignAddVariableOp")
    return assertion in update.control_inputs


def test_the_refusal_resolver_orders_later_updates_after_the_assertion():
    from bn_zoo.layers import refusal

    assert _control_predecessors(refusal._MARK), (
        "bn_zoo.layers.refusal's assertion no longer orders a later variable update "
        "after it: its auto_control_deps resolver was not registered or not called "
        f"(TensorFlow {tf.__version__}).")
    # Another assertion is not ordered so: the order above is the resolver's doing.
    assert not _control_predecessors("some_other_assert")
