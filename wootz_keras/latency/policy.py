"""Channel counts the runtime likes: round_to="auto".

CPU runtimes compute a convolution's output channels in tiles as wide as
the vector unit (16 float32 lanes with AVX-512; XNNPACK in LiteRT and MLAS
in onnxruntime both): on the machine this was built on, a 3x3 convolution
at 32x32 with 16 input channels takes the same time for 1 .. 16 output
channels, twice that for 17 .. 32 (TFLite), and onnxruntime runs 9 .. 15
output channels, or input channels that are not a multiple of 4, slower
than 16. So a group pruned to 11 channels runs no faster than 16.

The rule, per dependency group pruned at rate r (k = the units the rate
keeps): among the counts c in [k, min(size, k + step)] (multiples of the
block count for block-split groups), take the cost of c = the summed
measured latency of every modelled layer the group's channels enter or
leave (convolutions, depthwise, dense; see `shapes`), with the group at c
channels and every other group at the teacher's count; then keep the
LARGEST c whose cost is within `tolerance` of the cheapest in the window.
So the count never runs slower (beyond the tolerance) than the count the
rate asks for, never keeps fewer units than the rate asks for and at most
`step` more: it keeps the channels the vector units compute anyway, and
moves off counts slower than a wider one (onnxruntime: 15 -> 16). Taking
the other groups at the teacher's count makes each group's choice depend
on its own rate only: a candidate and a pre-training student of the same
modules get the same counts, and a lower rate never keeps fewer units (the
rule is monotone in k for a fixed cost function).
"""

import numpy as np

from wootz_keras.latency.shapes import layer_points

DEFAULT_STEP = 16
DEFAULT_TOLERANCE = 0.03


def choose_count(costs, tolerance=DEFAULT_TOLERANCE):
    """The largest count whose cost is within `tolerance` of the cheapest.

    costs: {count: ms} over the window (the requested count is its smallest
    key). All zero (no modelled layer): the smallest count.

    Example:
        >>> choose_count({11: 1.0, 12: 1.0, 13: 1.01, 16: 0.98, 17: 2.0})
        16
        >>> choose_count({8: 0.5, 9: 1.0})
        8
    """
    if not costs:
        raise ValueError("choose_count needs at least one count")
    best = min(costs.values())
    if best <= 0:
        return min(costs)
    limit = best * (1.0 + tolerance)
    return max(c for c, ms in costs.items() if ms <= limit)


def _check_positive(name, value, kind=int):
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) \
            or value < 0 or (kind is int and value < 1):
        raise ValueError(f"{name} must be a {'non-negative number' if kind is float else 'positive integer'}, "
                         f"got {value!r}")
    return value


def _group_calls(analysis, gid):
    """[(call, units of the group in its input, ... in its output)] of the
    weighted calls the group's channels enter or leave."""
    from wootz_keras.pruning.estimate import _tensor_shares
    shares = _tensor_shares(analysis)
    out = []
    for call in analysis.graph.calls:
        if not (call.inputs and call.outputs and getattr(call.core, "weights", None)):
            continue
        n_in = dict(shares.get(id(call.inputs[0]), ())).get(gid, 0)
        n_out = dict(shares.get(id(call.outputs[0]), ())).get(gid, 0)
        if n_in or n_out:
            out.append((call, n_in, n_out))
    return out


class ChannelPolicy:
    """Per group, the kept channel count its runtime runs fastest for it (see
    the module docstring for the rule); `kept_counts` is what
    `prune_compact(round_to=policy)` asks.

    table: a `LatencyTable`; step: how many units above the rate's count may
    be kept (16: one vector tile of float32 on AVX-512, which covers the 8
    of AVX2 and the 4..8 of ARM NEON); tolerance: relative latency counted as
    equal (0.03, above the run-to-run noise of a table entry).

    Example:
        >>> import tempfile
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import ChannelAnalysis
        >>> from wootz_keras.latency.table import LatencyTable
        >>> flat = lambda shape, cin, cout: 1.0 + (cout > 16)      # a made-up device
        >>> table = LatencyTable("onnxruntime", cache=tempfile.mkdtemp(), measure=flat)
        >>> a = ChannelAnalysis(zoo.plain_cnn(width=32))
        >>> gid = a.group_of("block2_conv").id                         # 64 channels
        >>> ChannelPolicy(table).kept_counts(a, {gid: 0.8})            # the rate keeps 13
        {1: 16}
    """

    def __init__(self, table, step=DEFAULT_STEP, tolerance=DEFAULT_TOLERANCE):
        self.table = table
        self.step = _check_positive("step", step)
        self.tolerance = float(_check_positive("tolerance", tolerance, float))

    def __repr__(self):
        return (f"ChannelPolicy({self.table.runtime}, threads={self.table.threads}, "
                f"step={self.step}, tolerance={self.tolerance:g})")

    def window(self, group, rate):
        """The counts a group pruned at `rate` may keep: from the rate's count
        to `step` more (within the group; multiples of its block count)."""
        from wootz_keras.pruning.prune import kept_units
        k = kept_units(group, rate)
        blocks = 1 if group.blocks is None else int(group.blocks.max()) + 1
        return [c for c in range(k, min(group.size, k + self.step) + 1) if c % blocks == 0]

    def group_costs(self, analysis, gid, counts):
        """{count: summed latency (ms) of the layers around group `gid` with the
        group at that count and the rest at the teacher's counts}."""
        cache = analysis.score_cache.setdefault(("latency_costs", self.table.path), {})
        known = cache.setdefault(gid, {})
        todo = [c for c in counts if c not in known]
        if todo:
            group = analysis.groups[gid]
            calls = _group_calls(analysis, gid)
            per_count = []
            for c in todo:
                removed = group.size - c
                points = []
                for call, n_in, n_out in calls:
                    cin = call.inputs[0].channels - int(round(removed * n_in / group.size))
                    cout = call.outputs[0].channels - int(round(removed * n_out / group.size))
                    points.extend(layer_points(call, cin, cout))
                per_count.append(points)
            values = self.table.lookup([p for points in per_count for p in points])
            i = 0
            for c, points in zip(todo, per_count):
                known[c] = float(np.sum(values[i:i + len(points)])) if points else 0.0
                i += len(points)
        return {c: known[c] for c in counts}

    def kept_count(self, analysis, gid, rate):
        """Units group `gid` keeps at `rate`."""
        group = analysis.groups[gid]
        if rate <= 0:
            return group.size
        window = self.window(group, rate)
        if len(window) == 1:
            return window[0]
        return self.choose(self.group_costs(analysis, gid, window))

    def choose(self, costs):
        """The count to keep, given {count: ms} over the window (the rule of
        the module docstring; a subclass may use another)."""
        return choose_count(costs, self.tolerance)

    def kept_counts(self, analysis, group_rates):
        """{group id: units kept} for `group_rates` ({group id: rate})."""
        return {gid: self.kept_count(analysis, gid, r) for gid, r in group_rates.items()}

    def explain(self, analysis, group_rates):
        """Per group: producers, size, the rate's count, the chosen count and
        the latency (ms) of the group's layers at both (a table to print)."""
        from wootz_keras.pruning.prune import kept_units
        rows = []
        for gid, r in group_rates.items():
            group = analysis.groups[gid]
            k, chosen = kept_units(group, r), self.kept_count(analysis, gid, r)
            costs = self.group_costs(analysis, gid, sorted({k, chosen}))
            rows.append({"group": gid, "producers": list(group.producers), "size": group.size,
                         "rate": r, "requested": k, "kept": chosen,
                         "requested_ms": costs[k], "kept_ms": costs[chosen]})
        return rows
