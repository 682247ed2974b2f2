"""One test per graph pattern: prune, strip, and check that the stripped model
computes what the masked one does (on real Fashion-MNIST images) and is
smaller by exactly the expected channel counts.

BatchNorm statistics / gamma / beta and every bias are randomised first, so a
channel that is masked but not removed (or removed but not masked) shows up
as an output difference.
"""

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras.testing import randomise

TOL = 1e-4


# -- helpers ------------------------------------------------------------------
def find(model, name):
    """A layer anywhere in `model` (nested models included), wrappers first."""
    for layer in model._flatten_layers(include_self=False):
        if layer.name == name:
            return layer
    raise KeyError(name)


def wshape(model, name, weight="kernel"):
    layer = wz.graph.unwrap(find(model, name))
    return tuple(next(v for v in layer.weights if v.name == weight).shape)


def mask(pruned, name):
    layer = find(pruned, name)
    assert isinstance(layer, wz.PruneWrapper), f"{name} was not wrapped"
    return layer.mask.numpy() > 0.5


def as_list(y):
    return [np.asarray(t) for t in keras.tree.flatten(y)]


def strip_and_compare(model, x, **kwargs):
    """prune_filters + strip_pruning; masked and stripped outputs must agree."""
    kwargs.setdefault("rate", 0.5)
    randomise(model)
    pruned = wz.prune_filters(model, **kwargs)
    assert wz.is_pruned(pruned)
    stripped = wz.strip_pruning(pruned)
    assert not wz.is_pruned(stripped)
    masked_out, stripped_out = as_list(pruned(x, training=False)), as_list(stripped(x, training=False))
    assert len(masked_out) == len(stripped_out)
    for a, b in zip(masked_out, stripped_out):
        assert a.shape == b.shape
        assert np.all(np.isfinite(a))
        assert np.max(np.abs(a - b)) <= TOL, np.max(np.abs(a - b))
    # pruning changed the function (channels really went), the stripped model is smaller
    original = as_list(model(x, training=False))
    assert max(np.max(np.abs(a - o)) for a, o in zip(masked_out, original)) > 1e-5
    assert wz.count_params(stripped) < wz.count_params(model)
    assert stripped.count_params() == wz.count_params(stripped)
    return pruned, stripped


def head(x, name="head"):
    x = L.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    return L.Dense(10, name=name)(x)


@pytest.fixture(scope="module")
def x(fashion_images):
    return fashion_images[:16]


# -- residual -------------------------------------------------------------------
def test_residual_identity_and_projection_shortcuts(x):
    inp = keras.Input((28, 28, 1))
    s = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    s = L.ReLU()(L.BatchNormalization(name="stem_bn")(s))
    y = L.Conv2D(8, 3, padding="same", name="b1_conv1")(s)
    y = L.ReLU()(L.BatchNormalization(name="b1_bn1")(y))
    y = L.Conv2D(8, 3, padding="same", name="b1_conv2")(y)
    y = L.BatchNormalization(name="b1_bn2")(y)
    s = L.ReLU()(L.Add(name="b1_add")([y, s]))                   # identity shortcut
    y = L.Conv2D(16, 3, strides=2, padding="same", name="b2_conv1")(s)
    y = L.ReLU()(L.BatchNormalization(name="b2_bn1")(y))
    y = L.Conv2D(16, 3, padding="same", name="b2_conv2")(y)
    y = L.BatchNormalization(name="b2_bn2")(y)
    p = L.Conv2D(16, 1, strides=2, name="b2_proj")(s)             # projection shortcut
    p = L.BatchNormalization(name="b2_proj_bn")(p)
    s = L.ReLU()(L.Add(name="b2_add")([y, p]))
    model = keras.Model(inp, head(s))

    groups = {frozenset(g.producers): g for g in wz.dependency_groups(model)}
    assert groups[frozenset(("stem", "b1_conv2"))].size == 8
    assert groups[frozenset(("b2_proj", "b2_conv2"))].size == 16

    pruned, stripped = strip_and_compare(model, x)
    assert np.array_equal(mask(pruned, "stem"), mask(pruned, "b1_conv2"))
    assert np.array_equal(mask(pruned, "b2_proj"), mask(pruned, "b2_conv2"))
    assert wshape(stripped, "stem") == (3, 3, 1, 4)
    assert wshape(stripped, "b1_conv1") == (3, 3, 4, 4)
    assert wshape(stripped, "b1_conv2") == (3, 3, 4, 4)
    assert wshape(stripped, "b2_conv1") == (3, 3, 4, 8)
    assert wshape(stripped, "b2_conv2") == (3, 3, 8, 8)
    assert wshape(stripped, "b2_proj") == (1, 1, 4, 8)
    assert wshape(stripped, "b2_proj_bn", "gamma") == (8,)
    assert wshape(stripped, "head") == (8, 10)


