"""PruneWrapper: masked models train, follow tfmot schedules, and round-trip
through `.keras` files."""

import keras
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from keras import layers as L

import wootz_keras as wz
from wootz_keras import zoo


def wrappers(model):
    return {l.name: l for l in model._flatten_layers(include_self=False)
            if isinstance(l, wz.PruneWrapper)}


def feature(model, layer_name, x):
    sub = keras.Model(model.inputs[0], model.get_layer(layer_name).output)
    return np.asarray(sub(x, training=False))


@pytest.fixture(scope="module")
def data(fashion_test):
    x, y = fashion_test
    return x[:128], y[:128]


def test_wrapper_masks_output_channels():
    layer = wz.PruneWrapper(L.Dense(4, bias_initializer="ones"), rate=0.5)
    out = layer(np.ones((2, 3), np.float32))
    assert out.shape == (2, 4) and layer.name == layer.layer.name
    layer.mask.assign([1.0, 0.0, 1.0, 0.0])
    out = np.asarray(layer(np.ones((2, 3), np.float32)))
    assert np.all(out[:, [1, 3]] == 0) and np.all(out[:, [0, 2]] != 0)
    assert [v.name for v in layer.non_trainable_weights] == ["mask"]     # no schedule, no step
    scheduled = wz.PruneWrapper(L.Dense(4), schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0))
    scheduled(np.ones((2, 3), np.float32))
    assert {"mask", "pruning_step"} <= {v.name for v in scheduled.non_trainable_weights}
    assert len(layer.trainable_weights) == 2            # the Dense's kernel and bias only


def test_masked_model_trains_and_masked_channels_stay_zero(data):
    x, y = data
    pruned = wz.prune_filters(zoo.plain_cnn(width=8), rate=0.5)
    masks_before = {n: w.mask.numpy().copy() for n, w in wrappers(pruned).items()}
    pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = pruned.fit(x, y, epochs=2, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    for name, w in wrappers(pruned).items():
        np.testing.assert_array_equal(w.mask.numpy(), masks_before[name])
    for name in ("block1_relu", "block2_relu", "block3_relu"):
        conv = name.replace("relu", "conv")
        off = pruned.get_layer(conv).mask.numpy() == 0
        feats = feature(pruned, name, x[:16])
        assert off.sum() > 0
        assert np.all(feats[..., off] == 0), name
        assert np.any(feats[..., ~off] != 0), name
    stripped = wz.strip_pruning(pruned)
    np.testing.assert_allclose(np.asarray(pruned(x[:32])), np.asarray(stripped(x[:32])), atol=1e-4)


def test_schedule_reaches_target_over_fit(data):
    x, y = data                               # 128 images / 32 = 4 steps an epoch
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6,
                                                    frequency=1)
    pruned = wz.prune_filters(zoo.plain_cnn(width=8), rate=0.5, schedule=schedule)
    ws = wrappers(pruned)
    assert all(w.mask.numpy().min() == 1.0 for w in ws.values())   # starts dense
    sums = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            sums.append(int(ws["block3_conv"].mask.numpy().sum()))

    pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=2, batch_size=32, verbose=0,
               callbacks=[wz.UpdatePruningStep(), Record()])
    assert sums == sorted(sums, reverse=True)                   # monotone
    assert 16 < sums[1] < 32                                    # gradual, not one-shot
    assert sums[-1] == 16
    expect = {"block1_conv": 4, "block1_bn": 4, "block2_conv": 8, "block3_conv": 16, "fc1": 16}
    for name, n in expect.items():
        assert int(ws[name].mask.numpy().sum()) == n, name
    assert int(ws["fc1"].pruning_step.numpy()) == 8
    stripped = wz.strip_pruning(pruned)
    assert stripped.get_layer("block2_conv").kernel.shape == (3, 3, 4, 8)
    assert stripped.get_layer("fc1").kernel.shape == (3 * 3 * 16, 16)
    np.testing.assert_allclose(np.asarray(pruned(x[:16])), np.asarray(stripped(x[:16])),
                               atol=1e-4)


def test_schedule_with_constant_sparsity(data):
    x, y = data
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=2, frequency=1)
    pruned = wz.prune_filters(zoo.plain_cnn(width=4), rates={"block2_conv": 0.5},
                              schedule=schedule)
    pruned.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[wz.UpdatePruningStep()])
    assert int(pruned.get_layer("block2_conv").mask.numpy().sum()) == 4
    assert not isinstance(pruned.get_layer("block1_conv"), wz.PruneWrapper)


def test_update_pruning_step_rejects_bad_criteria():
    with pytest.raises(ValueError, match="taylor"):
        wz.UpdatePruningStep(criterion="taylor")
    with pytest.raises(ValueError, match="nonsense"):
        wz.UpdatePruningStep(criterion="nonsense")


def test_keras_file_round_trip_keeps_masks_and_outputs(tmp_path, data):
    x, _ = data
    model = zoo.resnet_cifar(depth=8, width=4)
    pruned = wz.prune_filters(model, rate=0.5)
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = keras.models.load_model(path)
    assert wz.is_pruned(loaded)
    before, after = wrappers(pruned), wrappers(loaded)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name].mask.numpy(), after[name].mask.numpy())
        assert after[name].rate == 0.5
    np.testing.assert_allclose(np.asarray(pruned(x[:16])), np.asarray(loaded(x[:16])), atol=1e-6)
    stripped = wz.strip_pruning(loaded)
    assert not wz.is_pruned(stripped)
    np.testing.assert_allclose(np.asarray(loaded(x[:16])), np.asarray(stripped(x[:16])), atol=1e-4)
    assert stripped.get_layer("stem_conv").kernel.shape == (3, 3, 1, 2)
    assert stripped.count_params() == wz.count_params(wz.strip_pruning(pruned))


def test_keras_file_round_trip_keeps_the_schedule(tmp_path):
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, 10, frequency=2)
    pruned = wz.prune_filters(zoo.plain_cnn(width=4), rate=0.5, schedule=schedule)
    pruned.get_layer("block1_conv").pruning_step.assign(7)
    path = tmp_path / "scheduled.keras"
    pruned.save(path)
    w = keras.models.load_model(path).get_layer("block1_conv")
    assert isinstance(w.schedule, tfmot.sparsity.keras.PolynomialDecay)
    assert w.schedule.get_config() == schedule.get_config()
    assert int(w.pruning_step.numpy()) == 7
