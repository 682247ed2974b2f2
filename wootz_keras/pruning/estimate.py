"""Params and FLOPs of a pruned configuration, from the analysis alone.

No model is built: the channels each group keeps at its rate (exactly as
`prune_compact` would keep them) are subtracted from every tensor, and each
layer is counted by its ChannelRule with the remaining channel counts.
"""

import numpy as np

from wootz_keras.graph.cost import count_flops, count_params
from wootz_keras.pruning.prune import analysis_of, group_keep, group_rates_of


def _tensor_shares(analysis):
    """{id(tensor): [(group id, nodes of the group in it)]}, cached on the analysis."""
    cached = analysis.score_cache.get("tensor_shares")
    if cached is None:
        cached = {}
        for t in analysis.graph.tensors:
            gids, _ = analysis.element_index(("t", id(t)))
            gids = gids[gids >= 0]
            if len(gids):
                ids, counts = np.unique(gids, return_counts=True)
                cached[id(t)] = list(zip(ids.tolist(), counts.tolist()))
        analysis.score_cache["tensor_shares"] = cached
    return cached


def pruned_channels(analysis, group_rates, round_to=1, runtime=None):
    """{id(call): (cin, cout)} of every call after pruning at `group_rates`
    (round_to / runtime as for `prune_compact`)."""
    return kept_channels(analysis, group_keep(analysis, group_rates, round_to, runtime))


def kept_channels(analysis, kept):
    """{id(call): (cin, cout)} of every weighted call when each group `gid` in
    `kept` keeps `kept[gid]` units (the others keep all of theirs)."""
    shares = _tensor_shares(analysis)
    removed_units = {gid: analysis.groups[gid].size - int(k) for gid, k in kept.items()}

    def left(t):
        n = t.channels
        for gid, count in shares.get(id(t), ()):
            k = removed_units.get(gid)
            if k:
                n -= int(round(k * count / analysis.groups[gid].size))
        return n
    channels = {}
    for call in analysis.graph.calls:
        if call.inputs and call.outputs and getattr(call.core, "weights", None):
            channels[id(call)] = (left(call.inputs[0]), left(call.outputs[0]))
    return channels


def estimate_cost(model, rate=None, rates=None, group_rates=None, round_to=1, runtime=None):
    """(params, flops) of the network `prune_compact(model, ...)` would build,
    without building it (round_to / runtime as for `prune_compact`).
    `model` is best an already-built ChannelAnalysis (its per-tensor tables
    are cached on it, so each estimate is one pass over the layers).

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import ChannelAnalysis
        >>> from wootz_keras.pruning import prune_compact
        >>> a = ChannelAnalysis(zoo.resnet_cifar(depth=8))
        >>> params, flops = estimate_cost(a, rate=0.5)
        >>> params == prune_compact(a, rate=0.5).count_params()
        True
    """
    analysis = analysis_of(model)
    group_rates = group_rates_of(analysis, rate, rates, group_rates)
    channels = pruned_channels(analysis, group_rates, round_to, runtime)
    return count_params(analysis, channels), count_flops(analysis, channels)
