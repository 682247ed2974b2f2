"""The configuration space: one pruning rate per module.

Estimates each configuration's params and FLOPs from channel counts alone,
without building the pruned network.
"""

import dataclasses
import itertools

import numpy as np

from wootz_keras.graph.cost import count_flops, count_params
from wootz_keras.pruning.prune import units_to_keep
from wootz_keras.utils.io import read_json, write_json


@dataclasses.dataclass(frozen=True)
class Config:
    """A pruning configuration: `rates[i]` is module i's rate."""
    rates: tuple
    params: int = None
    flops: int = None

    def __len__(self):
        return len(self.rates)


def check_rates(rates, what="rates"):
    """Validate a rate set: numbers in [0, 1), at least one."""
    rates = tuple(float(r) for r in rates)
    if not rates:
        raise ValueError(f"{what} is empty")
    for r in rates:
        if not 0.0 <= r < 1.0:
            raise ValueError(f"{what} holds {r}, outside [0, 1)")
    return rates


class ConfigSpace:
    """All ways to give each module a rate from `rates`.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.planner.modules import find_modules
        >>> space = ConfigSpace(find_modules(zoo.resnet_cifar(depth=8)), rates=(0.3, 0.5, 0.7))
        >>> space.size
        27
        >>> configs = space.sample(5, seed=0)
        >>> len(configs), len(configs[0].rates)
        (5, 3)
    """

    def __init__(self, modules, rates=(0.3, 0.5, 0.7)):
        if not len(modules):
            raise ValueError("no modules: the model has nothing this planner can prune")
        self.modules = modules
        self.rates = check_rates(rates)
        self.size = len(self.rates) ** len(modules)
        self._prepare_estimates()

    # -- cost estimates ------------------------------------------------
    def _prepare_estimates(self):
        analysis = self.modules.analysis
        graph = analysis.graph
        self._group_sizes = {g: analysis.groups[g].size for m in self.modules for g in m.groups}
        # channels each module group removes from each tensor, per unit
        per_tensor = {}
        for t in graph.tensors:
            gids, _ = analysis.element_index(("t", id(t)))
            counts = {}
            for m, module in enumerate(self.modules):
                n = int(np.isin(gids, module.groups).sum())
                if n:
                    counts[m] = n
            if counts:
                per_tensor[id(t)] = counts
        self._per_tensor = per_tensor
        self._graph = graph
        self.full_params = count_params(graph)
        self.full_flops = count_flops(graph)

    def estimate(self, rates):
        """(params, flops) of the pruned network for one configuration."""
        rates = tuple(rates)
        fraction = []
        for module, r in zip(self.modules, rates):
            sizes = [self._group_sizes[g] for g in module.groups]
            kept = [units_to_keep(s, r) for s in sizes]
            fraction.append(1 - sum(kept) / sum(sizes))
        removed = {}
        for tid, counts in self._per_tensor.items():
            removed[tid] = int(round(sum(n * fraction[m] for m, n in counts.items())))
        channels = {}
        for call in self._graph.calls:
            if not call.inputs:
                continue
            cin = call.inputs[0].channels - removed.get(id(call.inputs[0]), 0)
            cout = call.outputs[0].channels - removed.get(id(call.outputs[0]), 0)
            channels[id(call)] = (cin, cout)
        return count_params(self._graph, channels), count_flops(self._graph, channels)

    def config(self, rates):
        """A Config with its estimated size."""
        rates = check_rates(rates, "config")
        if len(rates) != len(self.modules):
            raise ValueError(f"config has {len(rates)} rates but the model has "
                             f"{len(self.modules)} modules")
        params, flops = self.estimate(rates)
        return Config(rates, params, flops)

    # -- enumeration and sampling -------------------------------------
    def enumerate(self, limit=100_000):
        """Every configuration (refuses spaces larger than `limit`)."""
        if self.size > limit:
            raise ValueError(f"the space holds {self.size} configurations (> {limit}); sample it")
        return [self.config(r) for r in itertools.product(self.rates, repeat=len(self.modules))]

    def sample(self, n, seed=0, uniform_size=False):
        """`n` distinct configurations, seeded.

        uniform_size: spread the picks evenly over estimated model size (as
        the paper samples), instead of uniformly over rate vectors.
        """
        if n < 1:
            raise ValueError(f"number of configurations must be positive, got {n}")
        if n >= self.size:
            return self.enumerate(limit=max(self.size, 1))
        rng = np.random.default_rng(seed)
        pool_size = min(self.size, n * (20 if uniform_size else 1))
        pool = self._distinct(rng, pool_size)
        if not uniform_size:
            return [self.config(r) for r in pool]
        configs = [self.config(r) for r in pool]
        sizes = np.array([c.params for c in configs], float)
        targets = np.linspace(sizes.min(), sizes.max(), n)
        free = np.ones(len(configs), bool)
        picked = []
        for t in targets:
            i = int(np.argmin(np.where(free, np.abs(sizes - t), np.inf)))
            free[i] = False
            picked.append(configs[i])
        return picked

    def _distinct(self, rng, count):
        seen, out = set(), []
        k = len(self.rates)
        while len(out) < count:
            idx = tuple(rng.integers(0, k, len(self.modules)).tolist())
            if idx not in seen:
                seen.add(idx)
                out.append(tuple(self.rates[i] for i in idx))
        return out

    # -- persistence ---------------------------------------------------
    def fingerprint(self):
        """A short hash of the module structure (to match plans to models)."""
        return self.modules.fingerprint()

    def save(self, path, configs):
        """Write the space and `configs` to JSON atomically."""
        write_json(path, {
            "format": "wootz-configs/1",
            "modules": [m.name for m in self.modules],
            "fingerprint": self.fingerprint(),
            "rates": list(self.rates),
            "configs": [{"rates": list(c.rates), "params": c.params, "flops": c.flops}
                        for c in configs],
        })

    def load(self, path):
        """Configs saved by `save`; ValueError if they belong to another model."""
        data = read_json(path, "configuration file")
        if data.get("format") != "wootz-configs/1":
            raise ValueError(f"{path!r} is not a wootz configuration file")
        if data["fingerprint"] != self.fingerprint():
            raise ValueError(f"configurations in {path!r} were made for other modules "
                             f"({len(data['modules'])} modules: {data['modules'][:2]} ...)")
        return [self.config(c["rates"]) for c in data["configs"]]
