"""Read a Keras 3 Functional or Sequential model into a flat layer DAG.

Nested models used as layers are inlined: their layers appear as calls of
the outer graph, wired to the outer tensors. Composite custom layers (a
layer, or a subclassed model, whose `call()` is made of other Keras layers
and `keras.ops`, and which owns no weights of its own) that the engine has
no rule for are opened the same way: `call()` is traced on symbolic inputs
and the layers it calls become calls of the graph. A layer called several
times (shared weights) appears once per call.

Each call carries its `ChannelRule`, and each tensor the axis that holds its
channels (the last one, or axis 1 after a channels_first layer).
"""

import dataclasses
import weakref

import keras

from wootz_keras.graph.channel_rules import as_boundary, channel_rule, known_rule


@dataclasses.dataclass(eq=False)
class Tensor:
    """A symbolic tensor of the flattened graph; `axis` holds its channels
    (None until a layer says: model inputs, outputs of boundaries)."""
    key: tuple
    shape: tuple
    producer: "Call | None" = None      # None for a model input
    consumers: list = dataclasses.field(default_factory=list)
    axis: int = None

    @property
    def axis_or_last(self):
        return self.axis if self.axis is not None else len(self.shape) - 1

    @property
    def channels(self):
        if not self.shape:
            return 1
        return self.shape[self.axis_or_last] if len(self.shape) > 1 else 1

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
    rule: object = dataclasses.field(default=None, repr=False)   # its ChannelRule
    name: str = None                    # unique name of its layer in the flattened graph
    open_error: str = None              # why a composite layer could not be opened

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


# -- opening composite layers -------------------------------------------------------------
_TRACES = weakref.WeakKeyDictionary()       # Keras Node -> (Function | None, error)


def _own_weights(layer):
    inner = {id(w) for sub in layer._flatten_layers(include_self=False) for w in sub.weights}
    return [w.name for w in layer.weights if id(w) not in inner]


def openable(layer):
    """Whether `layer` is a composite the engine may open: a layer (or a
    subclassed model) without a channel rule, not a Lambda, whose weights
    all belong to its sub-layers."""
    return (isinstance(layer, keras.layers.Layer) and not is_graph_model(layer)
            and not getattr(layer, "_wootz_wrapper", False)
            and known_rule(layer) is None and type(layer).__name__ != "Lambda"
            and not isinstance(layer, keras.layers.InputLayer))


def trace_call(layer, node):
    """(keras.Function of `layer.call` on fresh symbolic inputs shaped like
    `node`'s, None) or (None, why it cannot be traced). Cached per node."""
    try:
        return _TRACES[node]
    except (KeyError, TypeError):
        pass
    result = _trace(layer, node)
    try:
        _TRACES[node] = result
    except TypeError:
        pass
    return result


