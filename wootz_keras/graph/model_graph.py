"""Read a Keras 3 Functional or Sequential model into a flat layer DAG.

Nested models used as layers are inlined: their layers appear as calls of
the outer graph, wired to the outer tensors. A layer called several times
(shared weights) appears once per call.
"""

import dataclasses

import keras


@dataclasses.dataclass(eq=False)
class Tensor:
    """A symbolic tensor of the flattened graph."""
    key: tuple
    shape: tuple
    producer: "Call | None" = None      # None for a model input
    consumers: list = dataclasses.field(default_factory=list)

    @property
    def channels(self):
        return self.shape[-1] if self.shape else 1

    def __repr__(self):
        src = self.producer.layer.name if self.producer else "input"
        return f"Tensor({src}, {self.shape})"


@dataclasses.dataclass(eq=False)
class Call:
    """One call of a (non-model) layer: its input and output tensors."""
    layer: object
    inputs: list
    outputs: list
    index: int = 0
    node: object = dataclasses.field(default=None, repr=False)   # the Keras Node (call arguments)

    @property
    def core(self):
        """The layer doing the work, looking through pruning wrappers."""
        return unwrap(self.layer)

    def __repr__(self):
        return f"Call({self.layer.name})"


def unwrap(layer):
    """The layer inside a wootz pruning wrapper (or the layer itself)."""
    while getattr(layer, "_wootz_wrapper", False):
        layer = layer.layer
    return layer


def _graph_of(model):
    """The Functional graph behind a Functional or Sequential model."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError(
                f"Sequential model {model.name!r} has no graph yet: give it an "
                "Input layer (keras.Input(shape)) or build it first")
        return model._functional
    if hasattr(model, "_nodes_by_depth") and hasattr(model, "_operations"):
        return model
    return None


def is_graph_model(layer):
    """True for Functional and Sequential models (anything with a layer graph)."""
    return isinstance(layer, keras.Model) and _graph_of(layer) is not None


class LayerGraph:
    """A model's layers as a flat DAG of calls, in topological order.

    Example:
        >>> from wootz_keras import zoo
        >>> g = LayerGraph(zoo.plain_cnn())
        >>> g.calls[0].layer.name
        'block1_conv'
    """

    def __init__(self, model):
        if not isinstance(model, keras.Model) or _graph_of(model) is None:
            name = getattr(model, "name", type(model).__name__)
            raise ValueError(
                f"model {name!r} ({type(model).__name__}) has no layer graph: "
                "wootz_keras works on Functional and Sequential models; rebuild a "
                "subclassed model with the functional API")
        self.model = model
        self.calls = []
        self.tensors = []
        self._by_key = {}
        self.nested_inputs = {}       # id(nested model) -> outer Tensors fed to it
        graph = _graph_of(model)
        inputs = [self._new_tensor(((), id(t)), t.shape) for t in graph.inputs]
        self.inputs = inputs
        outputs = self._walk(graph, (), dict(zip((id(t) for t in graph.inputs), inputs)))
        self.outputs = [outputs[id(t)] for t in keras.tree.flatten(graph.outputs)]
        for i, call in enumerate(self.calls):
            call.index = i

    def _new_tensor(self, key, shape, producer=None):
        t = Tensor(key, tuple(shape), producer)
        self._by_key[key] = t
        self.tensors.append(t)
        return t

    def _walk(self, graph, ctx, known):
        """Inline `graph`'s nodes; `known` maps id(KerasTensor) -> Tensor."""
        known = dict(known)
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                op = node.operation
                if isinstance(op, keras.layers.InputLayer):
                    continue
                ins = [known[id(t)] for t in node.input_tensors]
                sub = _graph_of(op) if isinstance(op, keras.Model) else None
                if sub is not None:
                    self.nested_inputs.setdefault(id(op), ins)
                    inner_ctx = ctx + (id(node),)
                    inner_inputs = keras.tree.flatten(sub.inputs)
                    inner = self._walk(sub, inner_ctx, {id(t): x for t, x in zip(inner_inputs, ins)})
                    inner_outputs = keras.tree.flatten(sub.outputs)
                    for outer_t, inner_t in zip(node.output_tensors, inner_outputs):
                        known[id(outer_t)] = inner[id(inner_t)]
                    continue
                call = Call(op, ins, [], node=node)
                for t in node.output_tensors:
                    out = self._new_tensor(ctx + (id(t),), t.shape, call)
                    call.outputs.append(out)
                    known[id(t)] = out
                for t in ins:
                    t.consumers.append(call)
                self.calls.append(call)
        return known

    def layers(self):
        """Unique layers (wrappers included) in first-call order."""
        seen, out = set(), []
        for call in self.calls:
            if id(call.layer) not in seen:
                seen.add(id(call.layer))
                out.append(call.layer)
        return out

    def calls_of(self, layer):
        """All calls of `layer` (looking through wrappers)."""
        core = unwrap(layer)
        return [c for c in self.calls if c.core is core]

    def find_layer(self, name):
        """The (core) layer named `name`; ValueError naming it if absent."""
        for call in self.calls:
            if call.core.name == name or call.layer.name == name:
                return call.core
        raise ValueError(f"no layer named {name!r} in model {self.model.name!r}")
