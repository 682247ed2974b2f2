"""keras.applications architectures prune and strip with parity (a fast subset
of benchmarks/prunability_sweep.py), plus the graph patterns they need:
keras.ops Operation nodes (MobileNetV3's `x + 3.0`), depthwise grouped
Conv2D and LayerScale (ConvNeXt), CustomScaleLayer (InceptionResNetV2), and
wrappers that skip a redundant multiply.

BatchNorm statistics, gamma / beta and biases are randomised (statistics
from real images), so a channel that is masked but not removed, or removed
but not masked, shows in the output.
"""

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import wootz_keras as wz
from wootz_keras.data import representative_images
from wootz_keras.testing import calibrate, randomise

TOL = 1e-4


def images_for(x, size, count=8, seed=0):
    return representative_images(x, count, size=(size, size), channels=3, seed=seed) * 255.0


def prune_and_compare(model, x, rate=0.5, calibration=None):
    """(pruned, stripped, relative parity, relative pruning effect); with
    `calibration` images the masked model's BN statistics are recalibrated
    before stripping (strip_pruning must carry them)."""
    pruned = wz.prune_filters(model, rate=rate)
    if calibration is not None:
        calibrate(pruned, calibration)
    stripped = wz.strip_pruning(pruned)
    full = np.asarray(model(x, training=False), np.float64)
    a = np.asarray(pruned(x, training=False), np.float64)
    b = np.asarray(stripped(x, training=False), np.float64)
    scale = np.abs(a).max()
    assert scale > 0
    return pruned, stripped, np.abs(a - b).max() / scale, np.abs(full - a).max() / scale


# name, constructor kwargs, input size, preprocess module
APPS = [
    ("MobileNetV2", dict(alpha=0.35), 32, "mobilenet_v2"),
    ("ResNet50", {}, 32, "resnet"),
    ("DenseNet121", {}, 32, "densenet"),
    ("EfficientNetB0", {}, 32, "efficientnet"),        # squeeze-excite: Reshape + Multiply
    ("MobileNetV3Small", dict(alpha=0.75), 32, "mobilenet_v3"),  # SE + keras.ops nodes
]


@pytest.mark.parametrize("name,kwargs,size,module", APPS, ids=[a[0] for a in APPS])
def test_application_prunes_with_parity(fashion_test, name, kwargs, size, module):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None,
        **kwargs)
    preprocess = getattr(keras.applications, module).preprocess_input
    x_all = fashion_test[0]
    calibration = preprocess(images_for(x_all, size, 16, seed=1))
    randomise(model, calibration)
    x = preprocess(images_for(x_all, size))
    groups = wz.dependency_groups(model)
    prunable = [g for g in groups if g.prunable]
    assert len(prunable) >= 0.9 * len(groups), [g for g in groups if not g.prunable]
    pruned, stripped, parity, effect = prune_and_compare(model, x, calibration=calibration)
    assert parity <= TOL
    assert effect > 100 * TOL          # pruning changed the output: the check is not vacuous
    out = np.asarray(stripped(x, training=False))
    assert out.std(axis=0).max() > 100 * TOL * np.abs(out).max()    # ... nor input-blind
    assert stripped.count_params() < 0.5 * model.count_params()
    assert wz.count_flops(stripped) < 0.5 * wz.count_flops(model)
    assert not wz.is_pruned(stripped)


def test_convnext_prunes_its_residual_width_through_layernorm():
    """LayerNormalization over the channels is channelwise: the masked model
    computes its statistics over the kept channels only, so ConvNeXt's
    residual width (stem, downsampling convs, each block's second MLP Dense)
    prunes as well as its MLPs, with parity. The 1-block ConvNeXt keeps the
    test fast; the architecture is the keras.applications one."""
    from keras.src.applications import convnext
    model = convnext.ConvNeXt(depths=[1, 1, 1, 1], projection_dims=[16, 32, 48, 64],
                              weights=None, input_shape=(32, 32, 3), classes=10,
                              classifier_activation=None, include_preprocessing=True,
                              name="convnext_mini")
    from wootz_keras.data import load_fashion_mnist
    x_all, _ = load_fashion_mnist("test", limit=64, seed=2)
    randomise(model, images_for(x_all, 32, 16, seed=1))
    groups = wz.dependency_groups(model)
    assert sum(g.prunable for g in groups) == 8          # 4 residual widths + 4 MLPs
    stream = next(g for g in groups if "convnext_mini_stem_conv" in g.producers)
    assert stream.prunable and "convnext_mini_stage_0_block_0_layernorm" in stream.layers
    pruned, stripped, parity, effect = prune_and_compare(model, images_for(x_all, 32))
    assert parity <= TOL and effect > 100 * TOL
    ln = pruned.get_layer("convnext_mini_stage_0_block_0_layernorm")
    assert isinstance(ln, wz.PruneWrapper) and ln.mask_input
    dense = stripped.get_layer("convnext_mini_stage_0_block_0_pointwise_conv_1")
    assert dense.units == 32 and dense.kernel.shape == (8, 32)     # 4 * 16 and 16, halved
    assert stripped.count_params() < 0.3 * model.count_params()


def _image_model(body, channels=8, size=16):
    inp = keras.Input((size, size, 1))
    y = L.Conv2D(channels, 3, padding="same", name="before")(inp)
    y = L.BatchNormalization(name="before_bn")(y)
    y = body(y)
    y = L.Conv2D(6, 3, padding="same", name="after")(y)
    out = L.Dense(10, name="head")(L.GlobalAveragePooling2D()(y))
    return keras.Model(inp, out)


def _fashion(size=16, count=8):
    from wootz_keras.data import load_fashion_mnist
    x, _ = load_fashion_mnist("test", limit=64, seed=5)
    return representative_images(x, count, size=(size, size))