def _trace(layer, node):
    own = _own_weights(layer)
    if own:
        return None, f"it holds weights of its own ({own[0]!r}), outside any sub-layer"
    if not layer.built:
        return None, "it is not built"
    fresh = {}

    def swap(v):
        if isinstance(v, keras.KerasTensor):
            if id(v) not in fresh:
                fresh[id(v)] = keras.Input(batch_shape=v.shape, dtype=v.dtype)
            return fresh[id(v)]
        return v
    try:
        args, kwargs = keras.tree.map_structure(
            swap, (tuple(node.arguments.args), dict(node.arguments.kwargs)))
        outputs = layer.call(*args, **kwargs)
        flat = keras.tree.flatten(outputs)
        if not flat or not all(isinstance(o, keras.KerasTensor) for o in flat):
            return None, "its call() does not return symbolic tensors"
        if [tuple(o.shape) for o in flat] != [tuple(t.shape) for t in node.output_tensors]:
            return None, "its call() traced to other output shapes"
        inputs = [fresh[id(t)] for t in node.input_tensors]
        return keras.Function(inputs, outputs, name=f"{layer.name}_opened"), None
    except Exception as e:      # noqa: BLE001 - untraceable: the layer stays a boundary
        return None, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


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
        self.opened = {}              # id(composite layer) -> [traced Function per call]
        self._prefix = {}             # id(core) -> qualified name of the composite around it
        graph = _graph_of(model)
        inputs = [self._new_tensor(((), id(t)), t.shape) for t in graph.inputs]
        self.inputs = inputs
        outputs = self._walk(graph, (), dict(zip((id(t) for t in graph.inputs), inputs)), None)
        self.outputs = [outputs[id(t)] for t in keras.tree.flatten(graph.outputs)]
        for i, call in enumerate(self.calls):
            call.index = i
        self._name_calls()

    def _new_tensor(self, key, shape, producer=None):
        t = Tensor(key, tuple(shape), producer)
        self._by_key[key] = t
        self.tensors.append(t)
        return t

    def _walk(self, graph, ctx, known, prefix):
        """Inline `graph`'s nodes; `known` maps id(KerasTensor) -> Tensor."""
        known = dict(known)
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                op = node.operation
                if isinstance(op, keras.layers.InputLayer):
                    continue
                ins = [known[id(t)] for t in node.input_tensors]
                sub = _graph_of(op) if isinstance(op, keras.Model) else None
                open_error, inner_prefix = None, prefix
                if sub is not None:
                    self.nested_inputs.setdefault(id(op), ins)
                elif openable(op):
                    sub, open_error = trace_call(op, node)
                    if sub is not None:
                        self.opened.setdefault(id(op), []).append(sub)
                        inner_prefix = self._qualified(op, prefix)
                if sub is not None:
                    inner_ctx = ctx + (id(node),)
                    inner_inputs = keras.tree.flatten(sub.inputs)
                    inner = self._walk(sub, inner_ctx, {id(t): x for t, x in zip(inner_inputs, ins)},
                                       inner_prefix)
                    inner_outputs = keras.tree.flatten(sub.outputs)
                    for outer_t, inner_t in zip(node.output_tensors, inner_outputs):
                        known[id(outer_t)] = inner[id(inner_t)]
                    continue
                call = Call(op, ins, [], node=node, open_error=open_error)
                if prefix is not None:
                    self._prefix.setdefault(id(call.core), prefix)
                for t in node.output_tensors:
                    out = self._new_tensor(ctx + (id(t),), t.shape, call)
                    call.outputs.append(out)
                    known[id(t)] = out
                for t in ins:
                    t.consumers.append(call)
                self._settle(call)
                self.calls.append(call)
        return known

    def _qualified(self, layer, prefix):
        return layer.name if prefix is None else f"{prefix}_{layer.name}"

    def _settle(self, call):
        """Compute the call's rule and the channel axes of its tensors."""
        rule = channel_rule(call)
        axis = rule.axis
        if axis is not None and call.inputs:
            for t in call.inputs:
                if len(t.shape) <= axis:
                    continue
                if t.axis is None:
                    t.axis = axis
                elif t.axis != axis and rule.role != "boundary":
                    rule = as_boundary(
                        rule, f"layer {call.core.name!r} reads channels on axis {axis} but "
                              f"its input carries them on axis {t.axis}", warn=True)
        call.rule = rule
        if rule.out_axis is not None:
            out_axis = rule.out_axis
        elif axis is not None:
            out_axis = axis
        elif call.inputs and rule.role != "boundary":
            out_axis = call.inputs[0].axis
        else:
            out_axis = None
        for t in call.outputs:
            if out_axis is not None and len(t.shape) > out_axis and \
                    (not call.inputs or len(t.shape) == len(call.inputs[0].shape)
                     or rule.out_axis is not None):
                t.axis = out_axis

    def _name_calls(self):
        """Unique layer names: a layer opened out of a composite is named
        '<composite>_<layer>' (e.g. 'stage1_block0_conv1')."""
        cores, seen = [], set()
        for call in self.calls:
            if id(call.core) not in seen:
                seen.add(id(call.core))
                cores.append(call.core)
        self.names, taken = {}, set()
        for core in cores:
            name = core.name
            if id(core) in self._prefix:
                name = f"{self._prefix[id(core)]}_{core.name}"
            base, k = name, 1
            while name in taken and id(core) in self._prefix:
                k += 1
                name = f"{base}_{k}"
            taken.add(name)
            self.names[id(core)] = name
        self._by_name = {}
        for call in self.calls:
            call.name = self.names[id(call.core)]
            for key in (call.name, call.core.name, call.layer.name):
                self._by_name.setdefault(key, call.core)

    def name_of(self, layer):
        """The unique name of `layer` (a core layer) in this graph."""
        return self.names.get(id(unwrap(layer)), layer.name)

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
        if not hasattr(self, "_calls_by_core"):
            self._calls_by_core = {}
            for c in self.calls:
                self._calls_by_core.setdefault(id(c.core), []).append(c)
        return self._calls_by_core.get(id(core), [])

    def find_layer(self, name):
        """The (core) layer named `name`; ValueError naming it if absent."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ValueError(f"no layer named {name!r} in model {self.model.name!r}") from None
