"""Parameter and FLOP counts, for real models and for pruned estimates.

FLOPs are per sample: 2 x multiply-adds of the layers whose weights multiply
their inputs (convolutions, dense, recurrent kernels; the usual
convention); elementwise work is not counted. Both counts come from each
layer's ChannelRule (see `register_channel_rule`), so a custom layer taught
to the engine is counted by the same registration that slices it.
"""

from wootz_keras.graph.channel_rules import rule_macs, rule_params
from wootz_keras.graph.model_graph import LayerGraph


def _graph(model):
    graph = getattr(model, "graph", None)          # a ChannelAnalysis
    if isinstance(graph, LayerGraph):
        return graph
    return model if isinstance(model, LayerGraph) else LayerGraph(model)


def call_macs(call, cin=None, cout=None):
    """Multiply-adds of one layer call; `cin` / `cout` override channel counts."""
    if not call.inputs or not call.outputs:
        return 0
    return rule_macs(call.rule, call, cin, cout)


def count_params(model, channels=None):
    """Parameters of a model (or LayerGraph / ChannelAnalysis); `channels`
    optionally maps id(call) -> (cin, cout) to count a pruned variant.

    Example:
        >>> from wootz_keras import zoo
        >>> m = zoo.plain_cnn()
        >>> count_params(m) == m.count_params()
        True
    """
    graph = _graph(model)
    channels = channels or {}
    total, seen = 0, set()
    for call in graph.calls:
        core = call.core
        if id(core) in seen:
            continue
        seen.add(id(core))
        if not getattr(core, "weights", None):
            continue
        cin, cout = channels.get(id(call), (None, None))
        total += rule_params(call.rule, call, cin, cout)
    return int(total)


def count_flops(model, channels=None):
    """FLOPs for one sample (2 x multiply-adds of conv / dense / recurrent layers).

    Example:
        >>> from wootz_keras import zoo
        >>> count_flops(zoo.plain_cnn()) > 0
        True
    """
    graph = _graph(model)
    channels = channels or {}
    total = 0
    for c in graph.calls:
        if getattr(c.core, "weights", None):
            total += call_macs(c, *channels.get(id(c), (None, None)))
    return int(2 * total)
