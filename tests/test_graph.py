"""LayerGraph (wootz_keras.graph.model_graph) and per-layer channel rules."""

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo
from wootz_keras.graph.channel_rules import channel_rule
from wootz_keras.graph.model_graph import LayerGraph


def names(graph):
    return [c.core.name for c in graph.calls]


def rule_of(model, name):
    g = LayerGraph(model)
    call = next(c for c in g.calls if c.core.name == name)
    assert channel_rule(call).role == call.rule.role or call.rule.role == "boundary"
    return call.rule           # the rule once the graph settled its tensors' channel axes


def test_functional_calls_in_topological_order():
    model = zoo.plain_cnn(width=4)
    g = LayerGraph(model)
    assert names(g) == [l.name for l in model.layers[1:]]
    pos = {c.core.name: i for i, c in enumerate(g.calls)}
    for call in g.calls:
        assert call.index == pos[call.core.name]
        for t in call.inputs:
            if t.producer is not None:
                assert pos[t.producer.core.name] < call.index
    assert len(g.inputs) == 1 and g.inputs[0].producer is None
    assert [t.producer.core.name for t in g.outputs] == ["predictions"]
    assert g.outputs[0].channels == 10
    assert g.find_layer("block2_conv") is model.get_layer("block2_conv")


def test_residual_graph_has_fan_out_and_fan_in():
    g = LayerGraph(zoo.resnet_cifar(depth=8, width=4))
    add = next(c for c in g.calls if c.core.name == "stage1_block1_add")
    assert sorted(t.producer.core.name for t in add.inputs) == ["stage1_block1_bn2", "stem_relu"]
    stem = next(c for c in g.calls if c.core.name == "stem_relu").outputs[0]
    assert sorted(c.core.name for c in stem.consumers) == ["stage1_block1_add", "stage1_block1_conv1"]


def test_sequential_model_graph():
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, name="c"),
                              L.Flatten(name="f"), L.Dense(2, name="d")])
    g = LayerGraph(model)
    assert names(g) == ["c", "f", "d"]
    assert g.inputs[0].shape == (None, 8, 8, 1)


def test_sequential_built_without_input_layer():
    model = keras.Sequential([L.Conv2D(4, 3, name="c"), L.Dense(2, name="d")])
    model.build((None, 8, 8, 1))
    assert names(LayerGraph(model)) == ["c", "d"]


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_nested_models_are_inlined(kind):
    if kind == "sequential":
        inner = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(4, 3, padding="same", name="ic"),
                                  L.ReLU(name="ir")], name="inner")
    else:
        i = keras.Input((8, 8, 4))
        inner = keras.Model(i, L.ReLU(name="ir")(L.Conv2D(4, 3, padding="same", name="ic")(i)),
                            name="inner")
    inp = keras.Input((8, 8, 1))
    y = L.Conv2D(4, 3, padding="same", name="before")(inp)
    y = L.Conv2D(2, 1, name="after")(inner(y))
    g = LayerGraph(keras.Model(inp, y))
    assert names(g) == ["before", "ic", "ir", "after"]      # no call for the nested model itself
    ic = next(c for c in g.calls if c.core.name == "ic")
    assert ic.inputs[0].producer.core.name == "before"      # wired to the outer tensor
    after = next(c for c in g.calls if c.core.name == "after")
    assert after.inputs[0].producer.core.name == "ir"
    assert [t.producer.core.name for t in g.nested_inputs[id(inner)]] == ["before"]


def test_nested_model_called_twice_gets_two_sets_of_calls():
    i = keras.Input((8, 8, 4))
    inner = keras.Model(i, L.Conv2D(4, 3, padding="same", name="ic")(i), name="inner")
    inp = keras.Input((8, 8, 4))
    y = L.Add()([inner(inp), inner(L.ReLU()(inp))])
    g = LayerGraph(keras.Model(inp, y))
    ic_calls = g.calls_of(inner.get_layer("ic"))
    assert len(ic_calls) == 2
    assert ic_calls[0].outputs[0] is not ic_calls[1].outputs[0]


def test_shared_layer_appears_once_per_call():
    inp = keras.Input((8, 8, 4))
    shared = L.Conv2D(4, 3, padding="same", name="shared")
    y = shared(shared(inp))
    g = LayerGraph(keras.Model(inp, y))
    assert names(g) == ["shared", "shared"]
    assert len(g.calls_of(shared)) == 2
    assert g.layers() == [shared]
    assert g.calls[1].inputs[0] is g.calls[0].outputs[0]


def test_multi_input_multi_output_graph():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    h = L.Concatenate(name="cat")([L.Dense(3, name="da")(a), L.Dense(3, name="db")(b)])
    model = keras.Model([a, b], [L.Dense(2, name="o1")(h), L.Dense(1, name="o2")(h)])
    g = LayerGraph(model)
    assert len(g.inputs) == 2
    assert [t.producer.core.name for t in g.outputs] == ["o1", "o2"]
    cat = next(c for c in g.calls if c.core.name == "cat")
    assert len(cat.inputs) == 2 and cat.outputs[0].channels == 6


def test_find_layer_unknown_name():
    with pytest.raises(ValueError, match="nope"):
        LayerGraph(zoo.plain_cnn(width=4)).find_layer("nope")


