"""Importance criteria (wootz_keras.pruning.importance) and how many units go."""

import re

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo
from wootz_keras.graph import ChannelAnalysis
from wootz_keras.pruning import group_scores, units_to_keep


def kept(pruned, name):
    return (pruned.get_layer(name).mask.numpy() > 0.5).astype(int).tolist()


def filters_with_norms(l1_values, shape=(3, 3, 1)):
    """A kernel whose filter j is constant with L1 norm l1_values[j]."""
    n = int(np.prod(shape))
    return np.stack([np.full(shape, v / n, np.float32) for v in l1_values], axis=-1)


def one_conv_model(kernel_size=3, filters=4, transpose=False):
    inp = keras.Input((6, 6, 1))
    conv = (L.Conv2DTranspose if transpose else L.Conv2D)(filters, kernel_size, use_bias=False,
                                                          name="c")
    y = L.Flatten()(conv(inp))
    return keras.Model(inp, L.Dense(2, name="out")(y))


# known filters: A many small weights, B one large, C many medium, D one larger
#   L1: A 2.7  B 2.5  C 4.5  D 4.0  -> l1 drops A, B
#   L2: A 0.9  B 2.5  C 1.5  D 4.0  -> l2 drops A, C
def _abcd_kernel():
    k = np.zeros((3, 3, 1, 4), np.float32)
    k[..., 0] = 0.3
    k[1, 1, 0, 1] = 2.5
    k[..., 2] = 0.5
    k[0, 2, 0, 3] = -4.0
    return k


def test_l1_prunes_lowest_l1_filters():
    model = one_conv_model()
    model.get_layer("c").kernel.assign(_abcd_kernel())
    a = ChannelAnalysis(model)
    np.testing.assert_allclose(group_scores(a, [0], "l1")[0], [2.7, 2.5, 4.5, 4.0], rtol=1e-5)
    assert kept(wz.prune_filters(model, rate=0.5, criterion="l1"), "c") == [0, 0, 1, 1]


def test_l2_prunes_lowest_l2_filters():
    model = one_conv_model()
    model.get_layer("c").kernel.assign(_abcd_kernel())
    a = ChannelAnalysis(model)
    np.testing.assert_allclose(group_scores(a, [0], "l2")[0], [0.9, 2.5, 1.5, 4.0], rtol=1e-5)
    assert kept(wz.prune_filters(model, rate=0.5, criterion="l2"), "c") == [0, 1, 0, 1]


def test_l1_uses_the_output_axis_of_transposed_convs():
    model = one_conv_model(transpose=True)
    k = np.moveaxis(filters_with_norms([5.0, 1.0, 3.0, 2.0]), -1, -2)   # (h, w, out, in)
    model.get_layer("c").kernel.assign(k)
    assert kept(wz.prune_filters(model, rate=0.5), "c") == [1, 0, 1, 0]


def test_l1_sums_over_the_producers_of_a_group():
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(4, 3, use_bias=False, name="a")(inp)
    b = L.Conv2D(4, 3, use_bias=False, name="b")(inp)
    y = L.Flatten()(L.Add()([a, b]))
    model = keras.Model(inp, L.Dense(2)(y))
    model.get_layer("a").kernel.assign(filters_with_norms([1.0, 5.0, 2.0, 2.0]))
    model.get_layer("b").kernel.assign(filters_with_norms([4.0, 0.5, 2.0, 1.0]))
    # alone, a would drop {0, 2|3} and b {1, 3}; together (5, 5.5, 4, 3) drop {2, 3}
    pruned = wz.prune_filters(model, rate=0.5)
    assert kept(pruned, "a") == kept(pruned, "b") == [1, 1, 0, 0]


