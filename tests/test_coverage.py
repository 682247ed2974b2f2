"""Layer-pattern coverage (issue 14): small models over the layer patterns
the Keras pruning tools before us supported (pooling, cropping, padding and
upsampling in 1D / 2D / 3D, merges, noise layers, recurrent layers fed by
convolutions, channels_first) and the ones this engine adds (grouped
convolutions, Layer / GroupNormalization over channels, Permute).

Each must prune: the convolution in front of the pattern loses half its
filters, the consumer behind it the matching input rows, and the masked and
stripped models agree. Inputs are seeded normal noise: these tests check
numerics (parity), not accuracy. BatchNorm statistics, gamma / beta and
biases are randomised so that a channel masked but not removed (or removed
but not masked) shows in the output.
"""

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras.testing import randomise

TOL = 1e-4
CF = "channels_first"


def _seq(shape, *layers, head=True):
    inp = keras.Input(shape)
    y = inp
    for layer in layers:
        y = layer(y)
    if head:
        y = L.Dense(5, name="head")(L.Flatten(name="head_flatten")(y))
    return keras.Model(inp, y)


def conv_pattern(dim, middle, data_format="channels_last", size=9):
    """conv -> middle -> conv -> head, `dim` spatial dims. (Sizes avoid a
    TensorFlow CPU bug: a channels_first convolution whose filter count
    equals its output's last dimension adds its bias along that dimension.)"""
    conv = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[dim]
    spatial = (size,) * dim
    shape = (3,) + spatial if data_format == CF else spatial + (3,)
    layers = [conv(12, 3, padding="same", data_format=data_format, name="first")]
    layers += middle if isinstance(middle, list) else [middle]
    layers += [conv(10, 1, data_format=data_format, name="second")]
    return _seq(shape, *layers)


def merge_pattern(merge):
    inp = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, padding="same", name="first")(inp)
    b = L.Conv2D(8, 3, padding="same", name="first_b")(inp)
    y = merge([a, b])
    y = L.Conv2D(6, 1, name="second")(y)
    return keras.Model(inp, L.Dense(5, name="head")(L.Flatten()(y)))


def recurrent_pattern(rnn):
    inp = keras.Input((12, 4))
    y = L.Conv1D(8, 3, padding="same", name="first")(inp)
    y = L.BatchNormalization(name="first_bn")(y)
    y = rnn(L.MaxPooling1D(name="pool")(L.ReLU()(y)))
    if len(y.shape) == 3:
        y = L.Flatten()(y)
    return keras.Model(inp, L.Dense(5, name="head")(y))


def _cf2(layer):
    return conv_pattern(2, layer, CF)


PATTERNS = {
    # pooling, cropping, padding, upsampling in 1D / 2D / 3D
    **{f"{kind}{d}d": (lambda d=d, kind=kind: conv_pattern(d, getattr(L, f"{kind}{d}D")(
        **({"cropping": 1} if kind == "Cropping" else
                                  {"pool_size": 2} if kind == "AveragePooling" else {}))))
       for d in (1, 2, 3)
       for kind in ("MaxPooling", "AveragePooling", "Cropping", "ZeroPadding", "UpSampling")},
    "global_pooling_2d": lambda: _seq((8, 8, 3), L.Conv2D(8, 3, name="first"),
                                      L.GlobalMaxPooling2D(), L.Dense(6, name="second")),
    # merges
    **{f"merge_{m.__name__.lower()}": (lambda m=m: merge_pattern(m()))
       for m in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)},
    "merge_concatenate": lambda: merge_pattern(L.Concatenate()),
    # noise and dropout
    **{f"noise_{name.lower()}": (lambda name=name, arg=arg: conv_pattern(2, getattr(L, name)(arg)))
       for name, arg in (("GaussianNoise", 0.1), ("GaussianDropout", 0.2), ("AlphaDropout", 0.2),
                         ("SpatialDropout2D", 0.2), ("Dropout", 0.3))},
    "activity_regularization": lambda: conv_pattern(2, L.ActivityRegularization(l1=0.01)),
    # recurrent layers reading a convolution's channels
    **{f"conv1d_{name.lower()}": (lambda make=make: recurrent_pattern(make()))
       for name, make in (("SimpleRNN", lambda: L.SimpleRNN(6, name="rnn")),
                          ("GRU", lambda: L.GRU(6, name="rnn")),
                          ("LSTM", lambda: L.LSTM(6, name="rnn")),
                          ("LSTM_sequences", lambda: L.LSTM(6, return_sequences=True, name="rnn")),
                          ("Bidirectional_LSTM", lambda: L.Bidirectional(L.LSTM(6), name="rnn")))},
    # channels_first
    "cf_conv2d_maxpool_flatten_dense": lambda: _seq(
        (3, 8, 8), L.Conv2D(8, 3, data_format=CF, name="first"),
        L.MaxPooling2D(data_format=CF), L.Flatten(name="second_flatten"),
        L.Dense(6, name="second")),
    "cf_flatten_channels_first_order": lambda: _seq(
        (3, 8, 8), L.Conv2D(8, 3, data_format=CF, name="first"),
        L.Flatten(data_format=CF, name="second_flatten"), L.Dense(6, name="second")),
    "cf_conv1d": lambda: conv_pattern(1, L.MaxPooling1D(data_format=CF), CF),
    "cf_conv3d": lambda: conv_pattern(3, L.AveragePooling3D(2, data_format=CF), CF),
    "cf_batchnorm_axis1": lambda: _cf2([L.BatchNormalization(axis=1), L.ReLU()]),
    "cf_padding_cropping_upsampling": lambda: _cf2([L.ZeroPadding2D(1, data_format=CF),
                                                    L.Cropping2D(1, data_format=CF),
                                                    L.UpSampling2D(data_format=CF)]),
    "cf_depthwise": lambda: _cf2(L.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                                   data_format=CF)),
    "cf_separable": lambda: _cf2([L.SeparableConv2D(8, 3, padding="same", data_format=CF,
                                                    name="sep")]),
    "cf_transposed": lambda: _cf2([L.Conv2DTranspose(8, 3, data_format=CF, name="up")]),
    "cf_global_pooling": lambda: _seq((3, 8, 8), L.Conv2D(8, 3, data_format=CF, name="first"),
                                      L.GlobalAveragePooling2D(data_format=CF),
                                      L.Dense(6, name="second")),
    "cf_spatial_dropout": lambda: _cf2(L.SpatialDropout2D(0.2, data_format=CF)),
    # grouped convolutions, normalisation over channels, permute
    "grouped_conv": lambda: conv_pattern(2, [L.Conv2D(8, 3, padding="same", groups=2),
                                             L.BatchNormalization(), L.ReLU()]),
    "layer_norm": lambda: conv_pattern(2, L.LayerNormalization()),
    "group_norm": lambda: conv_pattern(2, L.GroupNormalization(3)),
    "permute_to_channels_last": lambda: _seq(
        (3, 8, 8), L.Conv2D(8, 3, data_format=CF, name="first"), L.Permute((2, 3, 1)),
        L.Conv2D(6, 1, name="second")),
}