# -- elementwise merges ---------------------------------------------------------------
@pytest.mark.parametrize("merge", [L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_elementwise_merge(x, merge):
    inp = keras.Input((28, 28, 1))
    a = L.Conv2D(8, 3, padding="same", name="a")(inp)
    b = L.Conv2D(8, 3, padding="same", name="b")(inp)
    y = merge(name="merge")([a, b])
    y = L.BatchNormalization(name="bn")(y)
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    assert np.array_equal(mask(pruned, "a"), mask(pruned, "b"))
    assert wshape(stripped, "a") == wshape(stripped, "b") == (3, 3, 1, 4)
    assert wshape(stripped, "after") == (3, 3, 4, 4)
    assert wshape(stripped, "bn", "gamma") == (4,)


# -- concatenate -------------------------------------------------------------------
def test_concatenate_keeps_channel_offsets(x):
    inp = keras.Input((28, 28, 1))
    a = L.Conv2D(8, 3, padding="same", name="a")(inp)
    b = L.Conv2D(4, 3, padding="same", name="b")(inp)
    c = L.Conv2D(6, 1, padding="same", name="c")(inp)
    y = L.Concatenate(name="cat")([a, b, c])
    y = L.BatchNormalization(name="cat_bn")(y)
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    groups = wz.dependency_groups(model)
    assert [g.size for g in groups if g.prunable] == [8, 4, 6, 8]   # one group per branch

    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "a") == (3, 3, 1, 4)
    assert wshape(stripped, "b") == (3, 3, 1, 2)
    assert wshape(stripped, "c") == (1, 1, 1, 3)
    assert wshape(stripped, "cat_bn", "gamma") == (9,)
    assert wshape(stripped, "after") == (3, 3, 9, 4)
    # the consumer's input rows are the kept channels at each branch's offset
    kept_in = np.concatenate([np.flatnonzero(mask(pruned, "a")),
                              8 + np.flatnonzero(mask(pruned, "b")),
                              12 + np.flatnonzero(mask(pruned, "c"))])
    kept_out = np.flatnonzero(mask(pruned, "after"))
    expect = model.get_layer("after").kernel.numpy()[:, :, kept_in][..., kept_out]
    np.testing.assert_array_equal(stripped.get_layer("after").kernel.numpy(), expect)
    bn_mean = model.get_layer("cat_bn").moving_mean.numpy()[kept_in]
    np.testing.assert_array_equal(stripped.get_layer("cat_bn").moving_mean.numpy(), bn_mean)


# -- batch normalisation -------------------------------------------------------------
def test_batchnorm_statistics_are_sliced(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, use_bias=False, name="c1")(inp)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU()(y)
    y = L.Conv2D(16, 3, use_bias=False, name="c2")(y)
    y = L.BatchNormalization(name="bn2", center=False)(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "c1") == (3, 3, 1, 4)
    assert wshape(stripped, "c2") == (3, 3, 4, 8)
    keep = mask(pruned, "c1")
    assert np.array_equal(keep, mask(pruned, "bn1"))
    for w in ("gamma", "beta", "moving_mean", "moving_variance"):
        np.testing.assert_array_equal(getattr(stripped.get_layer("bn1"), w).numpy(),
                                      getattr(model.get_layer("bn1"), w).numpy()[keep])
    assert len(stripped.get_layer("bn2").weights) == 3      # center=False: no beta
    assert wshape(stripped, "bn2", "gamma") == (8,)


# -- depthwise / separable ---------------------------------------------------------------
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv(x, multiplier):
    m = multiplier
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="c1")(inp)
    y = L.DepthwiseConv2D(3, depth_multiplier=m, padding="same", name="dw")(y)
    y = L.BatchNormalization(name="dw_bn")(y)
    y = L.ReLU(6.0)(y)
    y = L.Conv2D(8, 1, name="pw")(y)
    model = keras.Model(inp, head(y))
    groups = {g.producers: g for g in wz.dependency_groups(model)}
    assert groups[("c1",)].size == 8          # the depthwise conv is tied to its input
    assert "dw" in groups[("c1",)].layers
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "c1") == (3, 3, 1, 4)
    assert wshape(stripped, "dw") == (3, 3, 4, m)
    assert wshape(stripped, "dw", "bias") == (4 * m,)
    assert wshape(stripped, "dw_bn", "gamma") == (4 * m,)
    assert wshape(stripped, "pw") == (1, 1, 4 * m, 4)
    # output channel c*m + j of the depthwise conv belongs to input channel c
    keep = np.flatnonzero(mask(pruned, "c1"))
    rows = (keep[:, None] * m + np.arange(m)).ravel()
    np.testing.assert_array_equal(stripped.get_layer("dw_bn").moving_mean.numpy(),
                                  model.get_layer("dw_bn").moving_mean.numpy()[rows])


