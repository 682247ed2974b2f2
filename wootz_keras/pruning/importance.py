"""Filter importance criteria, aggregated over each dependency group."""

import numpy as np

CRITERIA = ("l1", "l2", "bn_scale", "taylor", "random")


def _per_filter(weight, axis, fn):
    w = np.moveaxis(np.asarray(weight), axis, 0)
    return fn(w.reshape(w.shape[0], -1))


def _weights_by_name(layer):
    return {v.name: v for v in layer.weights}


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


def _taylor_grads(model, data, loss):
    import tensorflow as tf
    import keras
    if data is None:
        raise ValueError("criterion 'taylor' needs data=(images, labels): a batch of real data")
    x, y = data
    loss_fn = keras.losses.get(loss)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(loss_fn(y, model(x, training=False)))
    variables = list(model.trainable_variables)
    grads = tape.gradient(value, [v.value for v in variables])
    return {id(v): (None if g is None else g.numpy()) for v, g in zip(variables, grads)}


def group_scores(analysis, targets, criterion="l1", data=None, loss="sparse_categorical_crossentropy",
                 seed=0):
    """Importance of every unit of each target group: {group id: scores}.

    Units with the lowest score are pruned first. l1 / l2 / taylor score the
    filters of every producer in the group (summed); bn_scale sums |gamma|
    of the group's BatchNormalization layers; random is seeded.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import ChannelAnalysis
        >>> a = ChannelAnalysis(zoo.plain_cnn())
        >>> scores = group_scores(a, [0])
        >>> scores[0].shape
        (16,)
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")
    scores = {g: np.zeros(analysis.groups[g].size) for g in targets}
    if criterion == "random":
        rng = np.random.default_rng(seed)
        return {g: rng.random(s.shape) for g, s in scores.items()}
    grads = _taylor_grads(analysis.graph.model, data, loss) if criterion == "taylor" else None
    touched = {g: False for g in targets}
    seen = set()
    for call in analysis.graph.calls:
        core, rule = call.core, analysis.rules[id(call)]
        if id(core) in seen or ("out", id(core)) not in analysis.spaces.base:
            continue
        seen.add(id(core))
        per_channel = _channel_scores(core, rule, criterion, grads)
        if per_channel is None:
            continue
        gids, pos = analysis.element_index(("out", id(core)))
        for g in targets:
            sel = gids == g
            if sel.any():
                np.add.at(scores[g], pos[sel], per_channel[sel])
                touched[g] = True
    missing = [analysis.groups[g].producers[0] for g, ok in touched.items() if not ok]
    if missing:
        raise ValueError(f"criterion {criterion!r} has nothing to score for the group of layer "
                         f"{missing[0]!r} (bn_scale needs a BatchNormalization on those channels)")
    return scores


def _channel_scores(layer, rule, criterion, grads):
    weights = _weights_by_name(layer)
    if criterion == "bn_scale":
        if type(layer).__name__ == "BatchNormalization" and "gamma" in weights:
            return np.abs(np.asarray(weights["gamma"].numpy()))
        return None
    if rule.role != "producer":
        return None
    name = _kernel_name(rule, weights)
    if name is None:
        return None
    var = weights[name]
    axis = rule.out_axes[name]
    if criterion == "l1":
        return _per_filter(var.numpy(), axis, lambda w: np.abs(w).sum(1))
    if criterion == "l2":
        return _per_filter(var.numpy(), axis, lambda w: np.sqrt((w * w).sum(1)))
    grad = grads.get(id(var))
    if grad is None:
        return np.zeros(var.shape[axis])
    return _per_filter(var.numpy() * grad, axis, lambda w: np.abs(w.sum(1)))