# The patterns of the issue (35 models tried as a new user would); the rest are new.
ISSUE_PATTERNS = [k for k in PATTERNS if not k.startswith(("grouped", "layer_norm", "group_norm",
                                                            "permute"))]


def _kernel(model, name):
    layer = wz.graph.unwrap(next(l for l in model._flatten_layers(include_self=False)
                                 if l.name == name))
    return next(v for v in layer.weights if "kernel" in v.name)


def _input(model, seed=0):
    shape = (4,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_pattern_prunes_with_parity(pattern):
    model = PATTERNS[pattern]()
    randomise(model, seed=1)
    x = _input(model)
    pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    a, b = np.asarray(pruned(x, training=False)), np.asarray(stripped(x, training=False))
    full = np.asarray(model(x, training=False))
    scale = np.abs(a).max()
    assert np.abs(a - b).max() <= TOL * scale, np.abs(a - b).max() / scale
    assert np.abs(full - a).max() > 100 * TOL * scale        # pruning changed the function
    first = _kernel(model, "first")
    assert _kernel(stripped, "first").shape[-1] == first.shape[-1] // 2
    assert wz.count_params(stripped) == stripped.count_params() < model.count_params()
    # prune_compact makes the same network in one step
    compact = wz.prune_compact(model, rate=0.5)
    np.testing.assert_allclose(np.asarray(compact(x, training=False)), b, atol=1e-5 * scale)


def test_recurrent_layer_input_rows_are_sliced():
    model = PATTERNS["conv1d_lstm"]()
    pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    keep = pruned.get_layer("first").mask.numpy() > 0.5
    lstm, new = model.get_layer("rnn"), stripped.get_layer("rnn")
    np.testing.assert_array_equal(new.cell.kernel.numpy(), lstm.cell.kernel.numpy()[keep])
    np.testing.assert_array_equal(new.cell.recurrent_kernel.numpy(),
                                  lstm.cell.recurrent_kernel.numpy())       # units stay
    assert not isinstance(pruned.get_layer("rnn"), wz.PruneWrapper)
    with pytest.raises(ValueError, match="'rnn'.*keeps its units"):
        wz.prune_filters(model, rates={"rnn": 0.5})


def test_bidirectional_slices_both_directions():
    model = PATTERNS["conv1d_bidirectional_lstm"]()
    pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    keep = pruned.get_layer("first").mask.numpy() > 0.5
    old, new = model.get_layer("rnn"), stripped.get_layer("rnn")
    for direction in ("forward_layer", "backward_layer"):
        np.testing.assert_array_equal(getattr(new, direction).cell.kernel.numpy(),
                                      getattr(old, direction).cell.kernel.numpy()[keep])
