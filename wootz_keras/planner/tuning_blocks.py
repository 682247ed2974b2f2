"""Tuning-block selection: which pruned pieces to pre-train (Wootz step 3).

Each configuration is encoded as the symbols `(module_index, rate)`, one per
module, ended by a marker unique to the configuration. Sequitur compresses
the concatenation; every rule of the grammar is a run of consecutive modules
with fixed rates that recurs, i.e. a candidate tuning block. The paper's
linear-time heuristic then picks the blocks, and the grammar tells each
configuration which blocks it can use.

Example:
    >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.7, 0.3],
    ...                            [0.5, 0.5, 0.7, 0.5],
    ...                            [0.7, 0.5, 0.7, 0.7]])
    >>> [b.name for b in plan.blocks]
    ['m1-2@0.5,0.7']
    >>> plan.blocks[0].frequency
    3
"""

import dataclasses
import numbers

from wootz_keras.planner.sequitur import RuleRef, build_grammar, gc_paused
from wootz_keras.utils.io import read_document, write_document
from wootz_keras.utils.rates import RATE_DECIMALS, check_rates, round_rates  # noqa: F401

__all__ = ["Block", "Coverage", "Plan", "block_key", "cover", "composable_plan",
           "plan_tuning_blocks"]



@dataclasses.dataclass(frozen=True)
class Block:
    """A tuning block: modules `start`..`stop - 1` pruned at `rates`.

    Example:
        >>> b = Block(id=0, start=3, rates=(0.3, 0.5, 0.7), frequency=12)
        >>> b.name, b.stop, len(b)
        ('m3-5@0.3,0.5,0.7', 6, 3)
    """

    id: int
    start: int
    rates: tuple
    frequency: int

    @property
    def stop(self):
        return self.start + len(self.rates)

    def __len__(self):
        return len(self.rates)

    @property
    def name(self):
        rates = ",".join(f"{r:g}" for r in self.rates)
        return f"m{self.start}-{self.stop - 1}@{rates}"

    @property
    def key(self):
        """What identifies a block wherever it is used: (start, rounded rates)."""
        return block_key(self.start, self.rates)


def block_key(start, rates):
    """(first module, rates rounded to RATE_DECIMALS): equal keys, equal blocks.

    Example:
        >>> block_key(2, [0.30000001, 0.5])
        (2, (0.3, 0.5))
    """
    return int(start), round_rates(rates)


def cover(blocks, rates):
    """The blocks a configuration uses: greedy, left to right, the longest
    block that matches at each module (modules no block matches are skipped).

    Example:
        >>> blocks = [Block(0, 0, (0.3, 0.5), 2), Block(1, 1, (0.5,), 3)]
        >>> [b.name for b in cover(blocks, (0.3, 0.5, 0.7))]
        ['m0-1@0.3,0.5']
        >>> [b.name for b in cover(blocks, (0.7, 0.5, 0.7))]
        ['m1-1@0.5']
    """
    rates = block_key(0, rates)[1]
    by_start = {}
    for block in sorted(blocks, key=len, reverse=True):
        by_start.setdefault(block.start, []).append(block)
    used, m = [], 0
    while m < len(rates):
        for block in by_start.get(m, ()):
            if rates[m:block.stop] == block.key[1]:
                used.append(block)
                m = block.stop
                break
        else:
            m += 1
    return used


@dataclasses.dataclass(frozen=True)
class Coverage:
    """How much of the configurations the blocks cover.

    `fraction`: covered module slots / all module slots over all configs;
    `blocks_per_config`: mean number of blocks a config uses;
    `expected_reuse`: block uses over all configs / number of blocks.
    """

    fraction: float
    blocks_per_config: float
    expected_reuse: float