def test_bn_scale_uses_absolute_gamma():
    inp = keras.Input((6, 6, 1))
    y = L.Conv2D(4, 3, use_bias=False, name="c")(inp)
    y = L.BatchNormalization(name="bn")(y)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(y)))
    model.get_layer("c").kernel.assign(filters_with_norms([9.0, 1.0, 1.0, 9.0]))
    model.get_layer("bn").gamma.assign(np.array([0.1, -3.0, 1.0, 0.2], np.float32))
    assert kept(wz.prune_filters(model, rate=0.5, criterion="bn_scale"), "c") == [0, 1, 1, 0]
    assert kept(wz.prune_filters(model, rate=0.5, criterion="l1"), "c") == [1, 0, 0, 1]


def test_taylor_on_a_real_batch(fashion_test):
    import tensorflow as tf
    x, y = fashion_test[0][:64], fashion_test[1][:64]
    inp = keras.Input((28, 28, 1))
    h = L.Conv2D(8, 3, strides=2, name="c1")(inp)
    h = L.ReLU()(h)
    h = L.Conv2D(8, 3, strides=2, name="c2")(h)
    model = keras.Model(inp, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(h)))
    kernel = model.get_layer("c1").kernel
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
    grad = tape.gradient(loss, kernel.value).numpy()
    expect = np.abs((kernel.numpy() * grad).reshape(-1, 8).sum(0))
    assert expect.max() > 0
    a = ChannelAnalysis(model)
    gid = a.group_of("c1").id
    np.testing.assert_allclose(group_scores(a, [gid], "taylor", data=(x, y))[gid], expect,
                               rtol=1e-4, atol=1e-9)
    pruned = wz.prune_filters(model, rate=0.5, criterion="taylor", data=(x, y))
    assert sorted(np.flatnonzero(kept(pruned, "c1"))) == sorted(np.argsort(expect)[4:])


