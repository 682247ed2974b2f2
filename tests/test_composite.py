"""Composite custom layers: a layer whose call() is made of other Keras
layers and keras.ops (how many model libraries build their stems, blocks
and stages) is opened into its sub-graph and pruned inside, with parity. A
layer that cannot be opened stays a boundary with a warning naming it.

Parity inputs are real Fashion-MNIST images; BatchNorm statistics and biases
are randomised so a wrongly kept or removed channel shows.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import wootz_keras as wz
from wootz_keras.testing import randomise

TOL = 1e-4


class Stem(keras.layers.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = L.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")
        self.bn = L.BatchNormalization(name="bn")

    def call(self, x, training=None):
        return ops.relu(self.bn(self.conv(x), training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class Residual(keras.layers.Layer):
    """conv-bn-relu-conv-bn + shortcut (a projection when the width changes)."""

    def __init__(self, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = filters, stride
        self.conv1 = L.Conv2D(filters, 3, strides=stride, padding="same", name="conv1")
        self.bn1 = L.BatchNormalization(name="bn1")
        self.conv2 = L.Conv2D(filters, 3, padding="same", name="conv2")
        self.bn2 = L.BatchNormalization(name="bn2")
        self.proj = None

    def build(self, input_shape):
        if input_shape[-1] != self.filters or self.stride != 1:
            self.proj = L.Conv2D(self.filters, 1, strides=self.stride, name="proj")

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)
        shortcut = x if self.proj is None else self.proj(x)
        return ops.relu(y + shortcut)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}


class Stage(keras.layers.Layer):
    """A stage of residual blocks: a composite of composites."""

    def __init__(self, filters, blocks, stride, **kwargs):
        super().__init__(**kwargs)
        self.cfg = (filters, blocks, stride)
        self.blocks = [Residual(filters, stride if i == 0 else 1, name=f"block{i}")
                       for i in range(blocks)]

    def call(self, x, training=None):
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def get_config(self):
        f, b, s = self.cfg
        return {**super().get_config(), "filters": f, "blocks": b, "stride": s}


def backbone():
    inp = keras.Input((28, 28, 1))
    y = Stem(8, name="stem")(inp)
    y = Stage(8, 2, 1, name="stage1")(y)
    y = Stage(16, 1, 2, name="stage2")(y)
    y = L.GlobalAveragePooling2D()(y)
    return keras.Model(inp, L.Dense(10, name="head")(y))


def compare(model, x, rate=0.5):
    randomise(model, x[:16])
    pruned = wz.prune_filters(model, rate=rate)
    stripped = wz.strip_pruning(pruned)
    a, b = np.asarray(pruned(x, training=False)), np.asarray(stripped(x, training=False))
    full = np.asarray(model(x, training=False))
    scale = np.abs(a).max()
    assert np.abs(a - b).max() <= TOL * scale
    assert np.abs(full - a).max() > 100 * TOL * scale
    return pruned, stripped


def test_backbone_of_composite_layers_prunes_inside(fashion_images):
    model = backbone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # nothing is a boundary
        groups = wz.dependency_groups(model)
    prunable = [g for g in groups if g.prunable]
    # stage 1's stream (stem + both blocks' conv2), each block's conv1, stage 2's stream
    # (projection + conv2) and its conv1
    assert len(prunable) == 5, groups
    names = {n for g in groups for n in g.producers}
    assert "stage1_block0_conv1" in names and "stage1_block1_conv1" in names   # unique names
    stream = next(g for g in groups if "stem_conv" in g.producers)
    assert {"stage1_block0_conv2", "stage1_block1_conv2"} <= set(stream.producers)
    pruned, stripped = compare(model, fashion_images)
    assert stripped.get_layer("stage1_block0_conv1").kernel.shape == (3, 3, 4, 4)
    assert stripped.get_layer("stage2_block0_proj").kernel.shape == (1, 1, 4, 8)
    assert stripped.get_layer("head").kernel.shape == (8, 10)
    assert stripped.count_params() < 0.3 * model.count_params()
    # the stripped model is a plain Functional model: saves and reloads
    assert not any(isinstance(l, (Stem, Stage, Residual)) for l in stripped.layers)


def test_rates_by_name_inside_a_composite(fashion_images):
    model = backbone()
    randomise(model, fashion_images[:16])
    small = wz.prune_compact(model, rates={"stage1_block1_conv1": 0.5})
    assert small.get_layer("stage1_block1_conv1").filters == 4
    assert small.get_layer("stage1_block0_conv1").filters == 8
    x = fashion_images
    masked = wz.prune_filters(model, rates={"stage1_block1_conv1": 0.5})
    np.testing.assert_allclose(np.asarray(small(x, training=False)),
                               np.asarray(masked(x, training=False)), atol=1e-4)


def test_composite_in_sequential_and_a_model_saved_after(fashion_images, tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), Stem(8, name="stem"),
                              L.Conv2D(8, 3, name="after"), L.GlobalMaxPooling2D(),
                              L.Dense(10, name="head")], name="seq_with_composite")
    pruned, stripped = compare(model, fashion_images)
    assert stripped.get_layer("stem_conv").filters == 4 and stripped.name == "seq_with_composite"
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(again(fashion_images)), np.asarray(pruned(fashion_images)),
                               atol=1e-6)


class OwnWeights(keras.layers.Layer):
    """Not openable: a weight of its own, used by keras.ops."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


class PythonControlFlow(keras.layers.Layer):
    """Not openable: call() needs concrete values."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = L.Conv2D(8, 1)

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        if float(ops.convert_to_numpy(ops.max(x))) > 0:
            return self.conv(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (8,)


@pytest.mark.parametrize("make, why", [(lambda: OwnWeights(name="own"), "weights of its own"),
                                       (lambda: PythonControlFlow(name="python_if"), "opened")])
def test_unopenable_composite_stays_a_boundary_naming_it(fashion_images, make, why):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="before")(inp)
    layer = make()
    y = L.Conv2D(8, 3, name="after")(layer(y))
    model = keras.Model(inp, L.Dense(10)(L.GlobalAveragePooling2D()(y)))
    with pytest.warns(UserWarning, match=layer.name):
        groups = wz.dependency_groups(model)
    before = next(g for g in groups if "before" in g.producers)
    assert not before.prunable and why in before.reason and layer.name in before.reason
    with pytest.warns(UserWarning):
        pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    x = fashion_images
    np.testing.assert_allclose(np.asarray(pruned(x)), np.asarray(stripped(x)), atol=1e-4)
