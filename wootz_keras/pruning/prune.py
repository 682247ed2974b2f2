"""`prune_filters`: wrap a model so chosen filters are masked, one-shot or gradually."""

import math

import keras
import numpy as np

from wootz_keras.utils.rates import check_rate  # noqa: F401 (re-exported)
from wootz_keras.graph.dependency import ChannelAnalysis
from wootz_keras.pruning import importance
from wootz_keras.pruning.importance import group_scores
from wootz_keras.pruning.rebuild import copy_config, rebuild, set_presets, weight_values
from wootz_keras.pruning.surgery import apply_pruning
from wootz_keras.pruning.wrapper import PruneWrapper, is_pruned


def resolve_round_to(round_to, runtime=None):
    """An int >= 1 or a channel policy (an object with `kept_counts(analysis,
    group_rates)`): round_to="auto" with runtime= resolves to
    `wootz_keras.latency.channel_policy(runtime)`, imported only then (this
    layer never imports the latency tables or the exporters by itself)."""
    if isinstance(round_to, str):
        if round_to.strip().lower() != "auto":
            raise ValueError(f"round_to must be a positive integer, 'auto' or a channel policy, "
                             f"got {round_to!r}")
        if runtime is None:
            raise ValueError("round_to='auto' needs runtime='tflite' or 'onnxruntime' (the "
                             "runtime whose measured latency chooses the channel counts)")
        from wootz_keras.latency import channel_policy
        return channel_policy(runtime)
    if runtime is not None:
        raise ValueError(f"runtime={runtime!r} is only used with round_to='auto', "
                         f"got round_to={round_to!r}")
    if callable(getattr(round_to, "kept_counts", None)):
        return round_to
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be a positive integer, 'auto' or a channel policy, "
                         f"got {round_to!r}")
    return round_to


def group_keep(analysis, group_rates, round_to=1, runtime=None):
    """{group id: units kept} at `group_rates`: the one place the kept count of
    each group is decided (`select_pruned`, the size estimates and the
    latency predictions all ask here).

    round_to: an int (counts rounded up to multiples of it), "auto" with
    runtime= (per group, the count the runtime runs fastest for it: see
    `wootz_keras.latency.ChannelPolicy`; never fewer units than the rate asks
    for, at most its `step` more), or a channel policy object.

    Example:
        >>> from wootz_keras import zoo
        >>> a = ChannelAnalysis(zoo.plain_cnn())
        >>> group_keep(a, {0: 0.5, 1: 0.3}, round_to=4)
        {0: 8, 1: 24}
    """
    round_to = resolve_round_to(round_to, runtime)
    if not isinstance(round_to, int):
        kept = round_to.kept_counts(analysis, group_rates)
        for gid in group_rates:
            group = analysis.groups[gid]
            k = kept.get(gid)
            blocks = 1 if group.blocks is None else int(group.blocks.max()) + 1
            if not isinstance(k, (int, np.integer)) or not 1 <= k <= group.size or k % blocks:
                raise ValueError(f"channel policy {round_to!r} kept {k!r} units of the group of "
                                 f"{group.producers[0]!r} (size {group.size}"
                                 + (f", {blocks} blocks" if blocks > 1 else "") + ")")
        return {gid: int(kept[gid]) for gid in group_rates}
    return {gid: kept_units(analysis.groups[gid], r, round_to) for gid, r in group_rates.items()}


def analysis_of(model_or_analysis):
    """The ChannelAnalysis given, or a new one of the model given."""
    if isinstance(model_or_analysis, ChannelAnalysis):
        model = model_or_analysis.graph.model
    else:
        model = model_or_analysis
    if isinstance(model, keras.Model) and is_pruned(model):
        raise ValueError(f"model {model.name!r} already carries pruning wrappers; "
                         "strip_pruning it first")
    if isinstance(model_or_analysis, ChannelAnalysis):
        return model_or_analysis
    return ChannelAnalysis(model)


