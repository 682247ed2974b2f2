"""Dependency groups (wootz_keras.graph.dependency): which channels are coupled,
which are fixed, boundaries (Lambda, unknown layers) and custom-layer opt-in."""

import warnings

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo


def by_producers(groups):
    return {frozenset(g.producers): g for g in groups}


def outputs_match(model, x, **kwargs):
    pruned = wz.prune_filters(model, **kwargs)
    stripped = wz.strip_pruning(pruned)
    a, b = np.asarray(pruned(x)), np.asarray(stripped(x))
    assert np.max(np.abs(a - b)) <= 1e-4
    return pruned, stripped


# -- zoo models ---------------------------------------------------------------------
def test_plain_cnn_groups():
    groups = wz.dependency_groups(zoo.plain_cnn(width=8))
    assert [(g.producers, g.size, g.prunable) for g in groups] == [
        (("block1_conv",), 8, True), (("block2_conv",), 16, True), (("block3_conv",), 32, True),
        (("fc1",), 32, True), (("predictions",), 10, False)]
    assert groups[0].layers == ("block1_conv", "block1_bn", "block2_conv")
    assert "model output" in groups[-1].reason


def test_resnet_residual_stream_is_one_group_per_stage():
    groups = by_producers(wz.dependency_groups(zoo.resnet_cifar(depth=14, width=4)))
    stage1 = groups[frozenset({"stem_conv", "stage1_block1_conv2", "stage1_block2_conv2"})]
    assert stage1.size == 4 and stage1.prunable
    stage2 = groups[frozenset({"stage2_block1_proj", "stage2_block1_conv2", "stage2_block2_conv2"})]
    assert stage2.size == 8
    assert "stage2_block1_proj_bn" in stage2.layers and "stage3_block1_proj" in stage2.layers
    assert groups[frozenset({"stage1_block2_conv1"})].size == 4


def test_inception_concat_keeps_branches_separate():
    groups = wz.dependency_groups(zoo.tiny_inception(width=8))
    prunable = [g for g in groups if g.prunable]
    assert all(len(g.producers) == 1 for g in prunable)
    sizes = {g.producers[0]: g.size for g in prunable}
    assert sizes["mixed1_b1x1_conv"] == 8 and sizes["mixed1_pool_proj_conv"] == 4


def test_mobilenet_depthwise_joins_its_input_group():
    groups = by_producers(wz.dependency_groups(zoo.tiny_mobilenet(width=8)))
    stem = groups[frozenset({"stem_conv"})]
    assert {"ds1_dw", "ds1_dw_bn", "ds1_pw_conv"} <= set(stem.layers)
    assert "ds1_dw" not in stem.producers


def test_group_repr_and_fields():
    g = wz.dependency_groups(zoo.plain_cnn(width=4))[0]
    assert "block1_conv" in repr(g) and "prunable" in repr(g)
    assert isinstance(g, wz.DependencyGroup) and g.id == 0


def test_single_channel_group_is_not_prunable():
    inp = keras.Input((8, 8, 1))
    y = L.Conv2D(1, 3, name="one")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(y)))
    (g,) = [g for g in wz.dependency_groups(model) if g.producers == ("one",)]
    assert not g.prunable and "single channel" in g.reason


def test_model_input_channels_are_fixed():
    inp = keras.Input((8, 8, 3))
    y = L.Add()([inp, L.Conv2D(3, 1, name="c")(inp)])
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(y)))
    (g,) = [g for g in wz.dependency_groups(model) if g.producers == ("c",)]
    assert not g.prunable and "input" in g.reason


# -- boundaries -------------------------------------------------------------------------
def _around(middle, x_shape=(28, 28, 1)):
    inp = keras.Input(x_shape)
    y = L.Conv2D(8, 3, padding="same", name="before")(inp)
    y = middle(y)
    y = L.Conv2D(8, 3, padding="same", name="after")(y)
    y = L.Conv2D(8, 3, name="last")(y)
    return keras.Model(inp, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(y)))


def test_lambda_is_a_boundary_with_a_warning(fashion_images):
    model = _around(L.Lambda(lambda t: 2.0 * t, name="double_it"))
    with pytest.warns(UserWarning, match="double_it"):
        groups = by_producers(wz.dependency_groups(model))
    assert not groups[frozenset({"before"})].prunable
    assert "double_it" in groups[frozenset({"before"})].reason
    assert groups[frozenset({"after"})].prunable          # its own filters can still go
    with pytest.warns(UserWarning, match="double_it"):
        pruned = wz.prune_filters(model, rate=0.5)
    assert not isinstance(pruned.get_layer("before"), wz.PruneWrapper)
    with pytest.warns(UserWarning, match="double_it"):
        stripped = wz.strip_pruning(pruned)
    assert stripped.get_layer("before").kernel.shape == (3, 3, 1, 8)   # into the Lambda: kept
    assert stripped.get_layer("after").kernel.shape == (3, 3, 8, 4)    # out of it: kept
    assert stripped.get_layer("last").kernel.shape == (3, 3, 4, 4)
    np.testing.assert_allclose(np.asarray(pruned(fashion_images)),
                               np.asarray(stripped(fashion_images)), atol=1e-4)


