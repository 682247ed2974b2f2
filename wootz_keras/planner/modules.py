"""Split a Keras CNN into modules: the units that each get one pruning rate.

A residual block runs from the tensor that forks to the merge that joins
it; an inception-style (or DenseNet) module from the fork to the
Concatenate. A module prunes only dependency groups that live entirely
inside it, so its output keeps its shape and pruned modules can be swapped
freely. Prunable groups outside every such module become single-conv
modules (plain chains).
"""

import dataclasses
import hashlib
import json

from wootz_keras.graph.dependency import ChannelAnalysis


@dataclasses.dataclass
class Module:
    """One module: its layers, the groups it prunes, and its boundary tensors.

    kind: "residual", "inception", "dense", "conv" (a single conv; composable
    only when its one consumer's output is pruned by no module, so the
    module ends there with its shape intact) or "custom" (given by the user).
    """
    index: int
    name: str
    kind: str
    layers: tuple
    prunable_layers: tuple
    groups: tuple
    input_layer: str = None     # layer whose output feeds the module
    output_layer: str = None    # layer producing the module's output
    input_tensor: object = dataclasses.field(default=None, repr=False)
    output_tensor: object = dataclasses.field(default=None, repr=False)

    composable: bool = True     # False: pruning changes its output shape


class ModuleList(list):
    """Modules in network order, plus what was left out: `.unassigned`
    lists (layer name, reason) for prunable layers no module owns, and
    `.analysis` keeps the channel analysis the modules refer to."""

    def __init__(self, modules, unassigned, analysis):
        super().__init__(modules)
        self.unassigned = unassigned
        self.analysis = analysis

    @property
    def names(self):
        return [m.name for m in self]

    def fingerprint(self):
        """A short hash of the module structure (to match plans and blocks to models)."""
        text = json.dumps([[m.name, list(m.prunable_layers)] for m in self])
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def describe(self):
        """A human-readable summary, one module a line."""
        lines = [f"{m.index:3d} {m.name:32s} {m.kind:9s} prunes {', '.join(m.prunable_layers)}"
                 for m in self]
        lines += [f"    unassigned {name}: {why}" for name, why in self.unassigned]
        return "\n".join(lines)


def _dominators(graph):
    """Immediate dominator of every tensor (None = the virtual root)."""
    idom, depth = {}, {}
    for t in graph.inputs:
        idom[id(t)], depth[id(t)] = None, 1

    def lca(a, b):
        while a is not b:
            if a is None or b is None:
                return None
            if depth[id(a)] >= depth[id(b)]:
                a = idom[id(a)]
            else:
                b = idom[id(b)]
        return a

    for call in graph.calls:
        d = call.inputs[0] if call.inputs else None
        for t in call.inputs[1:]:
            d = lca(d, t)
        for out in call.outputs:
            idom[id(out)] = d
            depth[id(out)] = (depth[id(d)] if d is not None else 0) + 1
    return idom, lca


def _region(join, fork):
    """Calls on the paths from tensor `fork` to call `join` (join included)."""
    region, stack = {id(join): join}, list(join.inputs)
    seen = set()
    while stack:
        t = stack.pop()
        if t is fork or id(t) in seen or t.producer is None:
            continue
        seen.add(id(t))
        call = t.producer
        region[id(call)] = call
        stack.extend(call.inputs)
    return region


def _merge_regions(analysis, lca):
    graph, out = analysis.graph, []
    for call in graph.calls:
        role = analysis.rules[id(call)].role
        if role not in ("merge", "concat") or len(call.inputs) < 2:
            continue
        fork = call.inputs[0]
        for t in call.inputs[1:]:
            fork = lca(fork, t)
        if fork is None:
            continue
        kind = "residual" if role == "merge" else ("dense" if any(t is fork for t in call.inputs)
                                                   else "inception")
        out.append((call, fork, kind, _region(call, fork)))
    # keep outermost regions; drop any region overlapping a kept larger one
    out.sort(key=lambda r: -len(r[3]))
    kept = []
    for r in out:
        if all(not (r[3].keys() & k[3].keys()) for k in kept):
            kept.append(r)
    kept.sort(key=lambda r: r[0].index)
    return kept


def _group_tensors(analysis):
    """{group id: set of ids of the tensors it touches}."""
    out = {}
    for t in analysis.graph.tensors:
        gids, _ = analysis.element_index(("t", id(t)))
        for g in set(gids.tolist()) - {-1}:
            out.setdefault(g, set()).add(id(t))
    return out