def resolve_group_rates(analysis, rate=None, rates=None):
    """{group id: rate} from a global `rate` and per-layer `rates`.

    Every prunable group gets `rate`; `rates` maps a producer layer name to
    the rate of its group and overrides it. Unknown or unprunable names and
    conflicting rates within one group are ValueErrors naming the layer.
    """
    out = {}
    if rate is not None:
        rate = check_rate(rate, "rate")
        out = {g.id: rate for g in analysis.groups if g.prunable}
    chosen = {}
    if rates is not None and not isinstance(rates, dict):
        raise ValueError(f"rates must be a dict {{layer name: rate}}, got {rates!r}")
    for name, r in (rates or {}).items():
        r = check_rate(r, f"rates[{name!r}]")
        group = analysis.group_of(name)
        if not group.prunable:
            raise ValueError(f"layer {name!r} is not prunable: {group.reason}")
        if name not in group.producers:
            raise ValueError(f"layer {name!r} is not prunable: it has no filters of its own; "
                             f"name a producer of its channels instead ({', '.join(group.producers)})")
        if group.id in chosen and chosen[group.id][1] != r:
            other = chosen[group.id][0]
            raise ValueError(f"layers {other!r} and {name!r} share a dependency group but were "
                             f"given different rates ({chosen[group.id][1]} and {r})")
        chosen[group.id] = (name, r)
        out[group.id] = r
    if rate is None and rates is None:
        raise ValueError("give rate= (all prunable groups) or rates={layer name: rate}")
    return out


def units_to_keep(size, rate, round_to=1):
    """How many units of a group of `size` survive `rate` (at least one).

    Example:
        >>> units_to_keep(64, 0.5), units_to_keep(10, 0.33, round_to=4)
        (32, 8)
    """
    keep = size - int(math.floor(rate * size + 1e-9))
    if round_to > 1:
        keep = min(size, int(math.ceil(keep / round_to)) * round_to)
    return max(1, keep)


def kept_units(group, rate, round_to=1):
    """Units of `group` that survive `rate`: a group split into blocks
    (grouped layers) keeps the same number in every block.

    Example:
        >>> from wootz_keras import zoo
        >>> g = ChannelAnalysis(zoo.plain_cnn()).groups[0]
        >>> kept_units(g, 0.5)
        8
    """
    if group.blocks is None:
        return units_to_keep(group.size, rate, round_to)
    n_blocks = int(group.blocks.max()) + 1
    per_block = group.size // n_blocks
    keep = units_to_keep(per_block, rate)
    while round_to > 1 and (keep * n_blocks) % round_to and keep < per_block:
        keep += 1
    return keep * n_blocks


def select_pruned(analysis, group_rates, scores, round_to=1, keep=None):
    """Bool per unit label: the lowest-scored units of each group, by rate
    (within each block for block-split groups); `keep` ({group id: units},
    from `group_keep`) overrides the counts the rates and round_to give."""
    pruned = np.zeros(analysis.labels.max() + 1, bool)
    for gid, r in group_rates.items():
        group = analysis.groups[gid]
        drop = group.size - (keep[gid] if keep is not None else kept_units(group, r, round_to))
        if drop <= 0:
            continue
        s = np.asarray(scores[gid])
        if group.blocks is None:
            order = np.argsort(s, kind="stable")
            pruned[group.labels[order[:drop]]] = True
            continue
        n_blocks = int(group.blocks.max()) + 1
        per_drop = drop // n_blocks
        for b in range(n_blocks):
            members = np.flatnonzero(group.blocks == b)
            order = members[np.argsort(s[members], kind="stable")]
            pruned[group.labels[order[:per_drop]]] = True
    return pruned


def prune_filters(model, rate=None, rates=None, criterion="l1", schedule=None, round_to=1,
                  data=None, loss="sparse_categorical_crossentropy", seed=0, runtime=None):
    """Wrap `model` so the least important filters of each group are masked.

    model: a Keras model, or its ChannelAnalysis (reused, not rebuilt);
    rate: fraction of every prunable group to remove, in [0, 1);
    rates: {layer name: rate} for the groups of chosen producers;
    criterion: a name from `wz.importance.names()` ("l1" default, as Wootz;
        "l2", "bn_scale", "taylor" (needs data=(x, y)), "random"), an
        `Importance` object, or a function of a layer's filters;
    schedule: a tfmot PruningSchedule; masks then start full and follow it
        during `fit` with the `UpdatePruningStep` callback;
    round_to: keep channel counts multiples of this; or "auto" with
        runtime="tflite" | "onnxruntime": per group, the count that runs
        fastest for it in that runtime (1 thread), from a latency table
        measured once and cached (`wootz_keras.latency.ChannelPolicy`: never
        fewer units than the rate asks for, at most `step` = 16 more; the
        runtime missing is a RuntimeUnavailable error, never a fallback); or
        a channel policy object (e.g. `wootz_keras.latency.channel_policy(
        "tflite", threads=2)`). One-shot pruning only (schedule=None);
    runtime: the runtime of round_to="auto".
    Returns a new model (the input is left untouched) whose pruned layers are
    PruneWrappers; `strip_pruning` makes it physically smaller.

    Example:
        >>> from wootz_keras import zoo
        >>> pruned = prune_filters(zoo.plain_cnn(), rate=0.5)
        >>> float(pruned.get_layer("block1_conv").mask.numpy().sum())
        8.0
    """
    round_to = resolve_round_to(round_to, runtime)
    if schedule is not None and not isinstance(round_to, int):
        raise ValueError("round_to='auto' (or a channel policy) applies to one-shot pruning; "
                         "with schedule= the masks follow the schedule's rates")
    crit = importance.get(criterion)
    analysis = analysis_of(model)
    group_rates = resolve_group_rates(analysis, rate, rates)
    targets = [g for g, r in group_rates.items() if r > 0 or schedule is not None]
    if schedule is not None:
        pruned = np.zeros(analysis.labels.max() + 1, bool)
    else:
        scores = group_scores(analysis, targets, crit, data=data, loss=loss, seed=seed,
                              cache=analysis is model)
        pruned = select_pruned(analysis, group_rates, scores,
                               keep=group_keep(analysis, group_rates, round_to))
    return wrap_model(analysis, group_rates, targets, pruned, schedule)


