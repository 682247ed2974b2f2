"""The README's Python examples run as written (each in a fresh process)."""

import os
import re
import subprocess
import sys

import keras
import pytest

from wootz_keras import data, zoo
from wootz_keras.workflow.summary import use_exported_snippet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snippet(name):
    text = open(os.path.join(REPO, "README.md")).read()
    m = re.search(rf"<!-- test: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README has no example marked {name!r}"
    return m.group(1)


def _python(code, cwd):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_closing_summary_prints_the_readme_example():
    assert snippet("use-exported").strip() == \
        use_exported_snippet("exported/wootz_small_winner").strip()


def test_use_the_exported_model(tmp_path):
    import wootz_keras as wz
    x, y = data.load_fashion_mnist("train", limit=512)
    model = zoo.resnet_cifar(depth=8, width=8)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    wz.export(model, tmp_path / "exported" / "wootz_small_winner",
              formats=("tflite", "onnx"), verify_data=x[:50], latency_runs=2)
    proc = _python(snippet("use-exported"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    classes = [int(c) for c in re.findall(r"\d+", proc.stdout.strip().splitlines()[-1])]
    assert len(classes) == 8 and all(0 <= c < 10 for c in classes)


def test_your_own_model_and_data(tmp_path):
    x, y = data.load_fashion_mnist("train", limit=500, seed=2)
    data.write_image_folder(x, y, tmp_path / "my_images", size=(32, 32))
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    r = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    r = keras.layers.Conv2D(16, 3, padding="same")(r)
    h = keras.layers.ReLU()(keras.layers.Add()([h, r]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    d = data.load_data_for(model, str(tmp_path / "my_images"))
    model.fit(d.train.batches(32, shuffle=True), epochs=2, verbose=0, shuffle=False)
    model.save(tmp_path / "my_model.keras")
    proc = _python(snippet("own-model"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "auto" in proc.stdout
    assert (tmp_path / "my_run.sqlite").exists()
    if "meets" in proc.stdout:
        assert (tmp_path / "exported" / "mine" / "model.tflite").exists()
