"""Candidates and exploration objectives (docs/method.md step 6).

An objective decides three things: the order in which candidates are
visited, the accuracy target that ends the search, and which finished
candidate wins. Objectives are plain data: `to_dict()` / `objective_from_dict`
round-trip through JSON, and `parse_objective` reads the short strings that
command tools take on their flags:

    smallest_params:alpha=0.01        smallest model (params) with acc >= full x (1 - alpha)
    smallest_flops:alpha=0.02         same, size measured in FLOPs
    most_accurate:max_params=50000    most accurate model with params <= 50000
    most_accurate:max_flops=2e6,early_stop=false
    fastest:runtime=tflite,alpha=0.01 fastest model (predicted batch-1 latency in
                                      TFLite or onnxruntime) with acc >= full x (1 - alpha)

More objectives plug in with `register_objective(name, cls, keys)`.

Example:
    >>> obj = parse_objective("smallest_params:alpha=0.01")
    >>> round(obj.target(0.88), 4)
    0.8712
    >>> cands = [Candidate(0, (0.3,), 900, 1800), Candidate(1, (0.7,), 400, 800)]
    >>> [c.index for c in obj.order(cands)]
    [1, 0]
"""

import dataclasses
import json
import math
import numbers

#: Accuracies are ratios of counts; a target computed as full x (1 - alpha)
#: may land one ulp above an accuracy that equals it on paper.
ACCURACY_EPS = 1e-9