def test_separable_conv(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="c1")(inp)
    y = L.SeparableConv2D(8, 3, depth_multiplier=2, padding="same", name="sep1")(y)
    y = L.BatchNormalization(name="sep1_bn")(y)
    y = L.ReLU()(y)
    y = L.SeparableConv2D(6, 3, name="sep2")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "c1") == (3, 3, 1, 4)
    assert wshape(stripped, "sep1", "depthwise_kernel") == (3, 3, 4, 2)
    assert wshape(stripped, "sep1", "pointwise_kernel") == (1, 1, 8, 4)
    assert wshape(stripped, "sep1", "bias") == (4,)
    assert wshape(stripped, "sep2", "depthwise_kernel") == (3, 3, 4, 1)
    assert wshape(stripped, "sep2", "pointwise_kernel") == (1, 1, 4, 3)
    assert wshape(stripped, "head") == (3, 10)


# -- other convolutions -----------------------------------------------------------------
def test_conv1d(x):
    seq = x[..., 0]                                      # 28 steps x 28 features
    inp = keras.Input((28, 28))
    y = L.Conv1D(8, 3, name="c1")(inp)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU()(y)
    y = L.Conv1D(8, 3, padding="same", name="c2")(y)
    y = L.MaxPooling1D(name="pool")(y)
    y = L.GlobalAveragePooling1D()(y)
    model = keras.Model(inp, L.Dense(10, name="head")(y))
    pruned, stripped = strip_and_compare(model, seq)
    assert wshape(stripped, "c1") == (3, 28, 4)
    assert wshape(stripped, "c2") == (3, 4, 4)
    assert wshape(stripped, "head") == (4, 10)


def test_conv2d_transpose(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, strides=2, padding="same", name="down")(inp)
    y = L.Conv2DTranspose(8, 3, strides=2, padding="same", name="up")(y)
    y = L.BatchNormalization(name="up_bn")(y)
    y = L.Conv2D(4, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "down") == (3, 3, 1, 4)
    assert wshape(stripped, "up") == (3, 3, 4, 4)        # (h, w, out, in)
    assert wshape(stripped, "up", "bias") == (4,)
    assert wshape(stripped, "after") == (3, 3, 4, 2)
    # the transpose kernel is sliced on both axes at the right channels
    k_in, k_out = np.flatnonzero(mask(pruned, "down")), np.flatnonzero(mask(pruned, "up"))
    expect = model.get_layer("up").kernel.numpy()[:, :, k_out][..., k_in]
    np.testing.assert_array_equal(stripped.get_layer("up").kernel.numpy(), expect)