class Opaque(keras.layers.Layer):
    """A custom layer the engine knows nothing about and cannot open (it
    holds a weight of its own, outside any sub-layer)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="ones", name="w")

    def call(self, x):
        return x * self.w


def test_unknown_custom_layer_is_a_boundary_with_a_warning():
    model = _around(Opaque(name="mystery"))
    with pytest.warns(UserWarning, match="mystery"):
        groups = by_producers(wz.dependency_groups(model))
    assert not groups[frozenset({"before"})].prunable
    assert "register_channel_rule" in groups[frozenset({"before"})].reason
    assert "weights of its own" in groups[frozenset({"before"})].reason
    with pytest.warns(UserWarning, match="mystery"):
        pruned = wz.prune_filters(model, rate=0.5)
    assert not isinstance(pruned.get_layer("before"), wz.PruneWrapper)
    assert isinstance(pruned.get_layer("after"), wz.PruneWrapper)
    assert pruned.get_layer("after").mask.numpy().sum() == 4


def test_known_layers_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wz.dependency_groups(zoo.resnet_cifar(depth=8, width=4))
        wz.dependency_groups(zoo.tiny_mobilenet(width=4))


def test_softmax_over_channels_is_a_boundary(fashion_images):
    model = _around(L.Activation("softmax", name="attn"))
    groups = by_producers(wz.dependency_groups(model))
    assert not groups[frozenset({"before"})].prunable
    outputs_match(model, fashion_images, rate=0.5)


def test_producer_with_softmax_activation_keeps_its_outputs(fashion_images):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="before")(inp)
    y = L.Conv2D(8, 1, activation="softmax", name="gate")(y)
    y = L.Conv2D(8, 3, name="last")(y)
    model = keras.Model(inp, L.Dense(10)(L.GlobalAveragePooling2D()(y)))
    groups = by_producers(wz.dependency_groups(model))
    assert groups[frozenset({"before"})].prunable          # its input side is fine
    assert not groups[frozenset({"gate"})].prunable
    assert "softmax" in groups[frozenset({"gate"})].reason
    outputs_match(model, fashion_images, rate=0.5)


def test_shared_masked_layer_on_different_widths_is_fixed():
    inp = keras.Input((28, 28, 1))
    sig = L.Activation("sigmoid", name="shared_sig")
    a = sig(L.Conv2D(8, 3, name="a")(inp))
    b = sig(L.Conv2D(4, 3, name="b")(inp))
    y = L.Concatenate()([a, b])
    model = keras.Model(inp, L.Dense(10)(L.GlobalAveragePooling2D()(y)))
    groups = by_producers(wz.dependency_groups(model))
    assert not groups[frozenset({"a"})].prunable
    assert "shared_sig" in groups[frozenset({"a"})].reason
    pruned = wz.prune_filters(model, rate=0.5)       # nothing to do there, and no crash
    assert not wz.is_pruned(pruned)


# -- custom layers opting in --------------------------------------------------------------
class ChannelScale(keras.layers.Layer):
    """y = x * s, one learnable scale per channel (like a BN without statistics)."""

    def build(self, input_shape):
        self.s = self.add_weight(shape=(input_shape[-1],), initializer="random_uniform",
                                 name="s")

    def call(self, x):
        return x * self.s + 0.1 * self.s     # f(0) != 0: needs masking too

    def get_channel_rule(self):
        return wz.ChannelRule("channelwise", out_axes={"s": 0})


class PixelLinear(keras.layers.Layer):
    """A Dense-like producer with its own weight names (no 'kernel')."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="ones", name="b")

    def call(self, x):
        return keras.ops.matmul(x, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def test_custom_layer_with_get_channel_rule(fashion_images):
    model = _around(ChannelScale(name="scale"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = by_producers(wz.dependency_groups(model))
    g = groups[frozenset({"before"})]
    assert g.prunable and "scale" in g.layers
    pruned, stripped = outputs_match(model, fashion_images, rate=0.5)
    assert isinstance(pruned.get_layer("scale"), wz.PruneWrapper)
    assert stripped.get_layer("scale").s.shape == (4,)
    keep = pruned.get_layer("before").mask.numpy() > 0.5
    np.testing.assert_array_equal(stripped.get_layer("scale").s.numpy(),
                                  model.get_layer("scale").s.numpy()[keep])


def test_custom_layers_with_register_channel_rule(fashion_images):
    wz.register_channel_rule(Doubler, wz.ChannelRule("passthrough"))
    wz.register_channel_rule(
        PixelLinear, lambda layer, call: wz.ChannelRule(
            "producer", out_axes={"w": -1, "b": 0}, in_axes={"w": (0, 1)}, config_key="units"))
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="before")(inp)
    y = Doubler(name="dbl")(y)
    y = PixelLinear(6, name="pix")(y)
    y = L.Conv2D(8, 3, name="last")(y)
    model = keras.Model(inp, L.Dense(10)(L.GlobalAveragePooling2D()(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = by_producers(wz.dependency_groups(model))
    assert groups[frozenset({"before"})].prunable and groups[frozenset({"pix"})].prunable
    pruned, stripped = outputs_match(model, fashion_images, rate=0.5)
    assert stripped.get_layer("pix").w.shape == (4, 3)
    assert stripped.get_layer("pix").b.shape == (3,)
    assert stripped.get_layer("pix").units == 3
    assert stripped.get_layer("last").kernel.shape == (3, 3, 3, 4)
    # l1 on a custom weight name: the filter with the smallest |w| column goes
    w = model.get_layer("pix").w.numpy()
    w[:, 2] *= 1e-3
    model.get_layer("pix").w.assign(w)
    assert wz.prune_filters(model, rates={"pix": 0.2}).get_layer("pix").mask.numpy()[2] == 0
