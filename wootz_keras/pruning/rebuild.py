"""Rebuild a model layer by layer (nested models too), then copy weights.

Composite layers the analysis opened (see `LayerGraph`) are inlined: the
rebuilt model calls their (rebuilt) sub-layers and keras.ops directly, as
their `call()` did, so the sub-layers can be wrapped or shrunk.
"""

import inspect

import keras
import numpy as np

from wootz_keras.graph.model_graph import is_graph_model


class _Opened:
    """Stands in for an opened composite layer in a rebuild: each call replays
    the next traced call() on the rebuilt sub-layers."""

    def __init__(self, layer, traces):
        self.layer, self.traces, self.next = layer, traces, 0

    def replay(self, clone, call_fn, args, kwargs):
        fn = self.traces[min(self.next, len(self.traces) - 1)]
        self.next += 1
        inputs, seen = [], set()
        for x in keras.tree.flatten((args, kwargs)):
            if isinstance(x, keras.KerasTensor) and id(x) not in seen:
                seen.add(id(x))
                inputs.append(x)
        return fn._run_through_graph(inputs, operation_fn=clone, call_fn=call_fn)


class _Preset:
    """Initializer handing out a layer's final weights in creation order."""

    def __init__(self, arrays):
        self.arrays, self.used, self.ok = arrays, 0, True

    def __call__(self, shape, dtype=None):
        if self.used < len(self.arrays) and tuple(shape) == tuple(self.arrays[self.used].shape):
            self.used += 1
            return self.arrays[self.used - 1]
        self.ok = False
        return np.zeros(shape, dtype or "float32")


def _fast_build_ok(layer):
    """Built-in layers whose weights are all created, in order, from their
    own `*_initializer` attributes (not recurrent layers or wrappers)."""
    module = type(layer).__module__
    return module.startswith("keras.src.layers.") and not (
        ".rnn." in module or "wrapper" in module or "bidirectional" in module)


def _call_with_presets(layer, presets, call):
    """Build `layer` (and a wrapper's inner layer) from preset arrays: no
    random initialisation, no second copy; falls back to set_weights."""
    targets = [t for t in (layer, getattr(layer, "layer", None))
               if t is not None and id(t) in presets and not t.built and _fast_build_ok(t)]
    saved = []
    for t in targets:
        preset = _Preset(presets[id(t)])
        for name, value in list(vars(t).items()):
            if name.endswith("_initializer") and value is not None:
                saved.append((t, name, value, preset))
                object.__setattr__(t, name, preset)
    try:
        return call()
    finally:
        done = {}
        for t, name, value, preset in saved:
            object.__setattr__(t, name, value)
            done[id(t)] = (t, preset)
        for t, preset in done.values():
            if preset.ok and preset.used == len(presets[id(t)]) == len(t.weights):
                presets[id(t)] = None          # built from the arrays: nothing left to set


def set_presets(presets, pairs):
    """set_weights for every (new layer) whose preset was not used at build."""
    for new in pairs:
        arrays = presets.get(id(new))
        if arrays is not None:
            new.set_weights([np.asarray(a) for a in arrays])


def weight_values(layer):
    """Snapshots of `layer`'s weights as backend tensors, for presets: no copy
    through host arrays (later updates of either variable do not reach the
    other). A third cheaper than get_weights() for a whole ResNet-50's weights."""
    return [keras.ops.convert_to_tensor(v) for v in layer.weights]