# -- dense consumers -------------------------------------------------------------------
def test_dense_after_flatten(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, strides=2, name="conv")(inp)      # 13 x 13 x 8
    y = L.MaxPooling2D(name="pool")(y)                   # 6 x 6 x 8
    y = L.Flatten(name="flatten")(y)
    y = L.Dense(16, activation="relu", name="fc1")(y)
    model = keras.Model(inp, L.Dense(10, name="fc2")(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(model, "fc1") == (6 * 6 * 8, 16)
    assert wshape(stripped, "fc1") == (6 * 6 * 8 - 6 * 6 * 4, 8)   # H*W*removed rows gone
    assert wshape(stripped, "fc2") == (8, 10)
    keep_c, keep_u = mask(pruned, "conv"), mask(pruned, "fc1")
    rows = np.flatnonzero(keep_c[np.arange(6 * 6 * 8) % 8])   # flat index i is channel i % C
    expect = model.get_layer("fc1").kernel.numpy()[rows][:, keep_u]
    np.testing.assert_array_equal(stripped.get_layer("fc1").kernel.numpy(), expect)


@pytest.mark.parametrize("pool", [L.GlobalAveragePooling2D, L.GlobalMaxPooling2D])
def test_dense_after_global_pooling(x, pool):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, strides=2, name="conv")(inp)
    y = L.BatchNormalization(name="bn")(y)
    y = pool(name="gp")(y)
    y = L.Dense(16, name="fc1")(y)
    model = keras.Model(inp, L.Dense(10, name="fc2")(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "conv") == (3, 3, 1, 4)
    assert wshape(stripped, "fc1") == (4, 8)
    assert wshape(stripped, "fc2") == (8, 10)


def test_dense_on_feature_maps(x):
    """A Dense applied per pixel is a 1x1 convolution."""
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, strides=2, name="conv")(inp)
    y = L.Dense(6, name="pixel_fc")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "pixel_fc") == (4, 3)


# -- nested models ---------------------------------------------------------------------
def _inner_block(kind, channels, name):
    layers = [L.Conv2D(8, 3, padding="same", name=f"{name}_conv"),
              L.BatchNormalization(name=f"{name}_bn"), L.ReLU(name=f"{name}_relu")]
    if kind == "sequential":
        return keras.Sequential([keras.Input((28, 28, channels))] + layers, name=name)
    inp = keras.Input((28, 28, channels))
    y = inp
    for layer in layers:
        y = layer(y)
    return keras.Model(inp, y, name=name)


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_nested_model_with_pruned_inputs(x, kind):
    inner = _inner_block(kind, 8, "inner")
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="before")(inp)   # its channels flow INTO inner
    y = inner(y)
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    prods = [g.producers for g in wz.dependency_groups(model) if g.prunable]
    assert prods == [("before",), ("inner_conv",), ("after",)]
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "before") == (3, 3, 1, 4)
    assert wshape(stripped, "inner_conv") == (3, 3, 4, 4)
    assert wshape(stripped, "inner_bn", "gamma") == (4,)
    assert wshape(stripped, "after") == (3, 3, 4, 4)
    new_inner = stripped.get_layer("inner")
    assert isinstance(new_inner, keras.Sequential if kind == "sequential" else keras.Model)
    assert tuple(new_inner.input_shape if kind == "sequential" else new_inner.inputs[0].shape) \
        == (None, 28, 28, 4)


def test_nested_model_as_last_stage(x):
    """A nested model whose output is the model output (the head inside it)."""
    inner_in = keras.Input((14, 14, 8))
    z = L.Conv2D(8, 3, padding="same", name="inner_conv")(inner_in)
    z = L.GlobalAveragePooling2D()(z)
    z = L.Dense(10, name="inner_head")(z)
    inner = keras.Model(inner_in, z, name="inner")
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, strides=2, padding="same", name="before")(inp)
    model = keras.Model(inp, inner(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "before") == (3, 3, 1, 4)
    assert wshape(stripped, "inner_conv") == (3, 3, 4, 4)
    assert wshape(stripped, "inner_head") == (4, 10)


# -- multi-input / multi-output -----------------------------------------------------------
def test_multi_input_multi_output(x):
    in1, in2 = keras.Input((28, 28, 1), name="left"), keras.Input((28, 28, 1), name="right")
    a = L.Conv2D(8, 3, padding="same", name="a")(in1)
    b = L.Conv2D(8, 3, padding="same", name="b")(in2)
    y = L.Add(name="join")([a, b])
    y = L.Conv2D(8, 3, name="trunk")(y)
    out1 = L.Dense(10, name="classes")(L.GlobalAveragePooling2D()(y))
    out2 = L.Dense(3, name="aux")(L.GlobalMaxPooling2D()(y))
    model = keras.Model([in1, in2], [out1, out2])
    pruned, stripped = strip_and_compare(model, [x, x[:, ::-1]])
    assert len(stripped.outputs) == 2 and len(stripped.inputs) == 2
    assert wshape(stripped, "a") == wshape(stripped, "b") == (3, 3, 1, 4)
    assert wshape(stripped, "trunk") == (3, 3, 4, 4)
    assert wshape(stripped, "classes") == (4, 10)
    assert wshape(stripped, "aux") == (4, 3)


# -- Sequential ------------------------------------------------------------------------
def test_sequential_model(x):
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(8, 3, name="c1"), L.BatchNormalization(name="bn1"), L.ReLU(),
        L.MaxPooling2D(), L.Conv2D(16, 3, name="c2"), L.ReLU(),
        L.Flatten(), L.Dense(10, name="out"),
    ], name="seq")
    pruned, stripped = strip_and_compare(model, x)
    assert isinstance(stripped, keras.Sequential)
    assert wshape(stripped, "c1") == (3, 3, 1, 4)
    assert wshape(stripped, "c2") == (3, 3, 4, 8)
    assert wshape(stripped, "out") == (11 * 11 * 8, 10)


