"""Filter importance criteria: a registry of `Importance` objects.

A criterion scores every unit of a dependency group; the lowest-scored units
are pruned first. Criteria are named in a registry (`get`, `register`,
`names`); `prune_filters`, `prune_compact` and `UpdatePruningStep` take a
name, an `Importance` object or a plain callable, all checked by `get`.

    >>> from wootz_keras.pruning import importance
    >>> importance.get("l1")
    L1()
    >>> importance.names()[:3]
    ('l1', 'l2', 'bn_scale')

Your own criterion is either a function of one producer's filters, as an
array (filters, fan_in) -> one score per filter, summed over a group's
producers:

    >>> import numpy as np
    >>> max_abs = importance.get(lambda filters: np.abs(filters).max(axis=1))

or a subclass of `Importance` overriding `filter_scores` (per producer) or
`group_scores` (everything), registered under a name:

    >>> class Linf(importance.Importance):
    ...     def filter_scores(self, filters):
    ...         return np.abs(filters).max(axis=1)
    >>> importance.register("linf", Linf(), overwrite=True)
    >>> importance.get("linf")
    Linf()
"""

import numpy as np

__all__ = ["Importance", "L1", "L2", "BNScale", "Taylor", "Random", "get", "register", "names",
           "group_scores", "CRITERIA"]


def _weights_by_name(layer):
    return {v.name: v for v in layer.weights}


def producer_kernel(layer, rule):
    """(kernel variable, output-channel axis) of a producer layer, or None when
    the layer produces no channels of its own (not a producer, no kernel)."""
    if rule.role != "producer":
        return None
    weights = _weights_by_name(layer)
    name = _kernel_name(rule, weights)
    return None if name is None else (weights[name], rule.out_axes[name])


def _kernel_name(rule, weights):
    """The weight whose slices are a producer's filters: a "...kernel" if any,
    else (custom layers) the largest weight indexed by output channels."""
    names = [n for n in rule.out_axes if n in weights]
    kernels = [n for n in names if "kernel" in n]
    if kernels:
        return kernels[0]
    if not names:
        return None
    return max(names, key=lambda n: int(np.prod(weights[n].shape)))


def _filters(array, axis):
    """`array` as (filters, fan_in): filters along `axis`."""
    w = np.moveaxis(np.asarray(array), axis, 0)
    return w.reshape(w.shape[0], -1)


class Importance:
    """Base class of importance criteria.

    Override `filter_scores(filters)` to score each producer's filters
    (an array (filters, fan_in), one row per output channel; the scores of a
    group's producers are summed), or `group_scores(analysis, targets,
    data=None, loss=None, seed=0)` to score whole groups yourself.
    `needs_data`: the criterion needs a batch (x, y); `cacheable`: its scores
    depend on the weights only (cached per analysis).
    """
    needs_data = False
    cacheable = True
    name = None                 # set when registered

    def label(self):
        """How messages name the criterion: its registered name, else its repr."""
        return repr(self.name) if self.name else repr(self)

    def filter_scores(self, filters):
        raise NotImplementedError(f"{type(self).__name__} must define filter_scores or "
                                  "group_scores")

    def layer_scores(self, layer, rule, context):
        """Per-output-channel scores of one layer, or None if it has none."""
        kernel = producer_kernel(layer, rule)
        if kernel is None:
            return None
        var, axis = kernel
        scores = np.asarray(self.filter_scores(_filters(var.numpy(), axis)), np.float64)
        return scores.reshape(-1)

    def prepare(self, analysis, data, loss):
        """Anything computed once before scoring layers (e.g. gradients)."""
        return None

    def group_scores(self, analysis, targets, data=None, loss=None, seed=0):
        """{group id: score of each unit} for the target groups."""
        scores = {g: np.zeros(analysis.groups[g].size) for g in targets}
        context = self.prepare(analysis, data, loss)
        touched = {g: False for g in targets}
        seen = set()
        for call in analysis.graph.calls:
            core, rule = call.core, call.rule
            if id(core) in seen or ("out", id(core)) not in analysis.spaces.base:
                continue
            seen.add(id(core))
            per_channel = self.layer_scores(core, rule, context)
            if per_channel is None:
                continue
            gids, pos = analysis.element_index(("out", id(core)))
            if len(per_channel) != len(gids):
                raise ValueError(f"criterion {self.label()} gave {len(per_channel)} scores for the "
                                 f"{len(gids)} filters of layer {core.name!r}")
            for g in targets:
                sel = gids == g
                if sel.any():
                    np.add.at(scores[g], pos[sel], per_channel[sel])
                    touched[g] = True
        missing = [analysis.groups[g].producers[0] for g, ok in touched.items() if not ok]
        if missing:
            raise ValueError(f"criterion {self.label()} has nothing to score for the group of layer "
                             f"{missing[0]!r}{self._missing_hint()}")
        return scores

    def _missing_hint(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}()"


class L1(Importance):
    """Sum of absolute weights of each filter (as Wootz)."""

    def filter_scores(self, filters):
        return np.abs(filters).sum(1)


class L2(Importance):
    """Euclidean norm of each filter."""

    def filter_scores(self, filters):
        return np.sqrt((filters * filters).sum(1))


