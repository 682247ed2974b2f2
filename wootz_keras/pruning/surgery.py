"""Surgery: turn a masked model into a physically smaller plain Keras model."""

import numpy as np

from wootz_keras.graph.channel_rules import slice_by_axes
from wootz_keras.graph.dependency import ChannelAnalysis
from wootz_keras.pruning.rebuild import copy_config, rebuild, set_presets, weight_values
from wootz_keras.pruning.wrapper import PruneWrapper, is_pruned


def pruned_labels_from_masks(analysis):
    """Units switched off by the masks of a wrapped model (bool per unit label).

    A unit counts as pruned when every wrapper on it masks it; wrappers that
    disagree about a unit are an error naming both layers.
    """
    n = analysis.labels.max() + 1
    off = np.zeros(n, bool)
    on = np.zeros(n, bool)
    first_off = np.full(n, -1)          # index of the first wrapper masking / keeping a unit
    first_on = np.full(n, -1)
    names = []
    for call in analysis.needs_mask:
        if not isinstance(call.layer, PruneWrapper):
            continue
        key = _mask_space(analysis, call)
        labels = analysis.labels[analysis.spaces.nodes(key)]
        mask = np.asarray(call.layer.mask.numpy()) > 0.5
        k = len(names)
        names.append(call.core.name)
        for seen, flags, sel in ((first_off, off, labels[~mask]), (first_on, on, labels[mask])):
            fresh = sel[seen[sel] < 0]
            seen[fresh] = k
            flags[sel] = True
    clash = np.flatnonzero(off & on)
    if len(clash):
        lab = clash[0]
        raise ValueError(f"inconsistent masks: layer {names[first_off[lab]]!r} masks a channel "
                         f"that layer {names[first_on[lab]]!r} keeps; they belong to one "
                         "dependency group")
    bad = np.flatnonzero(off & ((analysis.group_of_label < 0) |
                                ~np.array([g.prunable for g in analysis.groups] + [False])
                                [analysis.group_of_label]))
    if len(bad):
        lab = bad[0]
        g = analysis.group_of_label[lab]
        reason = analysis.groups[g].reason if g >= 0 else "not a prunable channel"
        raise ValueError(f"layer {names[first_off[lab]]!r} masks channels that cannot be "
                         f"removed: {reason}")
    return off


def _mask_space(analysis, call):
    return analysis.mask_space(call)


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
            pairs.append(new)
            presets[id(new)] = weight_values(core)
            return new
        changes = layer_changes(analysis, call, keep)
        name = graph.name_of(core)
        if name != core.name:
            changes["name"] = name
        new = copy_config(core, **changes)
        pairs.append(new)
        if core.weights:
            presets[id(new)] = sliced_weights(analysis, core, call.rule, keep)
        return new

    shapes = {}
    for model_id, tensors in graph.nested_inputs.items():
        shapes[model_id] = [_kept_shape(t, keep) for t in tensors]
    presets = {}
    stripped = rebuild(graph.model, make_layer, shapes, graph.opened, presets)
    set_presets(presets, pairs)
    return stripped


def _kept_shape(t, keep):
    shape = list(t.shape)
    if len(shape) > 1:
        shape[t.axis_or_last] = int(keep(("t", id(t))).sum())
    return tuple(shape)


def layer_changes(analysis, call, keep):
    """Config changes that make `call`'s layer fit its kept channels."""
    core, rule = call.core, call.rule
    changes = {}
    if rule.role == "boundary":
        return changes
    if rule.config_key == "target_shape":
        out = call.outputs[0]
        target = list(core.get_config()["target_shape"])
        target[out.axis_or_last - 1] = int(keep(("t", id(out))).sum())
        changes["target_shape"] = tuple(target)
        return changes
    if not rule.weighted:
        return changes
    spaces = analysis.spaces.base
    key_in, key_out = ("in", id(core)), ("out", id(core))
    cin = int(keep(key_in).sum()) if key_in in spaces else call.inputs[0].channels
    cout = int(keep(key_out).sum()) if key_out in spaces else call.outputs[0].channels
    if rule.configure is not None:
        changes.update(rule.configure(core, cin, cout))
    elif rule.config_key:
        keys = rule.config_key if isinstance(rule.config_key, tuple) else (rule.config_key,)
        for key in keys:
            changes[key] = cout
    return changes


def sliced_weights(analysis, core, rule, keep):
    """`core`'s weights for the kept channels (get_weights order)."""
    if rule is None or not rule.weighted:
        return weight_values(core)
    keep_in = keep(("in", id(core))) if ("in", id(core)) in analysis.spaces.base else None
    key_out = ("out", id(core))
    keep_out = keep(key_out) if key_out in analysis.spaces.base else None
    if (keep_in is None or keep_in.all()) and (keep_out is None or keep_out.all()):
        return weight_values(core)
    if rule.slice_weights is not None:
        return rule.slice_weights(core, keep_in, keep_out)
    return slice_by_axes(rule, core, keep_in, keep_out)
