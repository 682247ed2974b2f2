"""count_params / count_flops (wootz_keras.graph.cost)."""

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo
from wootz_keras.graph import LayerGraph


def one_layer(layer, shape):
    inp = keras.Input(shape)
    return keras.Model(inp, layer(inp))


@pytest.mark.parametrize("make", [
    lambda: zoo.plain_cnn(width=8),
    lambda: zoo.resnet_cifar(depth=14, width=8),
    lambda: zoo.tiny_inception(width=8),
    lambda: zoo.tiny_mobilenet(width=8),
], ids=["plain_cnn", "resnet14", "tiny_inception", "tiny_mobilenet"])
def test_count_params_matches_keras_on_zoo(make):
    model = make()
    assert wz.count_params(model) == model.count_params()


def test_count_params_matches_keras_on_applications():
    for model in (keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                                 weights=None, classes=10),
                  keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25,
                                               weights=None, classes=10)):
        assert wz.count_params(model) == model.count_params(), model.name


def test_count_params_matches_keras_on_assorted_layers():
    inp = keras.Input((16, 16, 4))
    shared = L.Conv2D(4, 3, padding="same", name="shared")          # counted once
    y = shared(shared(inp))
    y = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(y)
    y = L.PReLU(name="prelu")(y)
    y = L.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(y)
    y = L.Conv2D(6, 1, groups=3, name="grouped")(y)
    y = L.Conv2DTranspose(5, 3, strides=2, name="up")(y)
    y = L.LayerNormalization(name="ln")(y)
    y = L.BatchNormalization(center=False, name="bn")(y)
    inner_in = keras.Input(y.shape[1:])
    inner = keras.Model(inner_in, L.Conv2D(3, 1, name="inner_conv")(inner_in), name="inner")
    y = L.Flatten()(inner(y))
    model = keras.Model(inp, L.Dense(7)(y))
    assert wz.count_params(model) == model.count_params()
    seq = keras.Sequential([keras.Input((8, 8)), L.Conv1D(4, 3), L.Flatten(), L.Dense(3)])
    assert wz.count_params(seq) == seq.count_params()


def test_count_flops_by_hand():
    # Conv2D 3x3, 2 -> 4 channels, 'same' on 8x8: 3*3*2*4 MACs per output pixel, 64 pixels
    assert wz.count_flops(one_layer(L.Conv2D(4, 3, padding="same"), (8, 8, 2))) == \
        2 * 3 * 3 * 2 * 4 * 64
    # strided valid conv: 8x8 -> 3x3 output
    assert wz.count_flops(one_layer(L.Conv2D(4, 3, strides=2), (8, 8, 2))) == \
        2 * 3 * 3 * 2 * 4 * 9
    # grouped: each output channel sees cin / groups inputs
    assert wz.count_flops(one_layer(L.Conv2D(4, 1, groups=2), (8, 8, 2))) == \
        2 * 1 * (2 // 2) * 4 * 64
    assert wz.count_flops(one_layer(L.Conv1D(4, 3), (10, 2))) == 2 * 3 * 2 * 4 * 8
    assert wz.count_flops(one_layer(L.Dense(5), (10,))) == 2 * 10 * 5
    # depthwise, multiplier 2: 3 -> 6 channels on a 6x6 output
    assert wz.count_flops(one_layer(L.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3))) == \
        2 * 3 * 3 * 6 * 36
    # separable: depthwise part + pointwise part
    assert wz.count_flops(one_layer(L.SeparableConv2D(4, 3), (8, 8, 3))) == \
        2 * (3 * 3 * 3 + 3 * 4) * 36
    # transposed: every input pixel scatters a k x k x cout patch for each input channel
    assert wz.count_flops(one_layer(L.Conv2DTranspose(4, 3, strides=2), (5, 5, 2))) == \
        2 * 3 * 3 * 2 * 4 * 25
    assert wz.count_flops(one_layer(L.MaxPooling2D(), (8, 8, 2))) == 0


def test_count_flops_of_plain_cnn():
    model = zoo.plain_cnn(width=8)
    macs = (3 * 3 * 1 * 8 * 28 * 28 + 3 * 3 * 8 * 16 * 14 * 14 + 3 * 3 * 16 * 32 * 7 * 7
            + 3 * 3 * 32 * 32 + 32 * 10)
    assert wz.count_flops(model) == 2 * macs


def _plain_cnn_params(w, classes=10):
    """plain_cnn's parameters in closed form (28x28 input, three 2x2 pools -> 3x3)."""
    convs = 9 * 1 * w + 9 * w * 2 * w + 9 * 2 * w * 4 * w      # no bias
    bns = 4 * (w + 2 * w + 4 * w)
    fc1 = 3 * 3 * 4 * w * 4 * w + 4 * w
    return convs + bns + fc1 + 4 * w * classes + classes