def prune_compact(model, rate=None, rates=None, criterion="l1", round_to=1, data=None,
                  loss="sparse_categorical_crossentropy", seed=0, group_rates=None,
                  runtime=None):
    """One-shot pruning straight to the physically smaller model.

    The same choice of filters as `strip_pruning(prune_filters(...))`
    without building the masked model in between (what assembling many
    candidate networks needs).

    model: a Keras model or, to prune one teacher many times, its
    `ChannelAnalysis`: the analysis is then reused as is and the teacher's
    importance scores are computed once per criterion and cached on it, so
    each call costs only the selection and the rebuild (the teacher's weights
    must not change meanwhile; `analysis.clear_cache()` after they do).
    group_rates: {group id: rate} instead of rate / rates.
    round_to / runtime: as for `prune_filters` (round_to="auto", runtime=...).

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import ChannelAnalysis
        >>> small = prune_compact(zoo.plain_cnn(), rate=0.5)
        >>> small.get_layer("block1_conv").filters
        8
        >>> teacher = ChannelAnalysis(zoo.plain_cnn())
        >>> [prune_compact(teacher, rate=r).count_params() for r in (0.25, 0.5)]
        [34678, 15634]
    """
    round_to = resolve_round_to(round_to, runtime)
    crit = importance.get(criterion)
    analysis = analysis_of(model)
    group_rates = group_rates_of(analysis, rate, rates, group_rates)
    targets = [g for g, r in group_rates.items() if r > 0]
    scores = group_scores(analysis, targets, crit, data=data, loss=loss, seed=seed,
                          cache=analysis is model)
    keep = group_keep(analysis, group_rates, round_to)
    return apply_pruning(analysis, select_pruned(analysis, group_rates, scores, keep=keep))


def group_rates_of(analysis, rate=None, rates=None, group_rates=None):
    """{group id: rate}: `group_rates` checked when given, else resolved from
    `rate` / `rates` (the one way the public entry points read rates)."""
    if group_rates is None:
        return resolve_group_rates(analysis, rate, rates)
    return check_group_rates(analysis, group_rates)


def check_group_rates(analysis, group_rates):
    """{group id: rate} checked: known, prunable groups and rates in [0, 1)."""
    if not isinstance(group_rates, dict):
        raise ValueError(f"group_rates must be a dict {{group id: rate}}, got {group_rates!r}")
    out = {}
    for gid, r in group_rates.items():
        if not isinstance(gid, (int, np.integer)) or not 0 <= gid < len(analysis.groups):
            raise ValueError(f"group_rates: no dependency group {gid!r}")
        group = analysis.groups[gid]
        r = check_rate(r, f"group_rates[{gid}]")
        if r > 0 and not group.prunable:
            raise ValueError(f"group {gid} ({group.producers[0]!r}) is not prunable: {group.reason}")
        out[int(gid)] = r
    return out