def test_random_is_seeded():
    model = zoo.plain_cnn(width=8)

    def masks(seed):
        p = wz.prune_filters(model, rate=0.5, criterion="random", seed=seed)
        return np.concatenate([l.mask.numpy() for l in p.layers if isinstance(l, wz.PruneWrapper)])

    first, again, other = masks(3), masks(3), masks(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    l1 = wz.prune_filters(model, rate=0.5)
    assert int(first.sum()) == int(np.concatenate(
        [l.mask.numpy() for l in l1.layers if isinstance(l, wz.PruneWrapper)]).sum())


def test_round_to_keeps_multiples():
    model = zoo.plain_cnn(width=8)         # groups of 8, 16, 32, 32
    pruned = wz.prune_filters(model, rate=0.6, round_to=4)
    counts = {n: int(pruned.get_layer(n).mask.numpy().sum())
              for n in ("block1_conv", "block2_conv", "block3_conv", "fc1")}
    # keep 8-4=4, 16-9=7 -> 8, 32-19=13 -> 16
    assert counts == {"block1_conv": 4, "block2_conv": 8, "block3_conv": 16, "fc1": 16}
    stripped = wz.strip_pruning(pruned)
    assert stripped.get_layer("block2_conv").kernel.shape == (3, 3, 4, 8)


def test_units_to_keep():
    assert units_to_keep(64, 0.5) == 32
    assert units_to_keep(10, 0.33, round_to=4) == 8
    assert units_to_keep(16, 0.0) == 16
    assert units_to_keep(3, 0.99) == 1
    assert units_to_keep(16, 0.99, round_to=8) == 8
    assert units_to_keep(6, 0.5, round_to=4) == 4


def test_a_group_never_drops_to_zero(fashion_images):
    model = zoo.plain_cnn(width=8)
    pruned = wz.prune_filters(model, rate=0.99)
    for layer in pruned.layers:
        if isinstance(layer, wz.PruneWrapper):
            assert layer.mask.numpy().sum() == 1, layer.name
    stripped = wz.strip_pruning(pruned)
    assert stripped.get_layer("block1_conv").kernel.shape == (3, 3, 1, 1)
    assert stripped.get_layer("fc1").kernel.shape == (3 * 3 * 1, 1)
    np.testing.assert_allclose(np.asarray(pruned(fashion_images)),
                               np.asarray(stripped(fashion_images)), atol=1e-5)


def test_rate_zero_changes_nothing():
    model = zoo.plain_cnn(width=4)
    assert not wz.is_pruned(wz.prune_filters(model, rate=0.0))
    pruned = wz.prune_filters(model, rate=0.0, rates={"block2_conv": 0.5})
    assert [l.name for l in pruned.layers if isinstance(l, wz.PruneWrapper)] == \
        ["block2_conv", "block2_bn"]


@pytest.mark.parametrize("criterion", ["l1", "l2", "random"])
def test_criteria_on_every_zoo_model(criterion):
    for make in (zoo.resnet_cifar, zoo.tiny_inception, zoo.tiny_mobilenet):
        model = make(width=4) if make is not zoo.resnet_cifar else make(depth=8, width=4)
        pruned = wz.prune_filters(model, rate=0.5, criterion=criterion)
        for layer in pruned.layers:
            if isinstance(layer, wz.PruneWrapper):
                assert 0 < layer.mask.numpy().sum() < layer.mask.shape[0]


# -- the criteria registry ----------------------------------------------------------------
def test_registry_get_names_and_errors():
    from wootz_keras.pruning import importance
    assert isinstance(importance.get("l1"), importance.L1)
    assert importance.get(importance.get("l2")) is importance.get("l2")
    assert set(wz.CRITERIA) <= set(importance.names())
    for bad in ("l3", "L1", None, 3):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            importance.get(bad)
    with pytest.raises(ValueError, match="already registered"):
        importance.register("l1", importance.L2())


def test_custom_importance_subclass_and_callable():
    from wootz_keras.pruning import importance
    model = one_conv_model()
    model.get_layer("c").kernel.assign(_abcd_kernel())     # max |w|: A .3 B 2.5 C .5 D 4

    class MaxAbs(importance.Importance):
        def filter_scores(self, filters):
            return np.abs(filters).max(axis=1)
    importance.register("test_max_abs", MaxAbs, overwrite=True)
    assert kept(wz.prune_filters(model, rate=0.5, criterion="test_max_abs"), "c") == [0, 1, 0, 1]
    assert kept(wz.prune_filters(model, rate=0.5, criterion=MaxAbs()), "c") == [0, 1, 0, 1]
    fn = lambda filters: -np.abs(filters).max(axis=1)     # noqa: E731 - the opposite choice
    assert kept(wz.prune_filters(model, rate=0.5, criterion=fn), "c") == [1, 0, 1, 0]
    small = wz.prune_compact(model, rate=0.5, criterion=fn)
    np.testing.assert_array_equal(small.get_layer("c").kernel.numpy(), _abcd_kernel()[..., [0, 2]])


def test_update_pruning_step_takes_importance_objects():
    from wootz_keras.pruning import importance
    assert wz.UpdatePruningStep(criterion=importance.get("l2")).criterion is importance.get("l2")
    with pytest.raises(ValueError, match="needs a batch"):
        wz.UpdatePruningStep(criterion=importance.Taylor())


def test_scores_are_cached_per_analysis_and_criterion(monkeypatch):
    from wootz_keras.pruning import importance
    a = ChannelAnalysis(zoo.resnet_cifar(depth=8, width=4))
    calls = []
    original = importance.L1.group_scores

    def counting(self, analysis, targets, **kwargs):
        calls.append(list(targets))
        return original(self, analysis, targets, **kwargs)
    monkeypatch.setattr(importance.L1, "group_scores", counting)
    nets = [wz.prune_compact(a, rate=r) for r in (0.25, 0.5, 0.75)]
    assert len(calls) == 1                          # scored once, for every prunable group
    assert nets[0].count_params() > nets[1].count_params() > nets[2].count_params()
    wz.prune_compact(a, rate=0.5, criterion="l2")   # another criterion: its own scores
    wz.prune_compact(a.model, rate=0.5)             # a model: a fresh analysis, no cache
    assert len(calls) == 2
    a.clear_cache()
    wz.prune_compact(a, rate=0.5)
    assert len(calls) == 3