def rebuild(model, make_layer, nested_input_shapes=None, opened=None, presets=None):
    """Clone `model`, replacing each leaf layer by `make_layer(layer)`.

    `make_layer` returns an unbuilt layer and may remember the pair to set
    weights once the clone is built. Nested models are rebuilt recursively;
    `nested_input_shapes` maps id(nested model) -> new input shapes when
    pruning changed the channels flowing into it; `opened` maps id(composite
    layer) -> its traced calls (LayerGraph.opened): those are inlined;
    `presets` maps id(new layer) -> its final weights: built-in layers are
    built straight from them (the entry is then set to None; `set_presets`
    sets the rest). Shared layers stay shared.

    Example:
        >>> from wootz_keras import zoo
        >>> copy = rebuild(zoo.plain_cnn(), lambda l: l.__class__.from_config(l.get_config()))
        >>> copy.name
        'plain_cnn'
    """
    nested_input_shapes = nested_input_shapes or {}
    opened = opened or {}
    cache = {}

    def clone(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if not isinstance(layer, keras.layers.Layer):
            return layer        # a stateless keras.ops Operation node (`x + 3.0`): reuse it
        if id(layer) in opened:
            new = _Opened(layer, opened[id(layer)])
        elif is_graph_model(layer):
            shapes = nested_input_shapes.get(id(layer))
            inputs = None
            if shapes is not None:
                inputs = [keras.Input(batch_shape=s, dtype=t.dtype, name=t.name)
                          for s, t in zip(shapes, keras.tree.flatten(layer.inputs))]
                inputs = inputs[0] if len(inputs) == 1 else inputs
            new = _clone_model(layer, inputs, clone, opened, call_fn)
        else:
            try:
                new = make_layer(layer)
            except Exception as e:      # noqa: BLE001 - name the layer at fault
                raise ValueError(f"cannot rebuild layer {layer.name!r} "
                                 f"({type(layer).__name__}): {type(e).__name__}: {e}") from e
        cache[id(layer)] = new
        return new

    presets = {} if presets is None else presets

    def call_fn(layer, *args, **kwargs):
        if isinstance(layer, _Opened):
            return layer.replay(clone, call_fn, args, kwargs)
        if presets:
            return _call_with_presets(layer, presets, lambda: _call(layer, *args, **kwargs))
        return _call(layer, *args, **kwargs)

    return _clone_model(model, None, clone, opened, call_fn)


def _accepted_kwargs(layer, kwargs):
    params = _call_parameters(type(layer), layer)
    if params is None:
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


_PARAMS = {}


def _call_parameters(cls, layer):
    if cls not in _PARAMS:
        params = inspect.signature(layer.call).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            _PARAMS[cls] = None
        else:
            _PARAMS[cls] = frozenset(params)
    return _PARAMS[cls]


def _call(layer, *args, **kwargs):
    """Replay a recorded call, dropping keyword arguments the new layer lacks
    (a wrapper's `mask` when the wrapper is swapped for its inner layer)."""
    if not kwargs:
        return layer(*args)
    return layer(*args, **_accepted_kwargs(layer, kwargs))


def _clone_model(model, inputs, clone, opened, call_fn):
    if isinstance(model, keras.Sequential):
        if any(id(layer) in opened for layer in model.layers):
            functional = model._functional     # a composite to inline: rebuild as Functional
            new = keras.models.clone_model(functional, input_tensors=inputs, clone_function=clone,
                                           call_function=call_fn)
            return keras.Model(new.inputs, new.outputs, name=model.name)
        return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone,
                                    call_function=call_fn)


def copy_config(layer, /, **changes):
    """A fresh, unbuilt layer of the same class with `changes` applied to its config."""
    config = layer.get_config()
    config.update(changes)
    if isinstance(layer, keras.layers.Lambda):
        # Rebuild around the same Python objects: a config round trip would
        # refuse a Python lambda (safe mode) or re-create it without its globals.
        base = {k: v for k, v in config.items()
                if k not in ("function", "output_shape", "mask", "arguments")}
        return layer.__class__(layer.function, output_shape=layer._output_shape, mask=layer.mask,
                               arguments=layer.arguments, **base)
    cls = layer.__class__
    if cls.__module__.startswith("keras.src.layers.") and \
            getattr(cls.from_config, "__func__", None) is _LAYER_FROM_CONFIG:
        # a built-in layer constructed from its config: hand it the layer's own
        # initializer / regularizer / constraint objects instead of serialised
        # copies (same layer, a third less construction time)
        for key in config:
            if key.endswith(_OBJECT_KEYS) and key not in changes and hasattr(layer, key):
                config[key] = getattr(layer, key)
        try:
            return cls(**config)
        except (TypeError, ValueError):
            config = layer.get_config()
            config.update(changes)
    return cls.from_config(config)


_LAYER_FROM_CONFIG = keras.layers.Layer.from_config.__func__
_OBJECT_KEYS = ("_initializer", "_regularizer", "_constraint")