class Plan:
    """Selected tuning blocks, the blocks each config uses, training groups.

    Build one with `plan_tuning_blocks` or `Plan.from_json`.

    Example:
        >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.7], [0.5, 0.5, 0.7]])
        >>> [b.name for b in plan.uses(0)]
        ['m1-2@0.5,0.7']
        >>> [b.name for b in plan.uses([0.7, 0.5, 0.7])]   # not in the plan
        ['m1-2@0.5,0.7']
        >>> plan.coverage.fraction
        0.6666666666666666
    """

    def __init__(self, configs, blocks, uses, groups, module_names=None):
        self.configs = [tuple(c) for c in configs]
        self.blocks = list(blocks)
        self.groups = [list(g) for g in groups]
        self.module_names = None if module_names is None else tuple(module_names)
        self._uses = [tuple(u) for u in uses]
        self._index = {}
        for i, rates in enumerate(self.configs):
            self._index.setdefault(rates, i)

    def __repr__(self):
        return (f"Plan({len(self.configs)} configs x {self.num_modules} modules, "
                f"{len(self.blocks)} blocks, {len(self.groups)} groups)")

    @property
    def num_modules(self):
        return len(self.configs[0])

    def uses(self, config):
        """The blocks `config` uses, in module order, never overlapping.

        `config` is an index into `plan.configs`, a rate sequence, or an
        object with `.rates`. A config the plan does not hold gets a greedy
        longest-match cover from the plan's blocks.

        Example:
            >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.7], [0.5, 0.5, 0.7]])
            >>> plan.uses(1) == plan.uses([0.5, 0.5, 0.7])
            True
        """
        if isinstance(config, numbers.Integral):
            if not 0 <= config < len(self.configs):
                raise ValueError(
                    f"config index {config} is out of range for {len(self.configs)} configs")
            return [self.blocks[b] for b in self._uses[config]]
        rates = _config_rates(config, "config")
        if len(rates) != self.num_modules:
            raise ValueError(
                f"config has {len(rates)} modules, expected {self.num_modules}")
        i = self._index.get(rates)
        if i is not None:
            return [self.blocks[b] for b in self._uses[i]]
        return cover(self.blocks, rates)

    @property
    def coverage(self):
        """A `Coverage` of the plan's own configs.

        Example:
            >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.7], [0.5, 0.5, 0.7]])
            >>> plan.coverage.blocks_per_config, plan.coverage.expected_reuse
            (1.0, 2.0)
        """
        used = [self.blocks[b] for u in self._uses for b in u]
        slots = len(self.configs) * self.num_modules
        return Coverage(
            fraction=sum(map(len, used)) / slots,
            blocks_per_config=len(used) / len(self.configs),
            expected_reuse=len(used) / len(self.blocks) if self.blocks else 0.0)

    def to_json(self, path):
        """Write the plan to `path` atomically.

        Example:
            >>> plan = plan_tuning_blocks([[0.3, 0.5], [0.3, 0.5]])
            >>> plan.to_json("/tmp/wz_plan.json")
            >>> Plan.from_json("/tmp/wz_plan.json").blocks == plan.blocks
            True
        """
        write_document(path, "plan", {
            "module_names": None if self.module_names is None else list(self.module_names),
            "configs": [list(c) for c in self.configs],
            "blocks": [{"id": b.id, "name": b.name, "start": b.start,
                        "rates": list(b.rates), "frequency": b.frequency}
                       for b in self.blocks],
            "uses": [list(u) for u in self._uses],
            "groups": self.groups,
        })

    @classmethod
    def from_json(cls, path):
        """Read a plan written by `to_json`; a wrong file is a ValueError."""
        data = read_document(path, "plan")
        try:
            blocks = [Block(b["id"], b["start"], tuple(b["rates"]), b["frequency"])
                      for b in data["blocks"]]
            plan = cls(data["configs"], blocks, data["uses"], data["groups"],
                       data["module_names"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"plan {path!r} is malformed: {e!r}") from None
        if [b.id for b in blocks] != list(range(len(blocks))):
            raise ValueError(f"plan {path!r}: block ids are not 0..{len(blocks) - 1}")
        return plan


def plan_tuning_blocks(configs, module_names=None, memory_budget=None, block_cost=None,
                       fill=False):
    """Select tuning blocks for `configs` (Wootz steps 1-3).

    `configs`: rate sequences (one rate in [0, 1) per module) or objects with
    `.rates`; at least two, all of one length. Rates are rounded to
    `RATE_DECIMALS` decimals, so 0.3 and 0.30000001 are the same rate.

    Selection is the paper's heuristic, a post-order walk of the rule DAG
    (children before parents, each rule once, parallel edges merged):

    - a rule of frequency 1 (the start rule, or any rule holding an end
      marker) is never chosen and is a dead end;
    - a rule with a dead-end child is a dead end (stop going up the path);
    - a leaf rule (all items terminals) with frequency > 1 is a block;
    - any other rule becomes a block, replacing its children, when its
      frequency equals the largest frequency of its child rules (terminal
      items do not count); otherwise it is a dead end.

    Note: in a Sequitur grammar every rule is used at least twice, so a
    child rule always occurs strictly more often than each of its parents.
    The "equal frequency" test therefore never passes and the chosen blocks
    are exactly the leaf rules. Module slots no chosen block covers use
    default L1 pruning, unless `fill`.

    `fill=True` (ours, not the paper's): every module slot that no selected
    block covers in at least two configurations gets a single-module block,
    so candidates are assembled from pre-trained pieces only (Sequitur's
    rules are runs of two or more modules, so single modules are never
    rules; an L1-pruned module between pre-trained ones costs the assembled
    network most of its accuracy).

    `memory_budget` and `block_cost` (a callable Block -> cost, same unit)
    come together: blocks are then packed into `plan.groups` first-fit
    decreasing, each group's total cost within the budget. Without them all
    blocks form one group.

    Example:
        >>> plan = plan_tuning_blocks(
        ...     [[0.3, 0.5, 0.7, 0.3], [0.3, 0.5, 0.5, 0.3], [0.7, 0.7, 0.7, 0.3]],
        ...     memory_budget=3, block_cost=len)
        >>> [(b.name, b.frequency) for b in plan.blocks]
        [('m0-1@0.3,0.5', 2), ('m2-3@0.7,0.3', 2)]
        >>> [[b.id for b in plan.uses(i)] for i in range(3)]
        [[0, 1], [0], [1]]
        >>> plan.groups
        [[0], [1]]
    """
    with gc_paused():
        rates = _all_config_rates(configs)
        num_modules = len(rates[0])
        if module_names is not None and len(module_names) != num_modules:
            raise ValueError(
                f"module_names has {len(module_names)} names for {num_modules} modules")
        grammar = build_grammar(_encode(rates))
        freq = grammar.frequencies()
        order = grammar.topological_order()
        marked = _select(grammar, freq, order)
        blocks, block_of = _make_blocks(grammar, freq, marked)
        uses = _config_uses(grammar, order, block_of, len(rates))
        if fill:
            blocks, uses = _fill_single_modules(rates, blocks, uses)
        groups = _group(blocks, memory_budget, block_cost)
        return Plan(rates, blocks, uses, groups, module_names)


def _fill_single_modules(rates, blocks, uses, min_frequency=2):
    """Blocks and uses with single-module blocks for the uncovered slots."""
    missing = {}
    for i, config in enumerate(rates):
        covered = set()
        for b in uses[i]:
            covered.update(range(blocks[b].start, blocks[b].stop))
        for m, r in enumerate(config):
            if m not in covered:
                missing.setdefault((m, r), []).append(i)
    added = {slot: configs for slot, configs in missing.items() if len(configs) >= min_frequency}
    specs = [(b.start, len(b), b.rates, b.frequency, ("old", b.id)) for b in blocks]
    specs += [(m, 1, (r,), len(configs), ("new", (m, r))) for (m, r), configs in added.items()]
    specs.sort()
    new_id = {spec[-1]: i for i, spec in enumerate(specs)}
    out_blocks = [Block(i, start, tuple(r), f) for i, (start, _, r, f, _) in enumerate(specs)]
    out_uses = [[new_id[("old", b)] for b in u] for u in uses]
    for (m, r), configs in added.items():
        for i in configs:
            out_uses[i].append(new_id[("new", (m, r))])
    out_uses = [sorted(u, key=lambda b: out_blocks[b].start) for u in out_uses]
    return out_blocks, out_uses


def _config_rates(config, what):
    """Rounded rates of one config; `what` names it in error messages."""
    raw = getattr(config, "rates", config)
    try:                                    # fast path: plans take 100k configs
        rates = round_rates(raw)
        if rates and all(0.0 <= r < 1.0 for r in rates):
            return rates
    except (TypeError, ValueError):
        pass
    return check_rates(raw, what, item="{what}, module {i}")


def _all_config_rates(configs):
    configs = list(configs)
    if len(configs) < 2:
        raise ValueError(f"need at least 2 configurations, got {len(configs)}")
    rates = [_config_rates(c, f"config {i}") for i, c in enumerate(configs)]
    expected = len(rates[0])
    for i, r in enumerate(rates):
        if len(r) != expected:
            raise ValueError(
                f"config {i} has {len(r)} modules, expected {expected} (as config 0)")
    return rates


def _encode(rates):
    """Symbols `(module, rate)` per config, each config ended by its index."""
    modules = range(len(rates[0]))
    symbols = []
    for i, config in enumerate(rates):
        symbols.extend(zip(modules, config))
        symbols.append(i)
    return symbols


def _select(grammar, freq, order):
    """The paper's post-order heuristic; returns the chosen rule ids."""
    marked = set()
    dead = set()
    for rid in reversed(order):
        kids = grammar.children(rid).keys()
        if (freq[rid] > 1 and dead.isdisjoint(kids)
                and (not kids or freq[rid] == max(freq[k] for k in kids))):
            marked.add(rid)
            marked.difference_update(kids)
        else:
            dead.add(rid)
    return marked


def _make_blocks(grammar, freq, marked):
    """Blocks sorted by (start, stop, rates), and rule id -> block id."""
    found = []
    for rid in marked:
        symbols = grammar.expand(rid)
        if not all(type(s) is tuple for s in symbols):
            raise RuntimeError(f"rule {rid} spans an end marker: {symbols}")
        start = symbols[0][0]
        if [m for m, _ in symbols] != list(range(start, start + len(symbols))):
            raise RuntimeError(f"rule {rid} covers non-consecutive modules: {symbols}")
        found.append((start, len(symbols), tuple(r for _, r in symbols), freq[rid], rid))
    found.sort()
    blocks = [Block(i, start, rates, f) for i, (start, _, rates, f, _) in enumerate(found)]
    return blocks, {f[-1]: i for i, f in enumerate(found)}


def _config_uses(grammar, order, block_of, num_configs):
    """Block ids per config, read off the grammar's parse of each config."""
    rules = grammar.rules
    cover = {}      # rule id -> block ids its expansion uses, in order
    for rid in reversed(order[1:]):
        if rid in block_of:
            cover[rid] = (block_of[rid],)
        else:
            cover[rid] = tuple(b for item in rules[rid] if type(item) is RuleRef
                               for b in cover[item.id])
    uses = [[] for _ in range(num_configs)]
    config = 0
    for item in rules[grammar.start]:
        if type(item) is RuleRef:
            uses[config].extend(cover[item.id])
        elif type(item) is int:
            config += 1
    return uses


def _group(blocks, memory_budget, block_cost):
    """Block ids in groups within `memory_budget` (first-fit decreasing)."""
    if memory_budget is None and block_cost is None:
        return [[b.id for b in blocks]] if blocks else []
    if memory_budget is None or block_cost is None:
        raise ValueError("memory_budget and block_cost must be given together")
    if not memory_budget > 0:
        raise ValueError(f"memory_budget must be positive, got {memory_budget!r}")
    costs = {b.id: block_cost(b) for b in blocks}
    bins = []       # [room left, block ids]
    for b in sorted(blocks, key=lambda b: costs[b.id], reverse=True):
        cost = costs[b.id]
        if not 0 <= cost <= memory_budget:
            raise ValueError(f"block {b.name} costs {cost!r}, outside [0, "
                             f"memory_budget={memory_budget!r}]")
        for room in bins:
            if cost <= room[0]:
                room[0] -= cost
                room[1].append(b.id)
                break
        else:
            bins.append([memory_budget - cost, [b.id]])
    return [sorted(ids) for _, ids in bins]


def composable_plan(plan, modules):
    """(plan without the blocks that cover, or follow, a module whose output
    shape changes when pruned; number dropped).

    Such a block's weights would not fit the assembled network: its input or
    output channels depend on a neighbour's rate.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.planner.modules import find_modules
        >>> mods = find_modules(zoo.plain_cnn())
        >>> plan = plan_tuning_blocks([[0.3, 0.5, 0.5, 0.3], [0.3, 0.5, 0.5, 0.7]])
        >>> composable_plan(plan, mods)[1]
        1
    """
    bad = {i for i, m in enumerate(modules) if not m.composable}
    keep = [b for b in plan.blocks if not bad.intersection(range(b.start - 1, b.stop))]
    if len(keep) == len(plan.blocks):
        return plan, 0
    new_id = {b.id: i for i, b in enumerate(keep)}
    blocks = [dataclasses.replace(b, id=new_id[b.id]) for b in keep]
    uses = [[new_id[b.id] for b in plan.uses(i) if b.id in new_id]
            for i in range(len(plan.configs))]
    groups = [g for g in ([new_id[i] for i in grp if i in new_id] for grp in plan.groups) if g]
    return Plan(plan.configs, blocks, uses, groups, plan.module_names), len(plan.blocks) - len(keep)