SIZES = ("params", "flops")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration to explore: a pruning rate per module and its size.

    `index` identifies the candidate (its position in the caller's config
    list); `rates` has one float per module; `params` / `flops` describe the
    pruned network (any consistent counting, e.g. multiply-adds);
    `latency_ms`, optional, its predicted batch-1 latency (what latency
    objectives order by; see `wootz_keras.latency`).

    Example:
        >>> c = Candidate(3, [0.3, 0.5], params=1200, flops=5000)
        >>> c.rates
        (0.3, 0.5)
        >>> Candidate.from_dict(c.to_dict()) == c
        True
        >>> Candidate(4, [0.5], 900, 3000, latency_ms=0.25).to_dict()["latency_ms"]
        0.25
    """

    index: int
    rates: tuple
    params: int
    flops: int
    latency_ms: float = None

    def __post_init__(self):
        if isinstance(self.index, bool) or not isinstance(self.index, numbers.Integral):
            raise ValueError(f"Candidate index must be an int, got {self.index!r}")
        try:
            rates = tuple(float(r) for r in self.rates)
        except (TypeError, ValueError):
            raise ValueError(f"Candidate {self.index}: rates must be a sequence of floats, "
                             f"got {self.rates!r}") from None
        for r in rates:
            if not (0.0 <= r < 1.0):
                raise ValueError(f"Candidate {self.index}: rate {r!r} is outside [0, 1)")
        for name in SIZES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0 or v != int(v):
                raise ValueError(f"Candidate {self.index}: {name} must be a non-negative "
                                 f"integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.latency_ms is not None:
            v = self.latency_ms
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                    or v <= 0:
                raise ValueError(f"Candidate {self.index}: latency_ms must be a positive number "
                                 f"or None, got {v!r}")
            object.__setattr__(self, "latency_ms", float(v))
        object.__setattr__(self, "index", int(self.index))
        object.__setattr__(self, "rates", rates)

    def size(self, measure="params"):
        """`params` or `flops`, by name."""
        _check_size(measure)
        return getattr(self, measure)

    def to_dict(self):
        d = {"index": self.index, "rates": list(self.rates),
             "params": self.params, "flops": self.flops}
        if self.latency_ms is not None:
            d["latency_ms"] = self.latency_ms
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(d["index"], tuple(d["rates"]), d["params"], d["flops"], d.get("latency_ms"))


def _check_size(size):
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")


def _final_accuracy(result):
    """The final accuracy of a result: a number, a mapping or an object."""
    if isinstance(result, numbers.Real):
        return float(result)
    if isinstance(result, dict) or hasattr(result, "keys"):
        value = result.get("final_accuracy")
    else:
        value = getattr(result, "final_accuracy", None)
    if value is None:
        raise ValueError(f"result has no final_accuracy: {result!r}")
    return float(value)


def _check_unique(candidates):
    seen = set()
    for c in candidates:
        if not isinstance(c, Candidate):
            raise ValueError(f"expected Candidate objects, got {type(c).__name__}: {c!r}")
        if c.index in seen:
            raise ValueError(f"duplicate candidate index {c.index}")
        seen.add(c.index)


class Objective:
    """Base class: see `SmallestWithinAccuracy`, `MostAccurateWithinBudget`
    and `FastestWithinAccuracy`; register a subclass with `register_objective`.

    `latency`: None, or {"runtime": ..., "threads": ...} when the objective
    orders by predicted latency (candidate makers then fill
    `Candidate.latency_ms` for that runtime).
    """

    name = None
    latency = None

    def order(self, candidates):
        """The candidates to visit, in visiting order (a new list)."""
        raise NotImplementedError

    def target(self, full_accuracy):
        """The final accuracy that ends the search early (None: never ends early)."""
        raise NotImplementedError

    def is_met(self, result, full_accuracy):
        """Whether `result` (a number, or anything with `final_accuracy`) meets the target."""
        return _final_accuracy(result) >= self.target(full_accuracy) - ACCURACY_EPS

    def fallback(self, ordered_rows):
        """The winner when no candidate met the target and all were tried (or None)."""
        return None

    def describe_target(self, full_accuracy):
        raise NotImplementedError

    def describe(self):
        raise NotImplementedError

    def to_dict(self):
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _check_finite(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class SmallestWithinAccuracy(Objective):
    """The smallest model whose accuracy >= full_accuracy x (1 - alpha).

    The paper's main objective. Candidates are visited smallest first
    (ties: the other size measure, then index); the first one that meets
    the target wins and ends the search. `alpha` may be negative (ask for
    more than the full model's accuracy); the paper uses -0.02 .. 0.08.

    Example:
        >>> obj = SmallestWithinAccuracy(alpha=0.02, size="flops")
        >>> obj.is_met({"final_accuracy": 0.87}, full_accuracy=0.88)
        True
        >>> obj.describe()
        'smallest flops with accuracy >= full x (1 - 0.02)'
    """

    name = "smallest_within_accuracy"

    def __init__(self, alpha=0.01, size="params"):
        alpha = _check_finite("alpha", alpha)
        if not (-1.0 < alpha < 1.0):
            raise ValueError(f"alpha must be in (-1, 1), got {alpha!r}")
        _check_size(size)
        self.alpha = alpha
        self.size = size

    def order(self, candidates):
        candidates = list(candidates)
        _check_unique(candidates)
        other = "flops" if self.size == "params" else "params"
        return sorted(candidates, key=lambda c: (c.size(self.size), c.size(other), c.index))

    def target(self, full_accuracy):
        return float(full_accuracy) * (1.0 - self.alpha)

    def _factor(self):
        sign = "-" if self.alpha >= 0 else "+"
        return f"(1 {sign} {abs(self.alpha):g})"

    def describe_target(self, full_accuracy):
        return (f"accuracy >= {self.target(full_accuracy):.4f} "
                f"(full {float(full_accuracy):.4g} x {self._factor()})")

    def describe(self):
        return f"smallest {self.size} with accuracy >= full x {self._factor()}"

    def to_dict(self):
        return {"name": self.name, "alpha": self.alpha, "size": self.size}


class MostAccurateWithinBudget(Objective):
    """The most accurate model with params <= max_params and flops <= max_flops.

    Candidates outside the budget are never visited; those inside are
    visited largest first (by params, or by flops when only `max_flops` is
    given). Early termination (ours; sound by construction): with
    `early_stop=True` the search ends at the first candidate whose accuracy
    reaches the full model's accuracy -- a pruned model cannot be asked to
    do better than the model it came from, and since the order is largest
    first, the first such candidate is the one that retains the most
    capacity. If none reaches it, every candidate in the budget is tried
    and the most accurate wins (ties: the smaller one). `early_stop=False`
    always tries all of them.

    Example:
        >>> obj = MostAccurateWithinBudget(max_params=1000)
        >>> cands = [Candidate(0, (0.3,), 1500, 9), Candidate(1, (0.5,), 900, 7),
        ...          Candidate(2, (0.7,), 500, 5)]
        >>> [c.index for c in obj.order(cands)]
        [1, 2]
        >>> obj.target(0.9)
        0.9
    """

    name = "most_accurate_within_budget"

    def __init__(self, max_params=None, max_flops=None, early_stop=True):
        for key, value in (("max_params", max_params), ("max_flops", max_flops)):
            if value is not None:
                v = _check_finite(key, value)
                if v <= 0 or v != int(v):
                    raise ValueError(f"{key} must be a positive integer, got {value!r}")
        self.max_params = None if max_params is None else int(max_params)
        self.max_flops = None if max_flops is None else int(max_flops)
        if not isinstance(early_stop, bool):
            raise ValueError(f"early_stop must be a bool, got {early_stop!r}")
        self.early_stop = early_stop
        self.size = "flops" if (max_flops is not None and max_params is None) else "params"

    def within_budget(self, candidate):
        return ((self.max_params is None or candidate.params <= self.max_params)
                and (self.max_flops is None or candidate.flops <= self.max_flops))

    def order(self, candidates):
        candidates = list(candidates)
        _check_unique(candidates)
        other = "flops" if self.size == "params" else "params"
        inside = [c for c in candidates if self.within_budget(c)]
        return sorted(inside, key=lambda c: (-c.size(self.size), -c.size(other), c.index))

    def target(self, full_accuracy):
        return float(full_accuracy) if self.early_stop else None

    def is_met(self, result, full_accuracy):
        if not self.early_stop:
            return False
        return super().is_met(result, full_accuracy)

    def fallback(self, ordered_rows):
        # Most accurate; ties go to the later position, i.e. the smaller model.
        best = None
        for row in ordered_rows:
            if best is None or _final_accuracy(row) >= _final_accuracy(best):
                best = row
        return best

    def _budget(self):
        parts = []
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:,}")
        if self.max_flops is not None:
            parts.append(f"flops <= {self.max_flops:,}")
        return " and ".join(parts) or "no size limit"

    def describe_target(self, full_accuracy):
        if not self.early_stop:
            return f"the most accurate with {self._budget()} (all tried)"
        return f"accuracy >= {float(full_accuracy):.4f} (the full model's) with {self._budget()}"

    def describe(self):
        stop = ", stop at full accuracy" if self.early_stop else ", try all"
        return f"most accurate with {self._budget()}{stop}"

    def to_dict(self):
        return {"name": self.name, "max_params": self.max_params,
                "max_flops": self.max_flops, "early_stop": self.early_stop}


#: Runtimes a latency objective may name; the same names as
#: `wootz_keras.latency.RUNTIMES` (this layer imports nothing above it).
LATENCY_RUNTIMES = ("tflite", "onnxruntime")


class FastestWithinAccuracy(SmallestWithinAccuracy):
    """The fastest model whose accuracy >= full_accuracy x (1 - alpha).

    Like `SmallestWithinAccuracy`, with candidates ordered by predicted
    batch-1 latency in `runtime` at `threads` (`Candidate.latency_ms`; ties:
    FLOPs, params, index). The prediction comes from the measured latency
    table (`wootz_keras.latency`), not from exporting each candidate;
    `workflow.runner.make_candidates(..., objective=...)` fills it.

    Example:
        >>> obj = parse_objective("fastest:runtime=onnxruntime,alpha=0.02")
        >>> cands = [Candidate(0, (0.3,), 900, 1800, latency_ms=0.9),
        ...          Candidate(1, (0.7,), 400, 800, latency_ms=1.2)]
        >>> [c.index for c in obj.order(cands)]
        [0, 1]
        >>> obj.describe()
        'fastest on onnxruntime (1 thread) with accuracy >= full x (1 - 0.02)'
    """

    name = "fastest_within_accuracy"

    def __init__(self, alpha=0.01, runtime="tflite", threads=1):
        super().__init__(alpha=alpha, size="flops")
        if runtime not in LATENCY_RUNTIMES:
            raise ValueError(f"runtime must be one of {LATENCY_RUNTIMES}, got {runtime!r}")
        threads = _check_finite("threads", threads)
        if threads < 1 or threads != int(threads):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.runtime = runtime
        self.threads = int(threads)
        self.latency = {"runtime": self.runtime, "threads": self.threads}

    def order(self, candidates):
        candidates = list(candidates)
        _check_unique(candidates)
        missing = [c.index for c in candidates if c.latency_ms is None]
        if missing:
            raise ValueError(f"objective {self.describe()!r} orders by predicted latency, but "
                             f"candidate(s) {missing[:5]} have no latency_ms; make them with "
                             "wootz_keras.workflow.runner.make_candidates(configs, modules, "
                             "objective=...)")
        return sorted(candidates, key=lambda c: (c.latency_ms, c.flops, c.params, c.index))

    def describe(self):
        s = "" if self.threads == 1 else "s"
        return (f"fastest on {self.runtime} ({self.threads} thread{s}) with accuracy >= "
                f"full x {self._factor()}")

    def to_dict(self):
        return {"name": self.name, "alpha": self.alpha, "runtime": self.runtime,
                "threads": self.threads}


_CLASSES = {}   # Objective.name -> class (objective_from_dict)
_ALIASES = {}   # short name -> (class, fixed keyword arguments) (parse_objective)
_KEYS = {}      # class -> {key: kind}
_KINDS = (float, int, str, bool)


def register_objective(name, cls, keys, fixed=None):
    """Let `parse_objective("name:key=value,...")` and `objective_from_dict`
    build `cls` (an `Objective` subclass with its own `name`).

    keys: {keyword of cls(): kind}, kind one of float, int, str, bool (how the
    value's text is read); fixed: keyword arguments the short name implies
    (e.g. {"size": "flops"}), which the text may not override. Registering a
    name again for the same class and arguments is harmless; for another one,
    a ValueError (a registered name never changes what it means).

    Example:
        >>> class Cheapest(SmallestWithinAccuracy):
        ...     name = "cheapest_within_accuracy"
        >>> register_objective("cheapest", Cheapest, {"alpha": float, "size": str})
        >>> parse_objective("cheapest:alpha=0.05")
        Cheapest(alpha=0.05, size='params')
    """
    if not isinstance(name, str) or not name or name != name.strip().lower() \
            or any(ch in name for ch in ":,={ "):
        raise ValueError(f"objective name must be a non-empty lower-case word, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Objective)) or \
            not isinstance(cls.name, str) or not cls.name:
        raise ValueError(f"objective class must subclass Objective and set `name`, got {cls!r}")
    if not isinstance(keys, dict) or any(not isinstance(k, str) or v not in _KINDS
                                         for k, v in keys.items()):
        raise ValueError(f"keys must be a dict {{keyword: one of float, int, str, bool}}, "
                         f"got {keys!r}")
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(keys))
    if unknown:
        raise ValueError(f"fixed arguments {unknown} of {name!r} are not among its keys")
    if _CLASSES.get(cls.name, cls) is not cls:
        raise ValueError(f"objective class name {cls.name!r} is already taken by "
                         f"{_CLASSES[cls.name].__name__}")
    if _KEYS.get(cls, keys) != keys:
        raise ValueError(f"{cls.__name__} is already registered with keys {_KEYS[cls]}")
    if name in _ALIASES and _ALIASES[name] != (cls, fixed):
        raise ValueError(f"objective {name!r} is already registered for "
                         f"{_ALIASES[name][0].__name__}{_ALIASES[name][1] or ''}")
    _CLASSES[cls.name] = cls
    _KEYS[cls] = dict(keys)
    _ALIASES[name] = (cls, fixed)


def registered_objectives():
    """{short name: (class, fixed keyword arguments)} of every registered objective."""
    return dict(_ALIASES)


_SMALLEST_KEYS = {"alpha": float, "size": str}
_BUDGET_KEYS = {"max_params": float, "max_flops": float, "early_stop": bool}
_FASTEST_KEYS = {"alpha": float, "runtime": str, "threads": int}
for _name, _cls, _keys, _fixed in (
        ("smallest", SmallestWithinAccuracy, _SMALLEST_KEYS, None),
        ("smallest_params", SmallestWithinAccuracy, _SMALLEST_KEYS, {"size": "params"}),
        ("smallest_flops", SmallestWithinAccuracy, _SMALLEST_KEYS, {"size": "flops"}),
        ("smallest_within_accuracy", SmallestWithinAccuracy, _SMALLEST_KEYS, None),
        ("most_accurate", MostAccurateWithinBudget, _BUDGET_KEYS, None),
        ("most_accurate_within_budget", MostAccurateWithinBudget, _BUDGET_KEYS, None),
        ("fastest", FastestWithinAccuracy, _FASTEST_KEYS, None),
        ("fastest_within_accuracy", FastestWithinAccuracy, _FASTEST_KEYS, None)):
    register_objective(_name, _cls, _keys, _fixed)


def objective_from_dict(d):
    """Rebuild an objective from `Objective.to_dict()`.

    Example:
        >>> objective_from_dict({"name": "smallest_within_accuracy", "alpha": 0.05})
        SmallestWithinAccuracy(alpha=0.05, size='params')
    """
    if isinstance(d, Objective):
        return d
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"objective must be a dict with a 'name', got {d!r}")
    kwargs = dict(d)
    name = kwargs.pop("name")
    if name not in _CLASSES:
        raise ValueError(f"unknown objective {name!r}; known: {sorted(_CLASSES)}")
    cls = _CLASSES[name]
    unknown = sorted(set(kwargs) - set(_KEYS[cls]))
    if unknown:
        raise ValueError(f"objective {name!r} takes no {', '.join(map(repr, unknown))}; "
                         f"it takes {sorted(_KEYS[cls])}")
    return cls(**kwargs)


def _parse_value(key, text, kind):
    if kind is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={text!r} is not a boolean (true/false)")
    if kind is float:
        try:
            return float(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a number") from None
    if kind is int:
        try:
            return int(text.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"{key}={text!r} is not an integer") from None
    return text.strip()


def parse_objective(text):
    """Parse a command-line objective, `name[:key=value,...]`, or a JSON dict.

    Names: smallest_params, smallest_flops, smallest (size=...), most_accurate,
    fastest (runtime=tflite|onnxruntime, threads=1, alpha=...), and whatever
    `register_objective` added.

    Example:
        >>> parse_objective("most_accurate:max_params=50000")
        MostAccurateWithinBudget(max_params=50000, max_flops=None, early_stop=True)
        >>> parse_objective("smallest_flops:alpha=-0.02").target(0.5)
        0.51
    """
    if isinstance(text, Objective):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"objective must be a non-empty string, got {text!r}")
    text = text.strip()
    if text.startswith("{"):
        try:
            return objective_from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ValueError(f"objective {text!r} is not valid JSON: {e}") from None
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if name not in _ALIASES:
        raise ValueError(f"unknown objective {name!r} in {text!r}; known: {sorted(_ALIASES)}")
    cls, kwargs = _ALIASES[name]
    kwargs = dict(kwargs)
    keys = _KEYS[cls]
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"objective {text!r}: {item!r} is not key=value")
        if key not in keys or key in kwargs and key in _ALIASES[name][1]:
            raise ValueError(f"objective {text!r}: unknown key {key!r}; "
                             f"{name} takes {sorted(set(keys) - set(_ALIASES[name][1]))}")
        kwargs[key] = _parse_value(key, value, keys[key])
    return cls(**kwargs)