class BNScale(Importance):
    """|gamma| of the BatchNormalization layers on the group's channels (network slimming)."""

    def layer_scores(self, layer, rule, context):
        weights = _weights_by_name(layer)
        if type(layer).__name__ == "BatchNormalization" and "gamma" in weights:
            return np.abs(np.asarray(weights["gamma"].numpy(), np.float64))
        return None

    def _missing_hint(self):
        return " (bn_scale needs a BatchNormalization on those channels)"


class Taylor(Importance):
    """|sum of weight x gradient| of each filter on a batch `data=(x, y)`."""
    needs_data = True
    cacheable = False

    def prepare(self, analysis, data, loss):
        import keras
        import tensorflow as tf
        if data is None:
            raise ValueError("criterion 'taylor' needs data=(images, labels): a batch of real data")
        x, y = data
        model = analysis.graph.model
        loss_fn = keras.losses.get(loss or "sparse_categorical_crossentropy")
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss_fn(y, model(x, training=False)))
        variables = list(model.trainable_variables)
        grads = tape.gradient(value, [v.value for v in variables])
        return {id(v): (None if g is None else g.numpy()) for v, g in zip(variables, grads)}

    def layer_scores(self, layer, rule, grads):
        kernel = producer_kernel(layer, rule)
        if kernel is None:
            return None
        var, axis = kernel
        grad = grads.get(id(var))
        if grad is None:
            return np.zeros(var.shape[axis])
        return np.abs(_filters(var.numpy() * grad, axis).sum(1))


class Random(Importance):
    """Seeded random scores (a baseline)."""
    cacheable = False

    def group_scores(self, analysis, targets, data=None, loss=None, seed=0):
        rng = np.random.default_rng(seed)
        return {g: rng.random(analysis.groups[g].size) for g in targets}


class FunctionImportance(Importance):
    """A plain function of one producer's filters (filters, fan_in) -> scores."""

    def __init__(self, fn):
        self.fn = fn

    def filter_scores(self, filters):
        return self.fn(filters)

    def __repr__(self):
        return f"FunctionImportance({getattr(self.fn, '__name__', self.fn)!r})"


_REGISTRY = {}


def register(name, criterion, overwrite=False):
    """Register an Importance object (or class, or filter-scoring function)
    under `name` for `get(name)` and every `criterion=` argument.

    Example:
        >>> register("l1_again", L1(), overwrite=True)
        >>> get("l1_again")
        L1()
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"criterion name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"criterion {name!r} is already registered; pass overwrite=True")
    if isinstance(criterion, type) and issubclass(criterion, Importance):
        criterion = criterion()
    criterion = _as_importance(criterion, name)
    if criterion.name is None:
        criterion.name = name
    _REGISTRY[name] = criterion


def _as_importance(criterion, what):
    if isinstance(criterion, Importance):
        return criterion
    if callable(criterion) and not isinstance(criterion, type):
        return FunctionImportance(criterion)
    raise ValueError(f"unknown criterion {what!r}; choose one of {names()}, an "
                     "Importance object or a function of a layer's filters")


def get(criterion):
    """The Importance object for a name, an Importance object or a callable;
    ValueError naming the criterion otherwise (the one place criteria are checked).

    Example:
        >>> get("l2")
        L2()
    """
    if isinstance(criterion, str):
        try:
            return _REGISTRY[criterion]
        except KeyError:
            raise ValueError(f"unknown criterion {criterion!r}; choose one of {names()}, an "
                             "Importance object or a function of a layer's filters") from None
    return _as_importance(criterion, criterion)


def names():
    """The registered criterion names, built-ins first."""
    return tuple(_REGISTRY)


for _name, _crit in (("l1", L1()), ("l2", L2()), ("bn_scale", BNScale()), ("taylor", Taylor()),
                     ("random", Random())):
    register(_name, _crit)

CRITERIA = names()            # the built-in criteria (the registry may hold more)


def group_scores(analysis, targets, criterion="l1", data=None, loss="sparse_categorical_crossentropy",
                 seed=0, cache=False):
    """Importance of every unit of each target group: {group id: scores}.

    With cache=True (what `prune_compact` does with an analysis it is given)
    the scores of every prunable group are computed once per analysis and
    criterion and reused; criteria that need data or randomness are never cached.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import ChannelAnalysis
        >>> a = ChannelAnalysis(zoo.plain_cnn())
        >>> scores = group_scores(a, [0])
        >>> scores[0].shape
        (16,)
    """
    crit = get(criterion)
    targets = list(targets)
    if not (cache and crit.cacheable):
        return crit.group_scores(analysis, targets, data=data, loss=loss, seed=seed)
    key = ("scores", id(crit))
    cached = analysis.score_cache.get(key)
    if cached is None or cached[0] is not crit:
        every = [g.id for g in analysis.groups if g.prunable]
        cached = (crit, crit.group_scores(analysis, every, data=data, loss=loss, seed=seed))
        analysis.score_cache[key] = cached
    missing = [g for g in targets if g not in cached[1]]
    if missing:
        cached[1].update(crit.group_scores(analysis, missing, data=data, loss=loss, seed=seed))
    return {g: cached[1][g] for g in targets}
