"""wootz_keras.data: the user's model file and the loss / metric to train and select with."""

import warnings

import keras
import numpy as np
import pytest

import wootz_keras as wz
from wootz_keras.data import DataError, load_data, load_model, training_spec
from wootz_keras.zoo import plain_cnn


def classifier(activation="softmax", classes=10, input_shape=(28, 28, 1)):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=activation)(x))


@keras.saving.register_keras_serializable("wootz_test")
def custom_loss(y_true, y_pred):
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_compiled_loss_and_metric_are_kept(tmp_path, suffix):
    model = classifier()
    model.compile("adam", "categorical_crossentropy", metrics=["top_k_categorical_accuracy"])
    path = tmp_path / f"m{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that .h5 is legacy
        model.save(path)
    loaded = load_model(str(path))
    spec = training_spec(loaded, loss="mse", metric="accuracy")  # compiled ones win
    assert (spec.loss_origin, spec.metric_origin) == ("compiled", "compiled")
    assert spec.metric_name == "top_k_categorical_accuracy" and spec.label_format == "sparse"
    assert type(spec.metric).__name__ == "SparseTopKCategoricalAccuracy"
    assert type(spec.loss).__name__ == "SparseCategoricalCrossentropy"
    one_hot = training_spec(loaded, label_format="one_hot")
    assert type(one_hot.metric).__name__ == "TopKCategoricalAccuracy"
    assert type(one_hot.loss).__name__ == "CategoricalCrossentropy"


def test_pruned_model_file_loads(tmp_path):
    pruned = wz.prune_filters(plain_cnn(), rate=0.5)
    pruned.save(tmp_path / "pruned.keras")
    loaded = load_model(tmp_path / "pruned.keras")
    assert loaded.count_params() == pruned.count_params()


def test_unrestorable_compile_config_falls_back(tmp_path):
    model = classifier()
    model.compile("adam", custom_loss, metrics=["accuracy"])
    model.save(tmp_path / "custom.keras")
    keras.saving.get_custom_objects().pop("wootz_test>custom_loss")
    try:
        with pytest.warns(UserWarning, match="loaded without its compile config"):
            loaded = load_model(tmp_path / "custom.keras")
    finally:
        keras.saving.get_custom_objects()["wootz_test>custom_loss"] = custom_loss
    assert not loaded.compiled
    spec = training_spec(loaded, loss="categorical_crossentropy", metric="auc")
    assert (spec.loss_origin, spec.metric_origin) == ("given", "given")


def test_given_then_default_names():
    spec = training_spec(classifier(activation=None))
    assert (spec.loss_origin, spec.metric_origin) == ("default", "default")
    assert spec.from_logits and spec.loss.get_config()["from_logits"]
    assert type(spec.metric).__name__ == "SparseCategoricalAccuracy"
    assert spec.metric_name == "accuracy"
    probs = training_spec(classifier(), loss="sparse_categorical_crossentropy")
    assert not probs.from_logits and not probs.loss.get_config()["from_logits"]


def test_metric_without_sparse_form_one_hot_encodes(fashion_test):
    x, y = fashion_test
    model = classifier()
    spec = training_spec(model, metric="auc")
    assert spec.label_format == "one_hot" and spec.metric_name == "auc"
    assert type(spec.loss).__name__ == "CategoricalCrossentropy"
    spec.compile(model)
    data = load_data("fashion_mnist", train_limit=128, test_limit=64)
    history = model.fit(spec.adapt(data.train.batches(32)), epochs=1, verbose=0, shuffle=False)
    assert 0.0 <= history.history["auc"][0] <= 1.0
    _, yy = spec.adapt((x[:4], y[:4]))
    np.testing.assert_array_equal(np.argmax(yy, -1), y[:4])


def test_evaluated_metric_is_correct(fashion_test):
    x, y = fashion_test
    model = classifier()
    spec = training_spec(model, metric="accuracy")
    spec.compile(model)
    _, acc = model.evaluate(x, y, verbose=0)
    expected = np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)
    assert acc == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "no_such_loss"}, "--loss='no_such_loss' is not a Keras loss"),
    ({"metric": "no_such_metric"}, "--metric='no_such_metric' is not a Keras metric"),
    ({"metric": "mse"}, "--metric=mean_squared_error: MeanSquaredError is not a higher-is-better"),
])
def test_bad_names(kwargs, match):
    with pytest.raises(DataError, match=match):
        training_spec(classifier(), **kwargs)


def test_threshold_metric_on_logits():
    with pytest.raises(DataError, match="--metric=precision: thresholds need probabilities"):
        training_spec(classifier(activation=None), metric="precision")
    assert training_spec(classifier(), metric="precision").label_format == "one_hot"


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.keras", "no such file"),
    (lambda p: p, "is a folder"),
    (lambda p: (p / "m.txt", (p / "m.txt").write_text("x"))[0], r"is not a \.keras or \.h5"),
    (lambda p: (p / "bad.keras", (p / "bad.keras").write_bytes(b"junk"))[0], "cannot load"),
])
def test_bad_model_files(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