def test_graph_looks_through_pruning_wrappers():
    pruned = wz.prune_filters(zoo.plain_cnn(width=4), rate=0.5)
    g = LayerGraph(pruned)
    conv = next(c for c in g.calls if c.core.name == "block1_conv")
    assert isinstance(conv.layer, wz.PruneWrapper)
    assert isinstance(conv.core, L.Conv2D)


def test_subclassed_model_has_no_graph():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="subnet")
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subnet"):
        LayerGraph(net)


def test_unbuilt_sequential_has_no_graph():
    with pytest.raises(ValueError, match="seq_unbuilt"):
        LayerGraph(keras.Sequential([L.Dense(2)], name="seq_unbuilt"))


def test_not_a_model():
    with pytest.raises(ValueError, match="dense_layer"):
        LayerGraph(L.Dense(2, name="dense_layer"))


# -- channel rules ----------------------------------------------------------------------
def _model(*layers, shape=(8, 8, 4)):
    inp = keras.Input(shape)
    y = inp
    for layer in layers:
        y = layer(y)
    return keras.Model(inp, y)


ROLE_TABLE = [
    (lambda: L.Conv2D(4, 3, name="x"), "producer"),
    (lambda: L.Conv2DTranspose(4, 3, name="x"), "producer"),
    (lambda: L.SeparableConv2D(4, 3, name="x"), "producer"),
    (lambda: L.Dense(4, name="x"), "producer"),
    (lambda: L.DepthwiseConv2D(3, name="x"), "channelwise"),
    (lambda: L.BatchNormalization(name="x"), "channelwise"),
    (lambda: L.ReLU(name="x"), "passthrough"),
    (lambda: L.Activation("sigmoid", name="x"), "passthrough"),
    (lambda: L.MaxPooling2D(name="x"), "passthrough"),
    (lambda: L.Dropout(0.5, name="x"), "passthrough"),
    (lambda: L.ZeroPadding2D(name="x"), "passthrough"),
    (lambda: L.Flatten(name="x"), "flatten"),
    (lambda: L.Reshape((64, 4), name="x"), "passthrough"),
    (lambda: L.Reshape((8, 32), name="x"), "flatten"),          # folds pixels into features
    (lambda: L.Reshape((8, 8, 2, 2), name="x"), "boundary"),    # splits the channel axis
    (lambda: L.Conv2D(4, 3, groups=2, name="x"), "producer"),   # pruned evenly per group
    (lambda: L.Conv2D(8, 3, groups=4, name="x"), "channelwise"),   # one input per group
    (lambda: L.Softmax(name="x"), "boundary"),
    (lambda: L.Activation("softmax", name="x"), "boundary"),
    (lambda: L.LayerNormalization(name="x"), "channelwise"),   # statistics over kept channels
    (lambda: L.LayerNormalization(axis=(1, 2, 3), name="x"), "boundary"),
    (lambda: L.GroupNormalization(2, name="x"), "channelwise"),
    (lambda: L.Permute((3, 1, 2), name="x"), "passthrough"),    # moves the channel axis
    (lambda: L.LSTM(3, name="x"), "consumer"),
    (lambda: L.Bidirectional(L.GRU(3), name="x"), "consumer"),
]


def test_builtin_rule_roles():
    for make, role in ROLE_TABLE:
        layer = make()
        shape = (8, 4) if isinstance(layer, (L.LSTM, L.Bidirectional)) else (8, 8, 4)
        assert rule_of(_model(layer, shape=shape), "x").role == role, type(layer).__name__


def test_normalisation_over_another_axis_than_the_channels_is_a_boundary():
    model = _model(L.Conv2D(4, 1), L.BatchNormalization(axis=1, name="x"))
    rule = rule_of(model, "x")
    assert rule.role == "boundary" and "axis 1" in rule.reason and "axis 3" in rule.reason


def test_merge_rules():
    inp = keras.Input((8, 8, 4))
    a, b = L.Conv2D(4, 1)(inp), L.Conv2D(4, 1)(inp)
    one = L.Conv2D(1, 1)(inp)
    model = keras.Model(inp, [L.Add(name="add")([a, b]),
                              L.Concatenate(name="cat")([a, b]),
                              L.Concatenate(axis=1, name="cat_rows")([a, b]),
                              L.Multiply(name="bcast")([a, one])])
    assert rule_of(model, "add").role == "merge"
    assert rule_of(model, "cat").role == "concat"
    assert rule_of(model, "cat_rows").role == "merge"
    rule = rule_of(model, "bcast")
    assert rule.role == "boundary" and "broadcast" in rule.reason


def test_rule_weight_axes_match_real_kernels():
    """Each producer's out/in axes index the kernels' real output/input dims."""
    cases = [L.Conv2D(6, 3, name="x"), L.Conv1D(6, 3, name="x"), L.Dense(6, name="x"),
             L.Conv2DTranspose(6, 3, name="x"), L.SeparableConv2D(6, 3, depth_multiplier=2, name="x")]
    for layer in cases:
        shape = (8, 4) if isinstance(layer, (L.Conv1D, L.Dense)) else (8, 8, 4)
        rule = rule_of(_model(layer, shape=shape), "x")
        weights = {v.name: v.shape for v in layer.weights}
        for name, axis in rule.out_axes.items():
            assert weights[name][axis] == 6, (layer, name)
        for name, (axis, repeat) in rule.in_axes.items():
            assert weights[name][axis] == 4 * repeat, (layer, name)


def test_channel_rule_validates_role():
    with pytest.raises(ValueError, match="sideways"):
        wz.ChannelRule("sideways")
