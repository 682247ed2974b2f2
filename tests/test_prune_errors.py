"""Bad input to prune_filters: each is a ValueError whose message names the culprit."""

import re

import keras
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo


@pytest.fixture(scope="module")
def model():
    return zoo.plain_cnn(width=4)


def test_rate_outside_unit_interval(model):
    for rate in (1.0, -0.1, "0.5", 1.5, True, float("nan"), [0.5]):
        with pytest.raises(ValueError, match=r"rate .*" + re.escape(repr(rate))):
            wz.prune_filters(model, rate=rate)


def test_bad_rate_in_rates(model):
    with pytest.raises(ValueError, match=r"rates\['block2_conv'\].*1\.5"):
        wz.prune_filters(model, rates={"block2_conv": 1.5})


def test_rates_must_be_a_dict(model):
    with pytest.raises(ValueError, match="rates"):
        wz.prune_filters(model, rates=0.5)


def test_no_rate_at_all(model):
    with pytest.raises(ValueError, match="rate"):
        wz.prune_filters(model)


def test_unknown_layer_name(model):
    with pytest.raises(ValueError, match="'no_such_layer'"):
        wz.prune_filters(model, rates={"no_such_layer": 0.5})


@pytest.mark.parametrize("name, why", [
    ("predictions", "model output"),          # the output Dense
    ("block1_bn", "no filters of its own"),    # a BatchNorm: name its conv instead
    ("flatten", "flatten"),
    ("block1_relu", "passthrough"),
])
def test_non_prunable_layer_named_explicitly(model, name, why):
    with pytest.raises(ValueError, match=f"'{name}'.*{why}"):
        wz.prune_filters(model, rates={name: 0.5})


def test_layer_feeding_a_lambda_named_explicitly():
    inp = keras.Input((8, 8, 1))
    y = L.Conv2D(4, 3, name="into_lambda")(inp)
    y = L.Lambda(lambda t: t * 2.0, name="opaque")(y)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(L.Conv2D(4, 3)(y))))
    with pytest.warns(UserWarning, match="opaque"):
        with pytest.raises(ValueError, match="'into_lambda'.*Lambda.*'opaque'"):
            wz.prune_filters(model, rates={"into_lambda": 0.5})


def test_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="my_subclassed_net")
            self.conv = L.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="'my_subclassed_net'.*subclassed"):
        wz.prune_filters(net, rate=0.5)


def test_unbuilt_sequential():
    seq = keras.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(2)], name="not_built_yet")
    with pytest.raises(ValueError, match="'not_built_yet'.*Input"):
        wz.prune_filters(seq, rate=0.5)


def test_conflicting_rates_in_one_group():
    model = zoo.resnet_cifar(depth=8, width=4)
    with pytest.raises(ValueError, match="'stem_conv'.*'stage1_block1_conv2'"):
        wz.prune_filters(model, rates={"stem_conv": 0.5, "stage1_block1_conv2": 0.25})
    # the same rate twice is fine
    wz.prune_filters(model, rates={"stem_conv": 0.5, "stage1_block1_conv2": 0.5})


def test_already_pruned_model(model):
    pruned = wz.prune_filters(model, rate=0.5)
    with pytest.raises(ValueError, match="'plain_cnn'.*strip_pruning"):
        wz.prune_filters(pruned, rate=0.5)


def test_bad_criterion(model):
    for criterion in ("l3", "L1", None):
        with pytest.raises(ValueError, match=re.escape(repr(criterion))):
            wz.prune_filters(model, rate=0.5, criterion=criterion)


def test_bad_criterion_with_a_schedule(model):
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, 10)
    with pytest.raises(ValueError, match="'magnitude'"):
        wz.prune_filters(model, rate=0.5, criterion="magnitude", schedule=schedule)


def test_taylor_without_data(model):
    with pytest.raises(ValueError, match="taylor.*data"):
        wz.prune_filters(model, rate=0.5, criterion="taylor")


def test_bn_scale_without_batchnorm():
    inp = keras.Input((8, 8, 1))
    y = L.Conv2D(4, 3, name="conv_without_bn")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(y)))
    with pytest.raises(ValueError, match="bn_scale.*'conv_without_bn'"):
        wz.prune_filters(model, rate=0.5, criterion="bn_scale")


def test_bad_round_to(model):
    for round_to in (0, -2, 2.5):
        with pytest.raises(ValueError, match=f"round_to.*{re.escape(repr(round_to))}"):
            wz.prune_filters(model, rate=0.5, round_to=round_to)
