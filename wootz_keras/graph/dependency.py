"""Dependency groups: output channels that must be removed together.

Every channel of every tensor (and of every weighted layer's input and
output weights, so shared layers couple their calls) is a node; layer rules
link nodes that must live or die together. Connected components are the
prunable units ("elements"); elements touching the same tensors form a
group, ranked and pruned as one. A group read or written by a grouped layer
(grouped convolution, GroupNormalization) is split into equal blocks, and
pruning keeps the same number of units in each block.
"""

import dataclasses
import warnings

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wootz_keras.graph.channel_rules import evaluates_zero_to_zero, mixing_activation
from wootz_keras.graph.model_graph import LayerGraph

WEIGHTED_ROLES = ("producer", "channelwise")


@dataclasses.dataclass
class DependencyGroup:
    """A set of coupled channels, pruned together.

    id: index in the analysis; size: number of prunable units (a unit is one
    filter of each producer, plus every channel coupled with it);
    producers: names of the layers whose filters create these channels;
    layers: every layer whose weights are sliced when a unit goes;
    prunable / reason: whether the engine may prune it, and if not, why;
    blocks: None, or the block of each unit (grouped layers): every block
    keeps the same number of units.
    """
    id: int
    size: int
    producers: tuple
    layers: tuple
    prunable: bool
    reason: str = ""
    labels: np.ndarray = dataclasses.field(default=None, repr=False)
    blocks: np.ndarray = dataclasses.field(default=None, repr=False)

    def __repr__(self):
        state = "prunable" if self.prunable else f"fixed: {self.reason}"
        return f"DependencyGroup(id={self.id}, size={self.size}, producers={list(self.producers)}, {state})"


class _Spaces:
    """Allocates contiguous node ranges for tensors and weight spaces."""

    def __init__(self):
        self.base, self.size, self.keys, self.index = {}, {}, [], {}
        self.total = 0

    def add(self, key, size):
        if key not in self.base:
            self.base[key], self.size[key] = self.total, int(size)
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.total += int(size)
        return self.base[key]

    def nodes(self, key):
        return np.arange(self.base[key], self.base[key] + self.size[key])


class _Mismatch(Exception):
    pass