# -- shared layer ----------------------------------------------------------------------
def test_shared_conv_called_twice(x):
    inp = keras.Input((28, 28, 1))
    a = L.Conv2D(8, 3, padding="same", name="a")(inp)
    b = L.Conv2D(8, 5, padding="same", name="b")(inp)
    shared = L.Conv2D(8, 3, padding="same", name="shared")
    y1, y2 = shared(a), shared(L.ReLU()(b))                  # one kernel, two calls
    y = L.Concatenate(name="cat")([y1, y2])
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    groups = {frozenset(g.producers): g for g in wz.dependency_groups(model)}
    assert frozenset(("a", "b")) in groups       # the shared kernel ties its two inputs
    pruned, stripped = strip_and_compare(model, x)
    assert np.array_equal(mask(pruned, "a"), mask(pruned, "b"))
    assert wshape(stripped, "shared") == (3, 3, 4, 4)
    assert wshape(stripped, "after") == (3, 3, 8, 4)          # 4 + 4 concatenated
    assert len(stripped.get_layer("shared")._inbound_nodes) == 2   # still shared


def test_shared_sigmoid_called_twice(x):
    """A shared layer needing a mask keeps one channel set for all its calls."""
    inp = keras.Input((28, 28, 1))
    sig = L.Activation("sigmoid", name="shared_sig")
    a = sig(L.Conv2D(8, 3, padding="same", name="a")(inp))
    b = sig(L.Conv2D(8, 3, padding="same", name="b")(inp))
    y = L.Concatenate()([a, b])
    model = keras.Model(inp, head(L.Conv2D(8, 3, name="after")(y)))
    pruned, stripped = strip_and_compare(model, x)
    assert np.array_equal(mask(pruned, "a"), mask(pruned, "b"))
    assert np.array_equal(mask(pruned, "a"), mask(pruned, "shared_sig"))
    assert wshape(stripped, "a") == wshape(stripped, "b") == (3, 3, 1, 4)


# -- reshape keeping the channel axis (squeeze-and-excitation) --------------------------------
def test_squeeze_excitation_reshape(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="base")(inp)
    y = L.ReLU()(L.BatchNormalization(name="base_bn")(y))
    s = L.GlobalAveragePooling2D(name="squeeze")(y)
    s = L.Reshape((1, 1, 8), name="se_reshape")(s)
    s = L.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    y = L.Multiply(name="excite")([y, s])
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    groups = {frozenset(g.producers): g for g in wz.dependency_groups(model)}
    assert frozenset(("base", "se_expand")) in groups
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "base") == (3, 3, 1, 4)
    assert wshape(stripped, "se_reduce") == (1, 1, 4, 2)
    assert wshape(stripped, "se_expand") == (1, 1, 2, 4)
    assert stripped.get_layer("se_reshape").get_config()["target_shape"] == (1, 1, 4)
    assert wshape(stripped, "after") == (3, 3, 4, 4)


