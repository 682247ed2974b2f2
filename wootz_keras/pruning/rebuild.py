"""Rebuild a model layer by layer (nested models too), then copy weights."""

import inspect

import keras

from wootz_keras.graph.model_graph import is_graph_model


def rebuild(model, make_layer, nested_input_shapes=None):
    """Clone `model`, replacing each leaf layer by `make_layer(layer)`.

    `make_layer` returns an unbuilt layer and may remember the pair to set
    weights once the clone is built. Nested models are rebuilt recursively;
    `nested_input_shapes` maps id(nested model) -> new input shapes when
    pruning changed the channels flowing into it. Shared layers stay shared.

    Example:
        >>> from wootz_keras import zoo
        >>> copy = rebuild(zoo.plain_cnn(), lambda l: l.__class__.from_config(l.get_config()))
        >>> copy.name
        'plain_cnn'
    """
    nested_input_shapes = nested_input_shapes or {}
    cache = {}

    def clone(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if not isinstance(layer, keras.layers.Layer):
            return layer        # a stateless keras.ops Operation node (`x + 3.0`): reuse it
        if is_graph_model(layer):
            shapes = nested_input_shapes.get(id(layer))
            inputs = None
            if shapes is not None:
                inputs = [keras.Input(batch_shape=s, dtype=t.dtype, name=t.name)
                          for s, t in zip(shapes, keras.tree.flatten(layer.inputs))]
                inputs = inputs[0] if len(inputs) == 1 else inputs
            new = _clone_model(layer, inputs, clone)
        else:
            new = make_layer(layer)
        cache[id(layer)] = new
        return new

    return _clone_model(model, None, clone)


def _accepted_kwargs(layer, kwargs):
    params = inspect.signature(layer.call).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _call(layer, *args, **kwargs):
    """Replay a recorded call, dropping keyword arguments the new layer lacks
    (a wrapper's `mask` when the wrapper is swapped for its inner layer)."""
    return layer(*args, **_accepted_kwargs(layer, kwargs))


def _clone_model(model, inputs, clone):
    if isinstance(model, keras.Sequential):
        return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    return keras.models.clone_model(model, input_tensors=inputs, clone_function=clone,
                                    call_function=_call)


def copy_config(layer, **changes):
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
    return layer.__class__.from_config(config)
