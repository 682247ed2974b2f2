"""Parameter and FLOP counts, for real models and for pruned estimates.

FLOPs are per image: 2 x multiply-adds of convolution and dense layers
(the usual convention); elementwise work is not counted.
"""

import numpy as np

from wootz_keras.graph.model_graph import LayerGraph


def _spatial(shape):
    return int(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1


def call_macs(call, cin=None, cout=None):
    """Multiply-adds of one layer call; `cin` / `cout` override channel counts."""
    layer = call.core
    cin = call.inputs[0].channels if cin is None else cin
    cout = call.outputs[0].channels if cout is None else cout
    kind = type(layer).__name__
    out_spatial = _spatial(call.outputs[0].shape)
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        k = int(np.prod(layer.kernel_size))
        return k * cin // layer.groups * cout * out_spatial
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        k = int(np.prod(layer.kernel_size))
        return k * cin * cout * _spatial(call.inputs[0].shape)
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return int(np.prod(layer.kernel_size)) * cout * out_spatial
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        m = layer.depth_multiplier
        return (int(np.prod(layer.kernel_size)) * cin * m + cin * m * cout) * out_spatial
    if kind == "Dense":
        return cin * cout * out_spatial
    return 0


def layer_params(layer, cin, cout):
    """Parameters of a (core) layer with `cin` inputs and `cout` outputs.

    Layers whose size does not depend on channels report their real count.
    """
    kind = type(layer).__name__
    bias = cout if getattr(layer, "use_bias", False) else 0
    if kind in ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        return int(np.prod(layer.kernel_size)) * cin // getattr(layer, "groups", 1) * cout + bias
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return int(np.prod(layer.kernel_size)) * cout + bias
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        m = layer.depth_multiplier
        return int(np.prod(layer.kernel_size)) * cin * m + cin * m * cout + bias
    if kind == "Dense":
        return cin * cout + bias
    if kind == "BatchNormalization":
        return cout * len(layer.weights)
    if kind == "PReLU" and layer.built and layer.alpha.shape[-1] > 1:
        return int(np.prod(layer.alpha.shape[:-1])) * cout
    return sum(int(np.prod(w.shape)) for w in getattr(layer, "weights", ()))  # ops: none


def count_params(model, channels=None):
    """Parameters of a model; `channels` optionally maps id(call) -> (cin, cout).

    Example:
        >>> from wootz_keras import zoo
        >>> m = zoo.plain_cnn()
        >>> count_params(m) == m.count_params()
        True
    """
    graph = model if isinstance(model, LayerGraph) else LayerGraph(model)
    channels = channels or {}
    total, seen = 0, set()
    for call in graph.calls:
        core = call.core
        if id(core) in seen:
            continue
        seen.add(id(core))
        cin, cout = channels.get(id(call), (call.inputs[0].channels if call.inputs else 0,
                                            call.outputs[0].channels))
        total += layer_params(core, cin, cout)
    return int(total)


def count_flops(model, channels=None):
    """FLOPs for one image (2 x multiply-adds of conv / dense layers).

    Example:
        >>> from wootz_keras import zoo
        >>> count_flops(zoo.plain_cnn()) > 0
        True
    """
    graph = model if isinstance(model, LayerGraph) else LayerGraph(model)
    channels = channels or {}
    return int(2 * sum(call_macs(c, *channels.get(id(c), (None, None))) for c in graph.calls))