# -- activations that do not map 0 to 0 --------------------------------------------------
@pytest.mark.parametrize("activation", ["sigmoid", "softplus", "elu"])
def test_non_zero_preserving_activation(x, activation):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="conv")(inp)
    y = L.BatchNormalization(name="bn")(y)
    y = L.Activation(activation, name="act")(y)
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    if activation == "elu":                  # elu(0) == 0: no mask needed
        assert not isinstance(find(pruned, "act"), wz.PruneWrapper)
    else:                                    # sigmoid(0) = 0.5 must be masked
        assert np.array_equal(mask(pruned, "act"), mask(pruned, "conv"))
    assert wshape(stripped, "conv") == (3, 3, 1, 4)
    assert wshape(stripped, "after") == (3, 3, 4, 4)


def test_prelu_per_channel(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, strides=2, name="conv")(inp)
    y = L.PReLU(alpha_initializer=keras.initializers.RandomUniform(0.1, 0.5), shared_axes=[1, 2],
                name="prelu")(y)
    model = keras.Model(inp, head(L.Conv2D(8, 1, name="after")(y)))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "prelu", "alpha") == (1, 1, 4)


# -- pass-through layers -----------------------------------------------------------------
def test_passthrough_layers(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(8, 3, padding="same", name="conv")(inp)            # 28
    y = L.ZeroPadding2D(2, name="pad")(y)                            # 32
    y = L.MaxPooling2D(name="maxpool")(y)                            # 16
    y = L.Dropout(0.3, name="drop")(y)
    y = L.Cropping2D(2, name="crop")(y)                              # 12
    y = L.UpSampling2D(name="up")(y)                                 # 24
    y = L.AveragePooling2D(2, name="avgpool")(y)                     # 12
    y = L.SpatialDropout2D(0.2, name="sdrop")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    assert wshape(stripped, "conv") == (3, 3, 1, 4)
    assert wshape(stripped, "after") == (3, 3, 4, 4)
    assert stripped.get_layer("avgpool").output.shape == (None, 12, 12, 4)


# -- grouped convolution (ResNeXt / RegNet) -------------------------------------------------
def test_grouped_conv_prunes_evenly_per_group(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(16, 3, padding="same", name="reduce")(inp)
    y = L.ReLU()(L.BatchNormalization(name="reduce_bn")(y))
    y = L.Conv2D(16, 3, padding="same", groups=4, name="grouped")(y)
    y = L.ReLU()(L.BatchNormalization(name="grouped_bn")(y))
    y = L.Conv2D(8, 1, name="expand")(y)
    model = keras.Model(inp, head(y))
    groups = {g.producers: g for g in wz.dependency_groups(model)}
    for name in ("reduce", "grouped"):
        g = groups[(name,)]
        assert g.prunable and g.blocks is not None and g.blocks.max() == 3
    pruned, stripped = strip_and_compare(model, x)
    conv = stripped.get_layer("grouped")
    assert (conv.filters, conv.groups, tuple(conv.kernel.shape)) == (8, 4, (3, 3, 2, 8))
    keep_in, keep_out = mask(pruned, "reduce"), mask(pruned, "grouped")
    assert [int(keep_in[4 * b:4 * b + 4].sum()) for b in range(4)] == [2, 2, 2, 2]
    assert [int(keep_out[4 * b:4 * b + 4].sum()) for b in range(4)] == [2, 2, 2, 2]
    # filter o of group b reads the kept inputs of group b only
    full = model.get_layer("grouped").kernel.numpy()
    out = np.flatnonzero(keep_out)
    for j, o in enumerate(out):
        b = o // 4
        rows = np.flatnonzero(keep_in[4 * b:4 * b + 4])
        np.testing.assert_array_equal(conv.kernel.numpy()[..., j], full[:, :, rows, o])


def test_group_norm_keeps_its_groups_and_statistics(x):
    inp = keras.Input((28, 28, 1))
    y = L.Conv2D(12, 3, padding="same", name="conv")(inp)
    y = L.GroupNormalization(3, name="gn")(y)
    y = L.Conv2D(8, 3, name="after")(y)
    model = keras.Model(inp, head(y))
    pruned, stripped = strip_and_compare(model, x)
    gn = stripped.get_layer("gn")
    assert gn.groups == 3 and gn.gamma.shape == (6,)
    assert pruned.get_layer("gn").mask_input
