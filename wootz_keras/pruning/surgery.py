"""Surgery: turn a masked model into a physically smaller plain Keras model."""

import numpy as np

from wootz_keras.graph.dependency import ChannelAnalysis
from wootz_keras.pruning.rebuild import copy_config, rebuild
from wootz_keras.pruning.wrapper import PruneWrapper, is_pruned


def pruned_labels_from_masks(analysis):
    """Units switched off by the masks of a wrapped model (bool per unit label).

    A unit counts as pruned when every wrapper on it masks it; wrappers that
    disagree about a unit are an error naming both layers.
    """
    n = analysis.labels.max() + 1
    off = np.zeros(n, bool)
    on = np.zeros(n, bool)
    first_off, first_on = {}, {}
    for call in analysis.needs_mask:
        if not isinstance(call.layer, PruneWrapper):
            continue
        key = _mask_space(analysis, call)
        labels = analysis.labels[analysis.spaces.nodes(key)]
        mask = np.asarray(call.layer.mask.numpy()) > 0.5
        for lab in labels[~mask]:
            first_off.setdefault(lab, call.core.name)
        for lab in labels[mask]:
            first_on.setdefault(lab, call.core.name)
        off[labels[~mask]] = True
        on[labels[mask]] = True
    clash = np.flatnonzero(off & on)
    if len(clash):
        lab = clash[0]
        raise ValueError(f"inconsistent masks: layer {first_off[lab]!r} masks a channel that layer "
                         f"{first_on[lab]!r} keeps; they belong to one dependency group")
    for lab in np.flatnonzero(off):
        g = analysis.group_of_label[lab]
        if g < 0 or not analysis.groups[g].prunable:
            reason = analysis.groups[g].reason if g >= 0 else "not a prunable channel"
            raise ValueError(f"layer {first_off[lab]!r} masks channels that cannot be removed: {reason}")
    return off


def _mask_space(analysis, call):
    if ("out", id(call.core)) in analysis.spaces.base:
        return ("out", id(call.core))
    return ("t", id(call.outputs[0]))


def strip_pruning(model):
    """A plain Keras model with the masked channels physically removed.

    Kernels, biases, BatchNorm statistics, consumers' input channels and
    Dense rows after Flatten are sliced; the result computes the same
    function as the masked model. A model without wrappers is returned as is.

    Example:
        >>> import wootz_keras as wz
        >>> from wootz_keras import zoo
        >>> model = zoo.plain_cnn()
        >>> small = wz.strip_pruning(wz.prune_filters(model, rate=0.5))
        >>> small.count_params() < model.count_params()
        True
    """
    if not is_pruned(model):
        return model
    analysis = ChannelAnalysis(model)
    pruned = pruned_labels_from_masks(analysis)
    return apply_pruning(analysis, pruned)


def apply_pruning(analysis, pruned):
    """Rebuild `analysis.graph.model` without the units flagged in `pruned`."""
    graph = analysis.graph
    first_call = {}
    for call in graph.calls:
        first_call.setdefault(id(call.core), call)
    pairs = []

    def keep(key):
        return analysis.keep_mask(key, pruned)

    def make_layer(layer):
        core = layer.layer if isinstance(layer, PruneWrapper) else layer
        call = first_call.get(id(core))
        if call is None:            # not reachable from the outputs
            new = copy_config(core)
            pairs.append((core, new, None))
            return new
        rule = analysis.rules[id(call)]
        changes = {}
        if rule.config_key == "target_shape":
            kept = int(keep(("t", id(call.outputs[0]))).sum())
            changes["target_shape"] = tuple(core.get_config()["target_shape"][:-1]) + (kept,)
        elif rule.config_key:
            keys = rule.config_key if isinstance(rule.config_key, tuple) else (rule.config_key,)
            for key in keys:        # e.g. ("filters", "groups") for a depthwise Conv2D
                changes[key] = int(keep(("out", id(core))).sum())
        new = copy_config(core, **changes)
        pairs.append((core, new, rule))
        return new

    shapes = {}
    for model_id, tensors in graph.nested_inputs.items():
        shapes[model_id] = [t.shape[:-1] + (int(keep(("t", id(t))).sum()),) for t in tensors]
    stripped = rebuild(graph.model, make_layer, shapes)
    for core, new, rule in pairs:
        if core.weights:
            new.set_weights(_sliced_weights(analysis, core, rule, keep))
    return stripped


def _sliced_weights(analysis, core, rule, keep):
    if rule is None or rule.role not in ("producer", "channelwise"):
        return core.get_weights()
    keep_out = np.flatnonzero(keep(("out", id(core))))
    keep_in = keep(("in", id(core)))
    out = []
    for var in core.weights:
        w = np.asarray(var.numpy())
        if var.name in rule.out_axes:
            w = np.take(w, keep_out, axis=rule.out_axes[var.name])
        if var.name in rule.in_axes:
            axis, repeat = rule.in_axes[var.name]
            rows = np.flatnonzero(np.repeat(keep_in, repeat))
            w = np.take(w, rows, axis=axis)
        out.append(w)
    return out