def find_modules(model, modules=None):
    """Modules of `model` in network order (a ModuleList).

    modules: optional explicit modules, each a list of layer names (the
    paper's "module" marker); the producers among them are pruned.

    Example:
        >>> from wootz_keras import zoo
        >>> mods = find_modules(zoo.resnet_cifar(depth=8))
        >>> [m.kind for m in mods]
        ['residual', 'residual', 'residual']
        >>> mods[0].prunable_layers
        ('stage1_block1_conv1',)
    """
    analysis = model if isinstance(model, ChannelAnalysis) else ChannelAnalysis(model)
    if modules is not None:
        return _explicit_modules(analysis, modules)
    graph = analysis.graph
    _, lca = _dominators(graph)
    group_tensors = _group_tensors(analysis)
    found, owned = [], set()
    for join, fork, kind, region in _merge_regions(analysis, lca):
        inside = {id(t) for c in region.values() for t in c.outputs} - {id(t) for t in join.outputs}
        groups = [g for g in analysis.groups
                  if g.prunable and g.id not in owned and group_tensors.get(g.id, {0}) <= inside]
        if not groups:
            continue
        owned.update(g.id for g in groups)
        names = [c.core.name for c in sorted(region.values(), key=lambda c: c.index)]
        found.append(dict(kind=kind, layers=names, groups=groups, join=join, fork=fork))
    boundary = {id(f["fork"]) for f in found} | {id(t) for f in found for t in f["join"].outputs}
    touches = {}
    for g in analysis.groups:
        if not g.prunable or g.id in owned:
            continue
        if len(g.producers) != 1:
            continue
        if group_tensors.get(g.id, set()) & boundary:
            touches[g.id] = "it feeds a module's input or output; kept so module outputs keep their shape"
            continue
        owned.add(g.id)
        call = graph.calls_of(graph.find_layer(g.producers[0]))[0]
        found.append(dict(kind="conv", layers=list(g.layers), groups=[g], join=call,
                          fork=call.inputs[0]))
    for f in found:
        if f["kind"] == "conv":
            f["end"] = _chain_end(analysis, f["groups"][0], owned)
    found.sort(key=lambda f: f["join"].index)
    result = [_module(i, f) for i, f in enumerate(found)]
    unassigned = [(g.producers[0], touches.get(g.id) or _why_unassigned(g)) for g in analysis.groups
                  if g.id not in owned]
    return ModuleList(result, unassigned, analysis)


def _chain_end(analysis, group, owned):
    """For a single-conv module: the one consumer call whose output no
    module prunes (the module then keeps its output shape), else None."""
    consumers = [c for c in analysis.graph.calls
                 if analysis.rules[id(c)].role == "producer" and c.inputs
                 and group.id in set(analysis.element_index(("t", id(c.inputs[0])))[0].tolist())]
    if len(consumers) != 1:
        return None
    gids = set(analysis.element_index(("t", id(consumers[0].outputs[0])))[0].tolist()) - {-1}
    return None if gids & owned else consumers[0]


def _why_unassigned(group):
    if not group.prunable:
        return group.reason
    if len(group.producers) > 1:
        return (f"its channels are shared by {len(group.producers)} producers across modules "
                f"({', '.join(group.producers[:3])}{', ...' if len(group.producers) > 3 else ''}), "
                "e.g. a residual stream; kept so module outputs keep their shape")
    return "it spans several modules"


def _module(index, found):
    join, fork = found["join"], found["fork"]
    producers = tuple(p for g in found["groups"] for p in g.producers)
    composable = True
    if found["kind"] == "conv":
        composable = found["end"] is not None
        join = found["end"] or join
        if found["end"] is not None:
            found["layers"] = list(found["layers"]) + [join.core.name]
    out_tensor = join.outputs[0]
    return Module(
        index=index, name=f"{found['kind']}{index}:{(producers[0] if found['kind'] == 'conv' else join.core.name)}",
        kind=found["kind"],
        layers=tuple(found["layers"]), prunable_layers=producers,
        groups=tuple(g.id for g in found["groups"]),
        input_layer=fork.producer.core.name if fork.producer else None,
        output_layer=join.core.name, input_tensor=fork, output_tensor=out_tensor,
        composable=composable)


def _explicit_modules(analysis, modules):
    graph = analysis.graph
    known = {c.core.name for c in graph.calls}
    result, owned = [], set()
    for i, names in enumerate(modules):
        if not names:
            raise ValueError(f"explicit module {i} is empty")
        for n in names:
            if n not in known:
                raise ValueError(f"explicit module {i} names unknown layer {n!r}")
        groups = []
        for n in names:
            try:
                g = analysis.group_of(n)
            except ValueError:
                continue
            if g.prunable and g.id not in {x.id for x in groups}:
                if g.id in owned:
                    raise ValueError(f"layer {n!r} of explicit module {i} is already pruned by "
                                     "an earlier module (they share a dependency group)")
                groups.append(g)
        if not groups:
            raise ValueError(f"explicit module {i} ({names[0]!r} ...) has no prunable layer")
        owned.update(g.id for g in groups)
        calls = sorted((c for c in graph.calls if c.core.name in set(names)), key=lambda c: c.index)
        first, last = calls[0], calls[-1]
        fork = first.inputs[0]
        result.append(Module(
            index=i, name=f"custom{i}:{last.core.name}", kind="custom", layers=tuple(names),
            prunable_layers=tuple(p for g in groups for p in g.producers),
            groups=tuple(g.id for g in groups),
            input_layer=fork.producer.core.name if fork.producer else None,
            output_layer=last.core.name, input_tensor=fork, output_tensor=last.outputs[0]))
    # A module whose output channels some module prunes changes its output
    # shape: its tuning blocks cannot be trained teacher-student.
    for m in result:
        out_groups = set(analysis.element_index(("t", id(m.output_tensor)))[0].tolist())
        m.composable = not (out_groups & owned)
    unassigned = [(g.producers[0], "not in any explicit module") for g in analysis.groups
                  if g.prunable and g.id not in owned]
    return ModuleList(result, unassigned, analysis)