def wrap_model(analysis, group_rates, targets, pruned, schedule=None):
    """Copy of the analysed model with wrappers on every layer that must be
    masked for the target groups, masks set from `pruned`."""
    targets = set(targets)
    graph = analysis.graph
    wrap = {}
    for call in analysis.needs_mask:
        key = analysis.mask_space(call)
        gids = set(analysis.element_index(key)[0].tolist()) & targets
        if gids:
            out = call.outputs[0]
            wrap[id(call.core)] = (key, max(group_rates[g] for g in gids),
                                   out.axis_or_last - len(out.shape), call.rule.masked_call)
    cleaned = _cleaned_by_consumers(analysis, wrap)
    pairs = []

    presets = {}

    def make_layer(layer):
        name = graph.name_of(layer)
        new = copy_config(layer, **({"name": name} if name != layer.name else {}))
        pairs.append((layer, new))
        if layer.weights:
            presets[id(new)] = weight_values(layer)
        if id(layer) in wrap:
            _, rate, axis, masked_call = wrap[id(layer)]
            return PruneWrapper(new, rate=rate, schedule=schedule,
                                mask_output=id(layer) not in cleaned, axis=axis,
                                mask_input=masked_call is not None)
        return new

    wrapped = rebuild(graph.model, make_layer, opened=graph.opened, presets=presets)
    original = {id(new): old for old, new in pairs}
    set_presets(presets, [new for _, new in pairs])
    for layer in wrapped._flatten_layers(include_self=False):
        if isinstance(layer, PruneWrapper):
            key = wrap[id(original[id(layer.layer)])][0]
            layer.mask.assign(analysis.keep_mask(key, pruned).astype("float32"))
    return wrapped


def _cleaned_by_consumers(analysis, wrap):
    """ids of wrapped layers whose output mask is redundant: every consumer of
    every call is a wrapped channelwise layer (Conv -> BatchNormalization),
    which zeroes the pruned channels itself; chains of such layers end in one
    that masks (a model output is never cleaned). Forward and gradients are
    unchanged; the masked model just multiplies less."""
    graph_outputs = {id(t) for t in analysis.graph.outputs}
    cleaned = set()
    by_core = {}
    for call in analysis.graph.calls:
        by_core.setdefault(id(call.core), []).append(call)
    for core_id in wrap:
        ok = True
        for call in by_core.get(core_id, ()):
            for t in call.outputs:
                if id(t) in graph_outputs or not t.consumers:
                    ok = False
                for c in t.consumers:
                    if id(c.core) not in wrap or analysis.rules[id(c)].role != "channelwise" \
                            or len(c.inputs) != 1:
                        ok = False
        if ok and by_core.get(core_id):
            cleaned.add(core_id)
    return cleaned


class UpdatePruningStep(keras.callbacks.Callback):
    """Advance tfmot pruning schedules during `fit` and recompute the masks.

    At every step where a wrapper's schedule says prune, each pruned group
    drops its lowest-scored units (by `criterion`: a name, an Importance
    object or a function, as for prune_filters; "l1" by default) up to
    rate x (schedule sparsity / schedule final sparsity).

    Example:
        >>> import tensorflow_model_optimization as tfmot
        >>> from wootz_keras import zoo
        >>> sched = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, 10, frequency=2)
        >>> pruned = prune_filters(zoo.plain_cnn(), rate=0.5, schedule=sched)
        >>> callbacks = [UpdatePruningStep()]
    """

    def __init__(self, criterion="l1"):
        super().__init__()
        crit = importance.get(criterion)
        if crit.needs_data:
            raise ValueError(f"UpdatePruningStep cannot use criterion {criterion!r} (it needs a "
                             "batch of data); use 'l1', 'l2', 'bn_scale' or 'random'")
        self.criterion = crit

    def on_train_begin(self, logs=None):
        self._wrappers = [l for l in self.model._flatten_layers(include_self=False)
                          if isinstance(l, PruneWrapper) and l.schedule is not None]
        if not self._wrappers:
            return
        self._analysis = ChannelAnalysis(self.model)
        calls = {id(c.core): c for c in self._analysis.needs_mask}
        self._group_rates = {}
        for w in self._wrappers:
            key = self._analysis.mask_space(calls[id(w.layer)])
            for g in set(self._analysis.element_index(key)[0].tolist()) - {-1}:
                self._group_rates[g] = max(self._group_rates.get(g, 0.0), w.rate)
        sched = self._wrappers[0].schedule
        self._final = float(sched(10 ** 9)[1]) or 1.0

    def on_train_batch_begin(self, batch, logs=None):
        if not self._wrappers:
            return
        step = int(self._wrappers[0].pruning_step.numpy()) + 1
        for w in self._wrappers:
            w.pruning_step.assign(step)
        should_prune, sparsity = self._wrappers[0].schedule(step)
        if not bool(should_prune):
            return
        fraction = float(sparsity) / self._final
        rates = {g: min(r * fraction, 0.999) for g, r in self._group_rates.items()}
        scores = group_scores(self._analysis, list(rates), self.criterion)
        pruned = select_pruned(self._analysis, rates, scores)
        calls = {id(c.core): c for c in self._analysis.needs_mask}
        for w in self._wrappers:
            key = self._analysis.mask_space(calls[id(w.layer)])
            w.mask.assign(self._analysis.keep_mask(key, pruned).astype("float32"))