def _hard_swish(y):                          # as keras.applications MobileNetV3
    return L.Multiply(name="hswish")([y, L.ReLU(6.0, name="relu6")(y + 3.0) * (1.0 / 6.0)])


def test_keras_ops_nodes_hard_swish(fashion_images):
    """`y + 3.0` is a keras.ops Operation node that maps a pruned (zero) channel
    to 3 and cannot be wrapped; the product with y zeroes it again."""
    model = _image_model(_hard_swish)
    x = _fashion()
    randomise(model, x)
    groups = wz.dependency_groups(model)
    g = next(g for g in groups if "before" in g.producers)
    assert g.prunable, g.reason
    pruned, stripped, parity, effect = prune_and_compare(model, x)
    assert parity <= TOL and effect > 100 * TOL
    assert stripped.get_layer("after").kernel.shape[-2] == 4


def test_unmaskable_operation_feeding_a_conv_is_a_boundary_naming_it():
    """`y + 3.0` straight into a Conv: the conv's input weights would meet 3 on
    pruned channels and an operation cannot be masked, so the group stays."""
    model = _image_model(lambda y: y + 3.0)
    groups = wz.dependency_groups(model)
    g = next(g for g in groups if "before" in g.producers)
    assert not g.prunable
    assert "operation" in g.reason and "add" in g.reason.lower()
    pruned, stripped, parity, _ = prune_and_compare(model, _fashion())
    assert parity <= TOL


def test_zero_preserving_operation_is_seen_through():
    model = _image_model(lambda y: ops.relu(y) * 2.0)
    g = next(g for g in wz.dependency_groups(model) if "before" in g.producers)
    assert g.prunable
    x = _fashion()
    randomise(model, x)
    _, stripped, parity, effect = prune_and_compare(model, x)
    assert parity <= TOL and effect > 100 * TOL
    assert stripped.get_layer("before").filters == 4


@pytest.mark.filterwarnings("ignore:pruning boundary")
def test_channel_mixing_operation_is_a_boundary_naming_it():
    model = _image_model(lambda y: ops.flip(y, axis=-1))
    with pytest.warns(UserWarning, match="Flip"):
        groups = wz.dependency_groups(model)
    g = next(g for g in groups if "before" in g.producers)
    assert not g.prunable and "Flip" in g.reason
    _, _, parity, _ = prune_and_compare(model, _fashion())
    assert parity <= TOL


def test_depthwise_grouped_conv2d():
    """Conv2D(groups == channels), as in ConvNeXt: channelwise; filters and
    groups shrink together."""
    def body(y):
        y = L.Conv2D(8, 3, padding="same", groups=8, name="dw")(y)
        y = L.BatchNormalization(name="dw_bn")(y)
        return L.ReLU()(y)
    model = _image_model(body)
    x = _fashion()
    randomise(model, x)
    _, stripped, parity, effect = prune_and_compare(model, x)
    assert parity <= TOL and effect > 100 * TOL
    dw = stripped.get_layer("dw")
    assert (dw.filters, dw.groups, tuple(dw.kernel.shape)) == (4, 4, (3, 3, 1, 4))


def test_layer_scale_and_custom_scale_layer():
    from keras.src.applications.convnext import LayerScale
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    def body(y):
        z = L.Conv2D(8, 1, name="branch")(y)
        z = LayerScale(0.5, 8, name="ls")(z)
        return CustomScaleLayer(0.2, name="scale_add")([y, z])
    model = _image_model(body)
    x = _fashion()
    randomise(model, x)
    import warnings
    with warnings.catch_warnings(record=True) as with_warnings:
        warnings.simplefilter("always")
        groups = wz.dependency_groups(model)
    assert not [w for w in with_warnings if "pruning boundary" in str(w.message)]
    g = next(g for g in groups if "before" in g.producers)
    assert g.prunable and {"branch", "ls"} <= set(g.layers)
    _, stripped, parity, effect = prune_and_compare(model, x)
    assert parity <= TOL and effect > 100 * TOL
    assert stripped.get_layer("ls").projection_dim == 4


def test_conv_before_batchnorm_skips_the_redundant_multiply(tmp_path):
    """Conv -> BN: the BN wrapper masks, the conv wrapper only records its mask;
    the flag survives a .keras round trip."""
    from wootz_keras import zoo
    model = zoo.resnet_cifar(depth=8)
    pruned = wz.prune_filters(model, rate=0.5)
    conv, bn = pruned.get_layer("stage1_block1_conv1"), pruned.get_layer("stage1_block1_bn1")
    assert isinstance(conv, wz.PruneWrapper) and not conv.mask_output
    assert isinstance(bn, wz.PruneWrapper) and bn.mask_output
    np.testing.assert_array_equal(conv.mask.numpy(), bn.mask.numpy())
    path = str(tmp_path / "masked.keras")
    pruned.save(path)
    loaded = keras.models.load_model(path)
    assert not loaded.get_layer("stage1_block1_conv1").mask_output
    x = _fashion(28, 4)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(pruned(x)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(wz.strip_pruning(pruned)(x)), np.asarray(pruned(x)),
                               atol=1e-5)


def test_convnext_stochastic_depth_is_seen_through():
    from keras.src.applications.convnext import StochasticDepth
    model = _image_model(lambda y: y + StochasticDepth(0.3, name="drop_path")(
        L.Conv2D(8, 1, name="branch")(y)))
    g = next(g for g in wz.dependency_groups(model) if "before" in g.producers)
    assert g.prunable and "branch" in g.producers
    x = _fashion()
    randomise(model, x)
    _, _, parity, effect = prune_and_compare(model, x)
    assert parity <= TOL and effect > 100 * TOL
