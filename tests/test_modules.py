"""Module detection: residual, inception, dense and plain-chain modules."""

import keras
import pytest

import wootz_keras as wz
from wootz_keras import zoo


def test_resnet_blocks_prune_inner_convs_only():
    mods = wz.find_modules(zoo.resnet_cifar(depth=14, width=8))
    assert [m.kind for m in mods] == ["residual"] * 6
    assert [m.prunable_layers for m in mods][:2] == [("stage1_block1_conv1",), ("stage1_block2_conv1",)]
    assert all(m.composable and m.output_layer.endswith("_add") for m in mods)
    # the residual streams are left out, with the reason
    reasons = dict(mods.unassigned)
    assert "residual stream" in reasons["stem_conv"]
    assert "model output" in reasons["predictions"]


def test_inception_prunes_reduce_convs_not_concat_inputs():
    mods = wz.find_modules(zoo.tiny_inception())
    assert [m.kind for m in mods] == ["inception", "inception"]
    assert set(mods[0].prunable_layers) == {"mixed1_b3x3_reduce_conv", "mixed1_b5x5_reduce_conv"}
    assert "mixed1_b1x1_conv" in dict(mods.unassigned)


def test_plain_chain_single_conv_modules():
    mods = wz.find_modules(zoo.plain_cnn())
    assert [m.prunable_layers for m in mods] == [("block1_conv",), ("block2_conv",),
                                                 ("block3_conv",), ("fc1",)]
    # only the last one keeps its output shape (its consumer is the unpruned classifier)
    assert [m.composable for m in mods] == [False, False, False, True]


@pytest.mark.parametrize("name,kinds,at_least", [
    ("ResNet50", {"residual"}, 16),
    ("MobileNetV2", {"residual", "conv"}, 17),
    ("DenseNet121", {"dense"}, 58),
    ("InceptionV3", {"inception", "conv"}, 11),
])
def test_keras_applications(name, kinds, at_least):
    model = getattr(keras.applications, name)(weights=None, input_shape=(96, 96, 3))
    mods = wz.find_modules(model)
    assert {m.kind for m in mods} == kinds
    assert len(mods) >= at_least
    # every module keeps its output shape after pruning at 0.5 everywhere
    rates = {p: 0.5 for m in mods if m.composable for p in m.prunable_layers}
    small = wz.prune_compact(model, rates=rates)
    for m in mods:
        if m.composable:
            assert small.get_layer(m.output_layer).output.shape == model.get_layer(m.output_layer).output.shape


def test_explicit_modules():
    model = zoo.plain_cnn()
    mods = wz.find_modules(model, modules=[["block1_conv", "block1_bn"], ["block3_conv"]])
    assert [m.prunable_layers for m in mods] == [("block1_conv",), ("block3_conv",)]
    assert dict(mods.unassigned)["block2_conv"] == "not in any explicit module"


def test_explicit_module_errors():
    model = zoo.plain_cnn()
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        wz.find_modules(model, modules=[["block1_conv", "nope"]])
    with pytest.raises(ValueError, match="no prunable layer"):
        wz.find_modules(model, modules=[["pool1"]])
    with pytest.raises(ValueError, match="empty"):
        wz.find_modules(model, modules=[[]])
