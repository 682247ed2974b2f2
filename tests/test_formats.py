"""channels_first is pruned exactly like channels_last: a network and its
channels_first twin (same weights, input transposed) lose the same filters,
their stripped weights are identical, and their outputs agree; Flatten after
a channels_first tensor slices the Dense rows in either flattening order.
Anything that reads channels on the wrong axis is a boundary naming it.

Inputs are seeded normal noise (numerics only). Sizes avoid a TensorFlow CPU
bug: a channels_first convolution whose filter count equals its output's last
dimension adds its bias along that dimension (a wrong result from the op itself).
"""

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras.testing import randomise

CF, CL = "channels_first", "channels_last"


def twin(fmt, flatten_format=None):
    shape = (3, 9, 9) if fmt == CF else (9, 9, 3)
    axis = 1 if fmt == CF else -1
    inp = keras.Input(shape)
    y = L.Conv2D(12, 3, padding="same", data_format=fmt, name="c1")(inp)
    y = L.BatchNormalization(axis=axis, name="bn1")(y)
    y = L.ReLU()(y)
    y = L.DepthwiseConv2D(3, padding="same", data_format=fmt, name="dw")(y)
    y = L.SeparableConv2D(10, 3, padding="same", depth_multiplier=2, data_format=fmt,
                          name="sep")(y)
    y = L.BatchNormalization(axis=axis, name="bn2")(y)
    y = L.Conv2DTranspose(14, 3, data_format=fmt, name="up")(y)          # 11 x 11
    y = L.ZeroPadding2D(1, data_format=fmt)(y)
    y = L.Cropping2D(1, data_format=fmt)(y)
    y = L.MaxPooling2D(data_format=fmt)(y)                                # 5 x 5
    y = L.Conv2D(6, 1, data_format=fmt, name="c2")(y)
    y = L.Flatten(data_format=flatten_format or fmt, name="flat")(y)
    y = L.Dense(8, name="fc")(y)
    return keras.Model(inp, L.Dense(4, name="out")(y))


def test_channels_first_twin_prunes_identically():
    cl, cf = twin(CL), twin(CF)
    randomise(cl, seed=2)
    cf.set_weights(cl.get_weights())          # conv kernels have the same layout in both formats
    x = np.random.default_rng(0).normal(size=(4, 9, 9, 3)).astype("float32")
    xt = x.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(np.asarray(cf(xt)), np.asarray(cl(x)), atol=1e-4)
    groups_cl = [(g.producers, g.size, g.prunable) for g in wz.dependency_groups(cl)]
    groups_cf = [(g.producers, g.size, g.prunable) for g in wz.dependency_groups(cf)]
    assert groups_cf == groups_cl and sum(p for *_, p in groups_cf) == 5
    masked_cf = wz.prune_filters(cf, rate=0.5)
    small_cl, small_cf = wz.strip_pruning(wz.prune_filters(cl, rate=0.5)), wz.strip_pruning(masked_cf)
    for a, b in zip(small_cl.weights, small_cf.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert small_cf.get_layer("c1").kernel.shape == (3, 3, 3, 6)
    assert small_cf.get_layer("fc").kernel.shape == (5 * 5 * 3, 4)
    out_cf = np.asarray(small_cf(xt, training=False))
    np.testing.assert_allclose(out_cf, np.asarray(small_cl(x, training=False)), atol=1e-4)
    np.testing.assert_allclose(out_cf, np.asarray(masked_cf(xt, training=False)), atol=1e-4)
    assert masked_cf.get_layer("c1").axis == -3         # the mask broadcasts over axis 1


def test_flatten_of_channels_first_in_channels_last_order():
    """Flatten(channels_last) of an NCHW tensor: flat index i holds channel i // (H*W)."""
    model = twin(CF, flatten_format=CL)
    randomise(model, seed=3)
    pruned = wz.prune_filters(model, rates={"c2": 0.5})
    stripped = wz.strip_pruning(pruned)
    keep = pruned.get_layer("c2").mask.numpy() > 0.5
    rows = np.flatnonzero(np.repeat(keep, 25))
    full = model.get_layer("fc").kernel.numpy()
    np.testing.assert_array_equal(stripped.get_layer("fc").kernel.numpy(), full[rows])
    x = np.random.default_rng(1).normal(size=(4, 3, 9, 9)).astype("float32")
    np.testing.assert_allclose(np.asarray(stripped(x, training=False)),
                               np.asarray(pruned(x, training=False)), atol=1e-4)


def test_wrong_axis_is_a_boundary_naming_the_layer():
    inp = keras.Input((3, 9, 9))
    y = L.Conv2D(12, 3, data_format=CF, name="cf_conv")(inp)
    y = L.Conv2D(8, 1, name="reads_last_axis")(y)          # channels_last on an NCHW tensor
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(y)))
    with pytest.warns(UserWarning, match="reads_last_axis"):
        groups = wz.dependency_groups(model)
    g = next(g for g in groups if "cf_conv" in g.producers)
    assert not g.prunable and "reads_last_axis" in g.reason and "axis" in g.reason
    with pytest.warns(UserWarning):
        pruned = wz.prune_filters(model, rate=0.5)
    assert not isinstance(pruned.get_layer("cf_conv"), wz.PruneWrapper)


def test_permute_moves_the_channel_axis():
    inp = keras.Input((3, 9, 9))
    y = L.Conv2D(12, 3, data_format=CF, name="cf_conv")(inp)
    y = L.Permute((2, 3, 1), name="to_last")(y)
    y = L.Conv2D(6, 1, name="cl_conv")(y)
    model = keras.Model(inp, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(y)))
    randomise(model, seed=4)
    pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    assert stripped.get_layer("cl_conv").kernel.shape == (1, 1, 6, 3)
    x = np.random.default_rng(2).normal(size=(4, 3, 9, 9)).astype("float32")
    np.testing.assert_allclose(np.asarray(stripped(x)), np.asarray(pruned(x)), atol=1e-4)