def test_stripped_params_match_formula():
    model = zoo.plain_cnn(width=8)
    assert model.count_params() == _plain_cnn_params(8)
    stripped = wz.strip_pruning(wz.prune_filters(model, rate=0.5))
    assert stripped.count_params() == wz.count_params(stripped) == _plain_cnn_params(4)
    flops = 2 * (3 * 3 * 1 * 4 * 28 * 28 + 3 * 3 * 4 * 8 * 14 * 14 + 3 * 3 * 8 * 16 * 7 * 7
                 + 3 * 3 * 16 * 16 + 16 * 10)
    assert wz.count_flops(stripped) == flops


def test_stripped_resnet_params_match_formula():
    model = zoo.resnet_cifar(depth=8, width=8)
    stripped = wz.strip_pruning(wz.prune_filters(model, rate=0.5))
    w = (4, 8, 16)               # every stage halves: stream and inner convs alike

    def conv_bn(k, cin, cout):
        return k * k * cin * cout + 4 * cout
    expect = conv_bn(3, 1, w[0])
    cin = w[0]
    for s, c in enumerate(w):
        expect += conv_bn(3, cin, c) + conv_bn(3, c, c)
        if s > 0:
            expect += conv_bn(1, cin, c)
        cin = c
    expect += w[2] * 10 + 10
    assert stripped.count_params() == wz.count_params(stripped) == expect


def test_channel_overrides_estimate_a_pruned_model():
    model = zoo.plain_cnn(width=8)
    graph = LayerGraph(model)
    halve = {}
    for call in graph.calls:
        cin, cout = call.inputs[0].channels, call.outputs[0].channels
        name = call.core.name
        new_in = cin if name == "block1_conv" else (cin // 2 if name != "predictions" else 16)
        new_out = cout if name == "predictions" else cout // 2
        if name == "fc1":
            new_in = cin // 2
        halve[id(call)] = (new_in, new_out)
    assert wz.count_params(graph, channels=halve) == _plain_cnn_params(4)
    stripped = wz.strip_pruning(wz.prune_filters(model, rate=0.5))
    assert wz.count_flops(graph, channels=halve) == wz.count_flops(stripped)


# -- one registration teaches slicing and counting ---------------------------------------------
class PixelMix(keras.layers.Layer):
    """A custom per-pixel linear layer (weights w: (cin, units), b: (units,))."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, x):
        return keras.ops.matmul(x, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_custom_layer_params_and_flops_come_from_its_channel_rule():
    wz.register_channel_rule(PixelMix, wz.ChannelRule(
        "producer", out_axes={"w": -1, "b": 0}, in_axes={"w": (0, 1)}, config_key="units"))
    inp = keras.Input((8, 8, 3))
    y = L.Conv2D(6, 3, padding="same", name="conv")(inp)
    y = PixelMix(10, name="mix")(y)
    model = keras.Model(inp, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(y)))
    assert wz.count_params(model) == model.count_params()
    mix_macs = 6 * 10 * 64
    assert wz.count_flops(model) == 2 * (3 * 3 * 3 * 6 * 64 + mix_macs + 10 * 2)
    small = wz.prune_compact(model, rate=0.5)
    assert wz.count_params(small) == small.count_params()
    assert small.get_layer("mix").w.shape == (3, 5)
    assert wz.count_flops(small) == 2 * (3 * 3 * 3 * 3 * 64 + 3 * 5 * 64 + 5 * 2)
    from wootz_keras.pruning import estimate_cost
    assert estimate_cost(model, rate=0.5) == (small.count_params(), wz.count_flops(small))


def test_rule_with_its_own_cost_functions():
    wz.register_channel_rule(PixelMix, lambda layer, call: wz.ChannelRule(
        "producer", out_axes={"w": -1, "b": 0}, in_axes={"w": (0, 1)}, config_key="units",
        params=lambda l, cin, cout: cin * cout + cout, macs=lambda c, cin, cout: 7 * cin * cout))
    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, PixelMix(5, name="mix")(inp))
    assert wz.count_params(model) == 3 * 5 + 5
    assert wz.count_flops(model) == 2 * 7 * 3 * 5


@pytest.mark.parametrize("make", [
    lambda: zoo.resnet_cifar(depth=8, width=8),
    lambda: zoo.tiny_inception(width=8),
    lambda: zoo.tiny_mobilenet(width=8),
    lambda: keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None,
                                                classes=10, alpha=0.75),
], ids=["resnet8", "tiny_inception", "tiny_mobilenet", "mobilenet_v3_small"])
def test_estimate_cost_matches_the_built_network(make):
    from wootz_keras.graph import ChannelAnalysis
    from wootz_keras.pruning import estimate_cost
    a = ChannelAnalysis(make())
    prunable = [g.id for g in a.groups if g.prunable]
    rng = np.random.default_rng(0)
    for trial in range(3):
        rates = {g: float(rng.choice([0.0, 0.3, 0.5, 0.7])) for g in prunable}
        small = wz.prune_compact(a, group_rates=rates)
        assert estimate_cost(a, group_rates=rates) == (small.count_params(), wz.count_flops(small))
