"""wootz_keras.export on every kind of Keras model: Sequential (fresh, .keras,
legacy .h5), nested, pruned; a fast subset of benchmarks/export_sweep.py.

`tf2onnx.convert.from_keras` fails on every Sequential (KeyError
'keras_tensor_N'); the exporter converts ONNX from the SavedModel instead.
Each export is re-checked here independently in onnxruntime / LiteRT on real
Fashion-MNIST images the exporter did not see.
"""

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

import wootz_keras as wz
from wootz_keras.data import load_fashion_mnist
from wootz_keras.export import FP32_ATOL, INT8_MIN_TOP1, ExportError, export
from wootz_keras.testing import calibrate, randomise


def sequential_cnn(name="sequential_cnn"):
    """The model of the issue: Conv2D / BatchNormalization / MaxPooling2D / Flatten / Dense."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(16, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(),
        L.MaxPooling2D(),
        L.Conv2D(32, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(),
        L.MaxPooling2D(),
        L.Flatten(), L.Dense(10, activation="softmax")], name=name)


def nested_model():
    """A Functional model holding a Functional feature extractor and a Sequential head."""
    inp = keras.Input((28, 28, 1), name="features_in")
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inp)))
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(24, 3, strides=2, padding="same")(y)))
    features = keras.Model(inp, y, name="features")
    head = keras.Sequential([L.GlobalAveragePooling2D(), L.Dense(16), L.ReLU(), L.Dense(10)],
                            name="head")
    x = keras.Input((28, 28, 1), name="image")
    return keras.Model(x, head(features(L.Rescaling(2.0, offset=-1.0)(x))), name="nested")


@pytest.fixture(scope="module")
def data():
    x, y = load_fashion_mnist("train", limit=4000, seed=0)
    return {"x": x, "y": y,
            "verify": load_fashion_mnist("test", limit=300, seed=1)[0],
            "unseen": load_fashion_mnist("test", limit=40, seed=2)[0],
            "calib": load_fashion_mnist("train", limit=200, seed=7)[0]}


@pytest.fixture(scope="module")
def trained_sequential(data):
    keras.utils.set_random_seed(0)
    model = sequential_cnn()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(data["x"], data["y"], epochs=2, batch_size=64, verbose=0)
    return model


def _onnx_outputs(path, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    return inp, out, sess.run(None, {inp.name: x})[0]


def _tflite_outputs(path, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path)
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(outp["index"])


def _assert_all_formats_match(out_dir, model, x, tol=FP32_ATOL):
    ref = np.asarray(model(x, training=False))
    tol = tol * max(1.0, float(np.abs(ref).max()))
    inp, _, got = _onnx_outputs(os.path.join(out_dir, "model.onnx"), x)
    assert np.abs(got - ref).max() <= tol
    assert np.abs(_tflite_outputs(os.path.join(out_dir, "model.tflite"), x) - ref).max() <= tol
    sig = tf.saved_model.load(os.path.join(out_dir, "savedmodel")).signatures["serving_default"]
    (name,) = sig.structured_input_signature[1]
    got = list(sig(**{name: tf.constant(x)}).values())[0].numpy()
    assert np.abs(got - ref).max() <= tol
    return inp, name


def test_fresh_sequential_exports_to_every_format(trained_sequential, data, tmp_path):
    manifest = export(trained_sequential, tmp_path, verify_data=data["verify"], latency_runs=3)
    assert {e["status"] for e in manifest["formats"].values()} == {"ok"}
    x = data["unseen"]
    inp, signature_input = _assert_all_formats_match(str(tmp_path), trained_sequential, x)
    # names stay readable (not "keras_tensor_N"), the batch dimension dynamic
    assert inp.name == signature_input == manifest["input_name"] == "input_layer"
    assert inp.shape == ["batch", 28, 28, 1]
    assert manifest["formats"]["onnx"]["input_shape"] == ["batch", 28, 28, 1]
    _, out, y1 = _onnx_outputs(str(tmp_path / "model.onnx"), x[:1])
    assert out.name == "output_0" and y1.shape == (1, 10)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_reloaded_sequential_exports(trained_sequential, data, tmp_path, suffix):
    path = str(tmp_path / f"model{suffix}")
    trained_sequential.save(path)
    reloaded = keras.models.load_model(path, compile=False)
    assert isinstance(reloaded, keras.Sequential)
    out_dir = tmp_path / "out"
    manifest = export(reloaded, out_dir, verify_data=data["verify"][:64], latency_runs=3)
    assert {e["status"] for e in manifest["formats"].values()} == {"ok"}
    _assert_all_formats_match(str(out_dir), trained_sequential, data["unseen"])


def test_nested_model_exports(data, tmp_path):
    model = randomise(nested_model(), data["calib"][:32])
    manifest = export(model, tmp_path, verify_data=data["verify"][:64], latency_runs=3)
    assert {e["status"] for e in manifest["formats"].values()} == {"ok"}
    inp, _ = _assert_all_formats_match(str(tmp_path), model, data["unseen"])
    assert inp.name == "image"


@pytest.mark.parametrize("build", [sequential_cnn, nested_model], ids=["sequential", "nested"])
def test_pruned_model_exports_stripped(data, tmp_path, build):
    model = randomise(build(), data["calib"][:32])
    pruned = wz.prune_filters(model, rate=0.5)
    calibrate(pruned, data["calib"][:32])
    # given the masked model, export strips it and checks against the masked outputs
    manifest = export(pruned, tmp_path, verify_data=data["verify"][:64], latency_runs=3)
    assert manifest["stripped_pruning"] is True
    assert manifest["params"] < model.count_params()
    assert {e["status"] for e in manifest["formats"].values()} == {"ok"}
    _assert_all_formats_match(str(tmp_path), pruned, data["unseen"])


def test_sequential_float16_and_int8(trained_sequential, data, tmp_path):
    fp16 = export(trained_sequential, tmp_path / "fp16", formats=["tflite"], quantize="float16",
                  verify_data=data["verify"], latency_runs=3)["formats"]["tflite"]
    assert fp16["status"] == "ok" and fp16["precision"] == "float16"
    int8 = export(trained_sequential, tmp_path / "int8", formats=["tflite"], quantize="int8",
                  representative_data=data["calib"], verify_data=data["verify"],
                  latency_runs=3)["formats"]["tflite"]
    assert int8["status"] == "ok" and int8["input_dtype"] == "int8"
    assert int8["top1_agreement"] >= INT8_MIN_TOP1


def test_unsupported_op_is_named(data, tmp_path):
    class Lgamma(L.Layer):
        def call(self, x):
            return tf.math.lgamma(x + 1.0)

    x = keras.Input((28, 28, 1), name="image")
    model = keras.Model(x, L.Dense(10)(L.Flatten()(Lgamma(name="odd_op")(x))))
    with pytest.raises(ExportError) as info:
        export(model, tmp_path / "out", formats=["onnx"], verify_data=data["verify"][:8])
    message = info.value.failed["onnx"]
    assert "Lgamma" in message and "odd_op" in message
    assert "\n" not in message


def test_converters_are_quiet(trained_sequential, data, tmp_path, caplog, capfd):
    with caplog.at_level(logging.INFO):
        export(trained_sequential, tmp_path, formats=["tflite", "onnx"],
               verify_data=data["verify"][:16], latency_runs=2)
    noisy = [r for r in caplog.records if r.name.split(".")[0] in ("tensorflow", "tf2onnx")]
    assert not noisy, [r.getMessage() for r in noisy]
    err = capfd.readouterr().err
    assert "tf2onnx" not in err and "SavedModel" not in err, err[-2000:]


def test_grouped_conv_and_exact_gelu_convert_to_onnx(data, tmp_path):
    """ConvNeXt's pieces: Keras runs Conv2D(groups>1) as an XLA-compiled function
    (tf2onnx left it an opaque call) and exact GELU uses Erfc (no tf2onnx handler)."""
    x = keras.Input((28, 28, 1), name="image")
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.Conv2D(8, 3, padding="same", groups=8, name="depthwise_as_groups")(y)
    y = L.Activation(lambda t: keras.activations.gelu(t, approximate=False), name="gelu")(y)
    model = keras.Model(x, L.Dense(10)(L.GlobalAveragePooling2D()(y)), name="convnext_bits")
    manifest = export(model, tmp_path, formats=["onnx"], verify_data=data["verify"][:32],
                      latency_runs=2)
    assert manifest["formats"]["onnx"]["status"] == "ok"
    _, _, got = _onnx_outputs(str(tmp_path / "model.onnx"), data["unseen"])
    ref = np.asarray(model(data["unseen"]))
    assert np.abs(got - ref).max() <= FP32_ATOL * max(1.0, np.abs(ref).max())
