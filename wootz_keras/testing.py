"""Helpers for checking that pruning is exact, shared by tests and benchmarks.

A freshly built network hides pruning mistakes: with beta = mean = bias = 0
a channel that is masked but not removed (or removed but not masked) maps
to zero anyway. `randomise` makes such mistakes visible.
"""

import keras
import numpy as np


def randomise(model, images=None, seed=0):
    """Non-trivial BatchNorm statistics / gamma / beta, biases and LayerScale
    gammas. Fresh ones (beta = mean = bias = 0, LayerScale 1e-6) map a zeroed
    channel to zero or next to nothing, which would hide a channel that is
    masked but not removed, or removed but not masked.

    With `images`, BatchNorm moving statistics are then calibrated on them
    (see `calibrate`).

    Example:
        >>> from wootz_keras import zoo
        >>> _ = randomise(zoo.plain_cnn(), seed=1)
    """
    rng = np.random.default_rng(seed)
    draw = {"gamma": lambda shape: rng.uniform(0.5, 1.5, shape),
            "beta": lambda shape: rng.normal(0.0, 0.5, shape),
            "moving_mean": lambda shape: rng.normal(0.0, 0.3, shape),
            "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
            "bias": lambda shape: rng.normal(0.0, 0.02, shape)}
    for layer in model._flatten_layers(include_self=False):
        kind = type(layer).__name__
        for v in layer.weights:
            if kind == "BatchNormalization" or v.name == "bias":
                v.assign(draw[v.name](v.shape).astype(v.dtype))
            elif kind == "LayerScale":
                v.assign(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
    if images is not None:
        calibrate(model, images)
    return model


def calibrate(model, images):
    """Set BatchNorm moving statistics to the batch statistics of `images`
    (one training-mode pass with momentum 0), as fine-tuning would: the
    untrained (or freshly pruned) network then neither vanishes nor explodes
    and its output depends on its input. Without it a pruned EfficientNet's
    logits are nearly the same for every image."""
    bns = [l for l in model._flatten_layers(include_self=False)
           if isinstance(l, keras.layers.BatchNormalization)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    try:
        model(images, training=True)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
    return model