class ChannelAnalysis:
    """Dependency analysis of one model: groups and per-tensor channel maps.

    Build it once per model and pass it on: `prune_compact`,
    `prune_filters`, `estimate_cost` and `group_scores` accept it in place
    of the model and reuse it (importance scores are cached on it per
    criterion, so it assumes the model's weights do not change afterwards;
    `clear_cache()` forgets them).

    Example:
        >>> from wootz_keras import zoo
        >>> a = ChannelAnalysis(zoo.plain_cnn())
        >>> [g.size for g in a.groups if g.prunable]
        [16, 32, 64, 64]
    """

    def __init__(self, model_or_graph):
        self.graph = model_or_graph if isinstance(model_or_graph, LayerGraph) else LayerGraph(model_or_graph)
        self.rules = {id(c): c.rule for c in self.graph.calls}
        self.needs_mask = []          # calls whose output must be re-masked
        self.spaces = _Spaces()
        self._edges = []
        self._frozen = {}             # space key -> reason
        self._dirty = {}              # id(tensor) -> operation leaving pruned channels non-zero
        self._block_spaces = []       # (space key, groups, layer name) of grouped layers
        self.score_cache = {}
        for t in self.graph.tensors:
            self.spaces.add(("t", id(t)), t.channels)
        for call in self.graph.calls:
            self._link_safely(call)
        self._components()

    def clear_cache(self):
        """Forget cached importance scores (after the model's weights changed)."""
        self.score_cache.clear()

    @property
    def model(self):
        return self.graph.model

    # -- building the channel graph ------------------------------------
    def _tensor_nodes(self, t):
        return self.spaces.nodes(("t", id(t)))

    def _connect(self, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise _Mismatch(f"{len(a)} vs {len(b)} channels")
        self._pending.append((a, b))

    def _freeze(self, t, reason):
        self._frozen.setdefault(("t", id(t)), reason)

    def _weight_spaces(self, call):
        core = call.core
        kin = self.spaces.add(("in", id(core)), call.inputs[0].channels)
        kout = self.spaces.add(("out", id(core)), call.outputs[0].channels)
        return kin, kout

    def _link_safely(self, call):
        """Link one call; a call the engine cannot link consistently becomes a
        boundary naming it (never an exception from deep inside)."""
        self._pending = []
        n_mask = len(self.needs_mask)
        try:
            self._link(call)
        except Exception as e:      # noqa: BLE001 - any failure: keep its channels
            del self.needs_mask[n_mask:]
            reason = f"layer {call.core.name!r} ({type(call.core).__name__}) could not be " \
                     f"analysed ({type(e).__name__}: {e})"
            warnings.warn(f"pruning boundary: {reason}; channels around it are kept", stacklevel=4)
            for t in call.inputs + call.outputs:
                self._freeze(t, reason)
            return
        self._edges.extend(self._pending)

    def _link(self, call):
        rule = call.rule
        role = rule.role
        ins, outs = call.inputs, call.outputs
        name = self.graph.name_of(call.core)
        dirty = [t for t in ins if id(t) in self._dirty]
        if role == "boundary":
            if rule.warn:
                warnings.warn(f"pruning boundary: {rule.reason}; channels around it are kept", stacklevel=4)
            for t in ins:
                self._freeze(t, f"feeds {rule.reason}")
            for t in outs:
                self._freeze(t, f"comes from {rule.reason}")
            return
        if role == "consumer":
            if not ins:
                return
            kin = self.spaces.add(("in", id(call.core)), ins[0].channels)
            self._connect(self._tensor_nodes(ins[0]), kin + np.arange(ins[0].channels))
            for t in ins[1:]:
                self._freeze(t, f"is an extra input of layer {name!r}")
            for t in outs:
                self._freeze(t, f"comes from {rule.reason or name}")
            for t in dirty:
                self._freeze(t, self._dirty_reason(name, t))
            return
        if role in WEIGHTED_ROLES:
            if len(ins) != 1 or len(outs) != 1:
                for t in ins + outs:
                    self._freeze(t, f"layer {name!r} has several inputs or outputs")
                return
            kin, kout = self._weight_spaces(call)
            cin, cout = ins[0].channels, outs[0].channels
            self._connect(self._tensor_nodes(ins[0]), kin + np.arange(cin))
            self._connect(self._tensor_nodes(outs[0]), kout + np.arange(cout))
            if role == "channelwise":
                e = rule.expand
                if cin * e != cout:
                    raise _Mismatch(f"{cin} x {e} inputs for {cout} outputs")
                self._connect(kin + np.repeat(np.arange(cin), e), kout + np.arange(cin * e))
            if rule.groups > 1:
                for key in (("in", id(call.core)), ("out", id(call.core))):
                    self._block_spaces.append((key, rule.groups, name))
            mixing = mixing_activation(call.core)
            if mixing and not any(outs[0] is t for t in self.graph.outputs):
                # e.g. Dense(activation="softmax") inside the net: masked != removed
                self._freeze(outs[0], f"layer {name!r} has activation {mixing!r}, "
                                      "which mixes its output channels")
            for t in dirty:     # its input weights would meet f(0) != 0 in the masked model
                self._freeze(t, self._dirty_reason(name, t))
            self.needs_mask.append(call)
            return
        out = outs[0]
        if role == "passthrough":
            self._connect(self._tensor_nodes(ins[0]), self._tensor_nodes(out))
            zero_ok = rule.zero_preserving
            if zero_ok is None:
                zero_ok = evaluates_zero_to_zero(call)
            if not zero_ok or dirty:
                self._mask_or_taint(call, dirty)
        elif role == "flatten":
            cmap = np.asarray(rule.channel_map)
            flat = self._tensor_nodes(out)
            if len(cmap) != len(flat) or (len(cmap) and cmap.max() >= ins[0].channels):
                raise _Mismatch(f"channel map of {len(cmap)} for {len(flat)} features")
            self._connect(flat, self._tensor_nodes(ins[0])[cmap])
        elif role == "merge":
            for t in ins:
                self._connect(self._tensor_nodes(t), self._tensor_nodes(out))
        elif role == "concat":
            offset, dst = 0, self._tensor_nodes(out)
            if sum(t.channels for t in ins) != len(dst):
                raise _Mismatch("concatenated channels do not add up")
            for t in ins:
                self._connect(self._tensor_nodes(t), dst[offset:offset + t.channels])
                offset += t.channels
        if role in ("flatten", "merge", "concat") and dirty:
            clean_factor = role == "merge" and type(call.core).__name__ == "Multiply" \
                and len(dirty) < len(ins)
            if not clean_factor:        # x * 0 == 0: one clean factor cleans a product
                self._mask_or_taint(call, dirty)

    def _dirty_reason(self, name, t):
        return (f"layer {name!r} reads channels that operation {self._dirty[id(t)]!r} maps "
                "to a non-zero constant, and operations cannot be masked")

    def _mask_or_taint(self, call, dirty):
        """`call`'s output may be non-zero on pruned channels: mask it with a
        wrapper, or, for a keras.ops Operation (nothing to wrap), pass the
        duty on to its consumers."""
        import keras
        if isinstance(call.core, keras.layers.Layer):
            self.needs_mask.append(call)
            self._share_mask(call)
        else:
            origin = self._dirty[id(dirty[0])] if dirty else call.core.name
            for t in call.outputs:
                self._dirty[id(t)] = origin

    def _share_mask(self, call):
        """A wrapper holds one mask per layer, so the calls of a shared layer
        that must be masked have to keep the same channels (or none)."""
        calls = self.graph.calls_of(call.core)
        if len(calls) < 2:
            return
        widths = sorted({c.outputs[0].channels for c in calls})
        if len(widths) > 1:
            for c in calls:
                for t in c.inputs + c.outputs:
                    self._freeze(t, f"shared layer {call.core.name!r} is called on different "
                                    f"channel counts {widths}")
            return
        out = call.outputs[0]
        base = self.spaces.add(("mask", id(call.core)), out.channels)
        self._connect(self._tensor_nodes(out), base + np.arange(out.channels))

    def _components(self):
        g = self.graph
        for t in g.inputs:
            self._freeze(t, "comes from a model input")
        for t in g.outputs:
            name = g.name_of(t.producer.core) if t.producer else "input"
            self._freeze(t, f"feeds model output {name!r}")
        n = self.spaces.total
        if self._edges:
            a = np.concatenate([e[0] for e in self._edges])
            b = np.concatenate([e[1] for e in self._edges])
        else:
            a = b = np.zeros(0, np.int64)
        adj = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
        _, self.labels = connected_components(adj, directed=False)
        self._build_groups()
        self._apply_blocks()

    def _build_groups(self):
        keys = self.spaces.keys
        nk = max(len(keys), 1)
        sizes = np.array([self.spaces.size[k] for k in keys], np.int64)
        space_id = np.repeat(np.arange(len(keys)), sizes)
        labels = self.labels.astype(np.int64)
        n_labels = int(labels.max()) + 1 if len(labels) else 0
        # the spaces each element touches (its signature), sorted, without repeats
        codes = np.sort(labels * nk + space_id)
        if len(codes):
            codes = codes[np.concatenate([[True], codes[1:] != codes[:-1]])]
        pair_lab, pair_sp = codes // nk, codes % nk
        starts = np.flatnonzero(np.concatenate([[True], pair_lab[1:] != pair_lab[:-1]])) \
            if len(codes) else np.zeros(0, np.int64)
        ends = np.append(starts[1:], len(codes))
        # one 64-bit key per signature (sum of random space weights), then groups
        # of elements with the same key, in order of their first channel
        weights = np.random.default_rng(12345).integers(1, 2 ** 63 - 1, nk, dtype=np.int64)
        key = np.add.reduceat(weights[pair_sp].view(np.uint64), starts) if len(codes) \
            else np.zeros(0, np.uint64)
        first_node = np.full(n_labels, np.iinfo(np.int64).max)
        np.minimum.at(first_node, labels, np.arange(len(labels)))
        lab_order = np.argsort(first_node, kind="stable")
        _, first, inverse = np.unique(key[lab_order], return_index=True, return_inverse=True)
        by_key = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(first)))[:-1]
        members = np.split(lab_order[by_key], bounds)
        by_sig = {}
        for sig_index in np.argsort(first, kind="stable"):
            labs = members[sig_index]
            lab = labs[0]
            by_sig[tuple(pair_sp[starts[lab]:ends[lab]].tolist())] = labs.tolist()
        index = self.spaces.index
        frozen_space = {index[k]: r for k, r in self._frozen.items() if k in index}
        names = self._layer_names_by_space()
        self.groups = []
        self.group_of_label = np.full(n_labels, -1)
        self.position_of_label = np.full(n_labels, -1)
        for signature, labs in by_sig.items():
            producers, layers = names(signature)
            if not producers:
                continue
            reason = next((frozen_space[s] for s in signature if s in frozen_space), "")
            if not reason and len(labs) < 2:
                reason = "a single channel cannot be pruned"
            gid = len(self.groups)
            labs = np.array(labs)
            self.group_of_label[labs] = gid
            self.position_of_label[labs] = np.arange(len(labs))
            self.groups.append(DependencyGroup(gid, len(labs), producers, layers, not reason,
                                               reason, labs))

    def _fix(self, gid, reason):
        group = self.groups[gid]
        if group.prunable:
            group.prunable, group.reason = False, reason

    def _apply_blocks(self):
        """Grouped layers: every group they read or write splits into equal
        blocks (one per layer group); the same number of units survives in each."""
        for key, g, name in self._block_spaces:
            nodes = self.spaces.nodes(key)
            n = len(nodes)
            labs = self.labels[nodes]
            gids = set(self.group_of_label[labs].tolist())
            if -1 in gids or len(gids) != 1 or len(np.unique(labs)) != n or n % g:
                for gid in gids - {-1}:
                    self._fix(gid, f"grouped layer {name!r} ({g} groups) reads or writes "
                                   "channels of several dependency groups")
                continue
            gid = gids.pop()
            group = self.groups[gid]
            if n // g < 2:
                self._fix(gid, f"grouped layer {name!r} has one channel per group")
                continue
            blocks = np.empty(group.size, np.int64)
            blocks[self.position_of_label[labs]] = np.arange(n) // (n // g)
            if group.blocks is None:
                group.blocks = blocks
            elif not _same_partition(group.blocks, blocks):
                self._fix(gid, f"grouped layer {name!r} splits these channels into other "
                               "groups than another grouped layer does")

    def _layer_names_by_space(self):
        index = self.spaces.index
        out_space, any_space = {}, {}
        name_of = self.graph.name_of
        for call in self.graph.calls:
            core, rule = call.core, call.rule
            if rule.role in WEIGHTED_ROLES and ("out", id(core)) in index:
                any_space.setdefault(index[("in", id(core))], set()).add(name_of(core))
                any_space.setdefault(index[("out", id(core))], set()).add(name_of(core))
                if rule.role == "producer":
                    out_space.setdefault(index[("out", id(core))], set()).add(name_of(core))
            elif rule.role == "consumer" and ("in", id(core)) in index:
                any_space.setdefault(index[("in", id(core))], set()).add(name_of(core))
        order = {name_of(c.core): i for i, c in reversed(list(enumerate(self.graph.calls)))}

        def names(signature):
            prod = set().union(*(out_space.get(s, set()) for s in signature))
            lay = set().union(*(any_space.get(s, set()) for s in signature))
            return tuple(sorted(prod, key=order.get)), tuple(sorted(lay, key=order.get))
        return names

    # -- queries ---------------------------------------------------------
    def keep_mask(self, space_key, pruned_labels):
        """Boolean keep mask over a space's channels given pruned element labels."""
        return ~pruned_labels[self.labels[self.spaces.nodes(space_key)]]

    def element_index(self, space_key):
        """For each channel of a space: (group id, position in group), -1 if none."""
        labs = self.labels[self.spaces.nodes(space_key)]
        return self.group_of_label[labs], self.position_of_label[labs]

    def mask_space(self, call):
        """The space a wrapper on `call`'s layer masks: its filters, else its output."""
        if ("out", id(call.core)) in self.spaces.base:
            return ("out", id(call.core))
        return ("t", id(call.outputs[0]))

    def group_of(self, layer_name):
        """The group holding `layer_name`'s output filters; ValueError if none."""
        core = self.graph.find_layer(layer_name)
        key = ("out", id(core))
        if key not in self.spaces.base:
            rule = next(c.rule for c in self.graph.calls_of(core))
            why = rule.reason or f"it is a {rule.role} layer without filters of its own"
            raise ValueError(f"layer {layer_name!r} is not prunable: {why}")
        gids = set(self.element_index(key)[0].tolist())
        gids.discard(-1)
        if not gids:
            raise ValueError(f"layer {layer_name!r} is not prunable: its channels are fixed")
        if len(gids) > 1:
            raise ValueError(f"layer {layer_name!r} spans several groups {sorted(gids)}")
        return self.groups[gids.pop()]


def _same_partition(a, b):
    """Whether two block labellings split the units the same way."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def dependency_groups(model):
    """Coupled channel sets of a Keras model, each with its producers and
    whether it can be pruned.

    Example:
        >>> from wootz_keras import zoo
        >>> groups = dependency_groups(zoo.resnet_cifar(depth=8))
        >>> len([g for g in groups if g.prunable])
        6
    """
    return ChannelAnalysis(model).groups
