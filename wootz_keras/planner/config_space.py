"""The configuration space: one pruning rate per module.

Estimates each configuration's params and FLOPs from channel counts alone,
without building the pruned network.
"""

import dataclasses
import itertools

import numpy as np

from wootz_keras.graph.cost import call_macs, count_flops, count_params
from wootz_keras.pruning.estimate import estimate_cost, pruned_channels
from wootz_keras.pruning.prune import resolve_round_to
from wootz_keras.utils.io import read_document, write_document
from wootz_keras.utils.rates import check_rates


@dataclasses.dataclass(frozen=True)
class Config:
    """A pruning configuration: `rates[i]` is module i's rate."""
    rates: tuple
    params: int = None
    flops: int = None

    def __len__(self):
        return len(self.rates)


def module_group_rates(modules, rates, start=0):
    """{dependency group id: rate} of modules start .. start + len(rates) - 1."""
    return {g: float(r) for m, r in zip(modules[start:start + len(rates)], rates)
            for g in m.groups}


def estimate_size(modules, rates, round_to=1, runtime=None):
    """(params, flops) of the network pruned at one rate per module, without
    building it (the engine's `estimate_cost`, exact): the one place sizes of
    configurations are estimated. round_to / runtime: the channel rounding
    the networks are built with (as for `prune_compact`: an int, or "auto"
    with runtime="tflite" | "onnxruntime").

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.planner.modules import find_modules
        >>> mods = find_modules(zoo.resnet_cifar(depth=8))
        >>> params, flops = estimate_size(mods, [0.5, 0.5, 0.5])
        >>> params < zoo.resnet_cifar(depth=8).count_params()
        True
    """
    rates = check_rates(rates, "config")
    if len(rates) != len(modules):
        raise ValueError(f"config has {len(rates)} rates but the model has {len(modules)} "
                         f"modules ({modules.names[0]} ...)")
    return estimate_cost(modules.analysis, group_rates=module_group_rates(modules, rates),
                         round_to=round_to, runtime=runtime)


def full_size(modules):
    """(params, flops) of the unpruned network."""
    return count_params(modules.analysis), count_flops(modules.analysis)


def block_flops(modules, start, rates):
    """FLOPs of modules start .. start + len(rates) - 1 pruned at `rates` (a
    tuning block's student), per image.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.planner.modules import find_modules
        >>> mods = find_modules(zoo.resnet_cifar(depth=8))
        >>> block_flops(mods, 0, (0.5,)) < block_flops(mods, 0, (0.0,))
        True
    """
    analysis = modules.analysis
    channels = pruned_channels(analysis, module_group_rates(modules, rates, start))
    layers = {name for m in modules[start:start + len(rates)] for name in m.layers}
    calls = [c for c in analysis.graph.calls if c.core.name in layers]
    return int(2 * sum(call_macs(c, *channels.get(id(c), (None, None))) for c in calls))


class ConfigSpace:
    """All ways to give each module a rate from `rates`; sizes are estimated
    for networks built with `round_to` / `runtime` (see `estimate_size`).

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

    def __init__(self, modules, rates=(0.3, 0.5, 0.7), round_to=1, runtime=None):
        if not len(modules):
            raise ValueError("no modules: the model has nothing this planner can prune")
        self.modules = modules
        self.rates = check_rates(rates)
        self.size = len(self.rates) ** len(modules)
        # resolved once: "auto" becomes the runtime's channel policy
        self.round_to = resolve_round_to(round_to, runtime)

    @property
    def full_params(self):
        return full_size(self.modules)[0]

    @property
    def full_flops(self):
        return full_size(self.modules)[1]

    def estimate(self, rates):
        """(params, flops) of the pruned network for one configuration."""
        return estimate_size(self.modules, rates, self.round_to)

    def config(self, rates):
        """A Config with its estimated size."""
        rates = check_rates(rates, "config")
        params, flops = estimate_size(self.modules, rates, self.round_to)
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
    def save(self, path, configs):
        """Write the space and `configs` to JSON atomically."""
        write_document(path, "configs", {
            "modules": [m.name for m in self.modules],
            "fingerprint": self.modules.fingerprint(),
            "rates": list(self.rates),
            "configs": [{"rates": list(c.rates), "params": c.params, "flops": c.flops}
                        for c in configs],
        })

    def load(self, path):
        """Configs saved by `save`; ValueError if they belong to another model."""
        return load_configs(path, self.modules)


def load_configs(path, modules):
    """The configurations in `path` (written by `ConfigSpace.save`) for `modules`;
    a foreign, corrupt or mismatched file is a ValueError naming it."""
    data = read_document(path, "configs", what="configuration file")
    try:
        if data["fingerprint"] != modules.fingerprint():
            raise ValueError(f"configurations in {path!r} were made for other modules "
                             f"({len(data['modules'])} modules: {data['modules'][:2]} ...)")
        return [Config(check_rates(c["rates"], f"{path}: config {i}"), c["params"], c["flops"])
                for i, c in enumerate(data["configs"])]
    except (KeyError, TypeError) as e:
        raise ValueError(f"configuration file {path!r} is malformed: {e!r}") from None
