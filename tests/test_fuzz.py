"""Fuzz: random small graphs from the supported layer set (convolutions of
every kind, branches and merges, residuals, concatenation, pooling and
padding, normalisation, recurrent heads, nested models and composite layers,
channels_last and channels_first), pruned at random rates. Every graph must
prune with parity (masked == stripped), keep its output shapes, count its
parameters like Keras, and match `estimate_cost`.

Seeded: WOOTZ_FUZZ_GRAPHS graphs (default 200) from WOOTZ_FUZZ_SEED (default
0). Inputs are seeded normal noise: this checks numerics, not accuracy.
Spatial sizes keep the last dimension above every channel count, away from
a TensorFlow CPU bug (a channels_first convolution whose filter count equals
its output's last dimension adds its bias along that dimension).
"""

import inspect
import os

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import wootz_keras as wz
from wootz_keras.pruning import estimate_cost
from wootz_keras.testing import randomise

GRAPHS = int(os.environ.get("WOOTZ_FUZZ_GRAPHS", "200"))
SEED = int(os.environ.get("WOOTZ_FUZZ_SEED", "0"))
CF, CL = "channels_first", "channels_last"


class FuzzBlock(keras.layers.Layer):
    """A composite layer: conv -> BN -> relu (+ the input when widths match)."""

    def __init__(self, filters, data_format, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.data_format = filters, data_format
        self.conv = L.Conv1D(filters, 3, padding="same", data_format=data_format, name="conv")
        self.bn = L.BatchNormalization(axis=1 if data_format == CF else -1, name="bn")

    def call(self, x, training=None):
        y = ops.relu(self.bn(self.conv(x), training=training))
        channels = x.shape[1 if self.data_format == CF else -1]
        return y + x if channels == self.filters else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "data_format": self.data_format}


