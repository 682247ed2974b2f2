"""strip_pruning (wootz_keras.pruning.surgery): masked -> physically smaller."""

import keras
import numpy as np
import pytest
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo


def randomise_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.3, c))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0.0, 0.5, c))
    return model


def max_diff(a, b, x):
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
               for u, v in zip(keras.tree.flatten(a(x)), keras.tree.flatten(b(x))))


ZOO = {
    "plain_cnn": lambda: zoo.plain_cnn(width=8),
    "resnet8": lambda: zoo.resnet_cifar(depth=8, width=8),
    "tiny_inception": lambda: zoo.tiny_inception(width=8),
    "tiny_mobilenet": lambda: zoo.tiny_mobilenet(width=8),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_strip_zoo_models(name, fashion_images):
    model = randomise_bn(ZOO[name]())
    pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    assert max_diff(pruned, stripped, fashion_images) <= 1e-4
    assert max_diff(model, pruned, fashion_images) > 1e-4
    assert stripped.name == model.name
    assert [l.name for l in stripped.layers] == [l.name for l in model.layers]
    assert 0.15 * model.count_params() < stripped.count_params() < 0.45 * model.count_params()
    assert wz.count_flops(stripped) < 0.45 * wz.count_flops(model)


def test_strip_mobilenet_v2_application():
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                           classes=10)
    randomise_bn(model)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    pruned = wz.prune_filters(model, rate=0.5)
    stripped = wz.strip_pruning(pruned)
    assert max_diff(pruned, stripped, x) <= 1e-4
    assert stripped.count_params() < 0.5 * model.count_params()


def test_strip_without_wrappers_returns_the_model():
    model = zoo.plain_cnn(width=4)
    assert wz.strip_pruning(model) is model


def test_prune_and_strip_leave_their_inputs_alone(fashion_images):
    model = zoo.plain_cnn(width=8)
    weights = [w.copy() for w in model.get_weights()]
    before = np.asarray(model(fashion_images))
    pruned = wz.prune_filters(model, rate=0.5)
    masked = np.asarray(pruned(fashion_images))
    wz.strip_pruning(pruned)
    assert not wz.is_pruned(model)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before, np.asarray(model(fashion_images)))
    np.testing.assert_array_equal(masked, np.asarray(pruned(fashion_images)))


def test_strip_follows_hand_set_masks(fashion_images):
    model = randomise_bn(zoo.plain_cnn(width=8))
    pruned = wz.prune_filters(model, rate=0.5)
    keep = np.array([1, 1, 0, 1, 0, 0, 0, 1], np.float32)
    for name in ("block1_conv", "block1_bn"):
        pruned.get_layer(name).mask.assign(keep)
    stripped = wz.strip_pruning(pruned)
    idx = np.flatnonzero(keep)
    np.testing.assert_array_equal(stripped.get_layer("block1_conv").kernel.numpy(),
                                  model.get_layer("block1_conv").kernel.numpy()[..., idx])
    rows = model.get_layer("block2_conv").kernel.numpy()[:, :, idx]
    keep2 = pruned.get_layer("block2_conv").mask.numpy() > 0.5
    np.testing.assert_array_equal(stripped.get_layer("block2_conv").kernel.numpy(),
                                  rows[..., keep2])
    assert max_diff(pruned, stripped, fashion_images) <= 1e-4


def test_inconsistent_masks_are_an_error():
    pruned = wz.prune_filters(zoo.plain_cnn(width=8), rate=0.5)
    m = pruned.get_layer("block1_bn").mask.numpy()
    pruned.get_layer("block1_bn").mask.assign(1.0 - m)
    with pytest.raises(ValueError, match="block1_(conv|bn).*block1_(conv|bn)"):
        wz.strip_pruning(pruned)


def test_masking_unremovable_channels_is_an_error():
    inp = keras.Input((6,))
    h = L.Dense(4, name="hidden")(inp)
    out = wz.PruneWrapper(L.Dense(3, name="out"))(h)
    model = keras.Model(inp, out)
    model.get_layer("out").mask.assign([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="'out'"):
        wz.strip_pruning(model)


def test_stripped_model_is_plain_keras(tmp_path, fashion_images):
    stripped = wz.strip_pruning(wz.prune_filters(zoo.resnet_cifar(depth=8, width=4), rate=0.5))
    assert not any(isinstance(l, wz.PruneWrapper) for l in stripped._flatten_layers())
    path = tmp_path / "small.keras"
    stripped.save(path)
    loaded = keras.models.load_model(path)
    assert max_diff(stripped, loaded, fashion_images) == 0.0
    again = wz.strip_pruning(wz.prune_filters(loaded, rate=0.5))      # prunable again
    assert again.get_layer("stem_conv").kernel.shape == (3, 3, 1, 1)


def test_strip_keeps_frozen_layers_whole(fashion_images):
    """Layers outside every pruned group keep their weights bit for bit."""
    model = zoo.plain_cnn(width=8)
    stripped = wz.strip_pruning(wz.prune_filters(model, rates={"block2_conv": 0.5}))
    np.testing.assert_array_equal(stripped.get_layer("block1_conv").kernel.numpy(),
                                  model.get_layer("block1_conv").kernel.numpy())
    assert stripped.get_layer("block2_conv").kernel.shape == (3, 3, 8, 8)
    assert stripped.get_layer("block3_conv").kernel.shape == (3, 3, 8, 32)
    np.testing.assert_array_equal(stripped.get_layer("fc1").kernel.numpy(),
                                  model.get_layer("fc1").kernel.numpy())


def test_pruned_models_own_their_weights(fashion_images):
    """Weights handed over as tensor snapshots stay independent both ways: the
    masked copy, the stripped model and prune_compact's model never see
    updates of the original or of each other (kept whole or sliced alike)."""
    model = randomise_bn(zoo.resnet_cifar(depth=8, width=8))
    x = fashion_images[:8]
    before = [w.copy() for w in model.get_weights()]
    masked = wz.prune_filters(model, rate=0.5)
    small = wz.strip_pruning(masked)
    compact = wz.prune_compact(model, rate=0.0)        # every weight kept whole
    ref_masked, ref_small, ref_compact = (np.asarray(m(x)) for m in (masked, small, compact))
    for m in (masked, small, compact):                 # update the copies ...
        for v in m.trainable_variables:
            v.assign(v + 1.0)
    for got, want in zip(model.get_weights(), before):  # ... the original is untouched
        np.testing.assert_array_equal(got, want)
    for m in (masked, small, compact):                 # and the other way round
        for v in m.trainable_variables:
            v.assign(v - 1.0)
    for v in model.trainable_variables:
        v.assign(v * 0.5)
    for m, ref in ((masked, ref_masked), (small, ref_small), (compact, ref_compact)):
        np.testing.assert_allclose(np.asarray(m(x)), ref, atol=1e-5)