class Builder:
    """Random 1D or 2D graphs; `self.c` is the current channel count."""

    def __init__(self, rng):
        self.rng = rng
        self.fmt = CF if rng.random() < 0.5 else CL
        self.dim = int(rng.choice([1, 2]))
        self.axis = 1 if self.fmt == CF else -1
        self.n = 0

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def layer(self, kind, *args, **kwargs):
        if kind == "ConvT":
            cls = getattr(L, f"Conv{self.dim}DTranspose")
        else:
            cls = getattr(L, f"{kind}{self.dim}D")
        if "data_format" in inspect.signature(cls.__init__).parameters:
            kwargs["data_format"] = self.fmt
        return cls(*args, **kwargs)

    def formatted(self, kind):
        """Whether `kind` layers of this dimension know about data_format."""
        return self.fmt == CL or self.dim > 1 or kind not in ("pad", "noise")

    def channels(self, t):
        return t.shape[self.axis]

    def conv(self, t, filters=None, k=None):
        filters = filters or int(self.rng.choice([4, 6, 8, 10]))
        k = k or int(self.rng.choice([1, 3]))
        y = self.layer("Conv", filters, k, padding="same", name=self.name("conv"))(t)
        r = self.rng.random()
        if r < 0.4:
            y = L.BatchNormalization(axis=self.axis, name=self.name("bn"))(y)
        act = self.rng.choice(["relu", "sigmoid", "swish", "none"])
        return y if act == "none" else L.Activation(act, name=self.name("act"))(y)

    def step(self, t, depth):
        rng = self.rng
        c = self.channels(t)
        kind = rng.choice(["conv", "conv", "branch", "residual", "concat", "depthwise",
                           "separable", "grouped", "transpose", "pool", "pad", "noise", "norm",
                           "nested", "composite"])
        if kind == "conv":
            return self.conv(t)
        if kind in ("branch", "residual") or (kind == "concat" and depth > 2):
            f = c if kind == "residual" else int(rng.choice([4, 6, 8]))
            a = self.conv(t, f)
            b = t if kind == "residual" else self.conv(t, f)
            merge = rng.choice([L.Add, L.Multiply, L.Maximum, L.Subtract, L.Average])
            return merge(name=self.name("merge"))([a, b])
        if kind == "concat":
            parts = [self.conv(t) for _ in range(int(rng.integers(2, 4)))]
            return L.Concatenate(axis=self.axis, name=self.name("cat"))(parts)
        if kind == "depthwise":
            m = int(rng.choice([1, 2]))
            return self.layer("DepthwiseConv", 3, depth_multiplier=m, padding="same",
                              name=self.name("dw"))(t)
        if kind == "separable":
            return self.layer("SeparableConv", int(rng.choice([4, 8])), 3, padding="same",
                              depth_multiplier=int(rng.choice([1, 2])), name=self.name("sep"))(t)
        if kind == "grouped" and c % 2 == 0:
            return self.layer("Conv", 8, 3, padding="same", groups=2, name=self.name("gconv"))(t)
        if kind == "transpose":
            return self.layer("ConvT", int(rng.choice([4, 6])), 3, padding="same",
                              name=self.name("tconv"))(t)
        if kind == "pool" and t.shape[-1 if self.fmt == CL else 2 + self.dim - 1] > 40:
            pool = rng.choice(["MaxPooling", "AveragePooling"])
            return self.layer(pool, 2, name=self.name("pool"))(t)
        if not self.formatted(kind):
            return self.conv(t)
        if kind == "pad":
            t = self.layer("ZeroPadding", 1, name=self.name("pad"))(t)
            return self.layer("Cropping", 1, name=self.name("crop"))(t)
        if kind == "noise":
            return rng.choice([lambda: L.Dropout(0.2), lambda: L.GaussianNoise(0.1),
                               lambda: self.layer("SpatialDropout", 0.2)])()(t)
        if kind == "norm":
            if c % 2 == 0 and rng.random() < 0.5:
                return L.GroupNormalization(2, axis=self.axis, name=self.name("gn"))(t)
            return L.LayerNormalization(axis=self.axis, name=self.name("ln"))(t)
        if kind == "nested" and depth < 2:
            inner_in = keras.Input(t.shape[1:])
            inner_out = self.step(self.conv(inner_in), depth + 1)
            return keras.Model(inner_in, inner_out, name=self.name("nested"))(t)
        if kind == "composite" and self.dim == 1:
            return FuzzBlock(int(rng.choice([c, 8])), self.fmt, name=self.name("block"))(t)
        return self.conv(t)

    def model(self):
        rng = self.rng
        spatial = (88,) if self.dim == 1 else (5, 88)
        shape = (3,) + spatial if self.fmt == CF else spatial + (3,)
        inp = keras.Input(shape)
        y = self.conv(inp, 8)
        for _ in range(int(rng.integers(2, 6))):
            y = self.step(y, 0)
        head = rng.choice(["gap", "flatten", "rnn"] if self.fmt == CL and self.dim == 1
                          else ["gap", "flatten"])
        if head == "gap":
            y = getattr(L, f"GlobalAveragePooling{self.dim}D")(data_format=self.fmt)(y)
        elif head == "flatten":
            y = L.Flatten(data_format=rng.choice([CF, CL]))(y)
        else:
            y = L.GRU(4, name="rnn")(y)
        return keras.Model(inp, L.Dense(3, name="head")(L.Dense(6, name="fc")(y)))


@pytest.mark.parametrize("index", range(GRAPHS))
def test_random_graph_prunes_with_parity(index):
    rng = np.random.default_rng([SEED, index])
    model = Builder(rng).model()
    randomise(model, seed=index)
    x = rng.normal(size=(2,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    rate = float(rng.choice([0.2, 0.5, 0.7]))
    round_to = int(rng.choice([1, 1, 2]))
    pruned = wz.prune_filters(model, rate=rate, round_to=round_to)
    stripped = wz.strip_pruning(pruned)
    a = np.asarray(pruned(x, training=False), np.float64)
    b = np.asarray(stripped(x, training=False), np.float64)
    assert a.shape == b.shape == (2, 3)
    scale = max(np.abs(a).max(), 1e-6)
    assert np.abs(a - b).max() <= 1e-4 * scale, (index, np.abs(a - b).max() / scale)
    assert wz.count_params(stripped) == stripped.count_params() <= model.count_params()
    assert estimate_cost(model, rate=rate, round_to=round_to) == \
        (stripped.count_params(), wz.count_flops(stripped))
