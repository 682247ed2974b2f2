"""The pipeline end to end on real data: the tiny preset, a user's model on an
image folder, a tf.data pipeline with augmentation, a compiled non-default
metric, resuming after an interruption, and the auto mode's decisions."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import wootz_keras as wz
from wootz_keras import data, zoo
from wootz_keras.workflow import pipeline
from wootz_keras.workflow.presets import SCALES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# smaller than the tiny preset: these runs only check plumbing
QUICK = SCALES["tiny"].replace(num_configs=4, medians_sample=0, pretrain_steps=10,
                               max_steps=10, eval_every=10, init_size=100)


def _tool(args, cwd, timeout=600):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    env.pop("TF_CONFIG", None)
    return subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "run.py"), *map(str, args)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _user_cnn(input_shape, classes=10):
    """A user-style functional CNN: Rescaling first, a residual add, compiled
    with a non-default metric."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(x)
    for i in range(2):
        y = keras.layers.Conv2D(16, 3, padding="same", name=f"b{i}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"b{i}_bn1")(y)
        y = keras.layers.ReLU(name=f"b{i}_relu")(y)
        y = keras.layers.Conv2D(16, 3, padding="same", name=f"b{i}_conv2")(y)
        x = keras.layers.ReLU(name=f"b{i}_out")(keras.layers.Add(name=f"b{i}_add")([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="user_cnn")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    return model


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """600 real Fashion-MNIST images as 32x32 RGB PNGs in class folders."""
    x, y = data.load_fashion_mnist("train", limit=600, seed=3)
    return data.write_image_folder(x, y, tmp_path_factory.mktemp("imgs") / "fashion", size=(32, 32))


@pytest.fixture(scope="module")
def user_model(image_folder, tmp_path_factory):
    """The user's trained model (2 quick epochs on the folder), saved to .keras."""
    keras.utils.set_random_seed(0)
    model = _user_cnn((32, 32, 3))
    d = data.load_data_for(model, str(image_folder), seed=0)
    model.fit(d.train.batches(32, shuffle=True), epochs=2, verbose=0, shuffle=False)
    path = tmp_path_factory.mktemp("model") / "user_cnn.keras"
    model.save(path)
    return path


def test_tiny_preset_end_to_end_and_resume(tmp_path):
    """`wootz-run --scale=tiny` on Fashion-MNIST, killed while exploring, then rerun."""
    out, exp = tmp_path / "run", tmp_path / "exported"
    proc = _tool(["--scale=tiny", f"--out_dir={out}", f"--export_dir={exp}"], tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "journal.sqlite").exists():
        time.sleep(0.5)
    assert (out / "journal.sqlite").exists(), proc.communicate()[1][-3000:]
    time.sleep(2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "teacher.keras").exists()          # finished stages stay finished
    proc = _tool(["--scale=tiny", f"--out_dir={out}", f"--export_dir={exp}"], tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "teacher: loading" in stdout
    figures = json.loads((out / "figures.json").read_text())
    assert {"auto", "default"} <= set(figures["modes"])
    assert figures["speedup_auto"] is not None
    for name in ("report.md", "results.json", "results.csv", "accuracy_vs_size.png"):
        assert (out / name).exists(), name
    assert "== wootz run finished ==" in stdout and str(out) in stdout
    from wootz_keras.search import Journal
    with Journal(str(out / "journal.sqlite")) as j:
        rows = j.rows("default")
    assert len({r["index"] for r in rows}) == len(rows)          # each candidate once
    if figures["modes"]["auto"]["winner_met"]:
        assert (exp / "model.tflite").exists() and (exp / "model.onnx").exists()
        assert str(exp) in stdout
    # no ANSI codes or carriage returns in a log
    assert "\r" not in stdout and "\x1b[" not in stdout


def test_user_model_on_an_image_folder(user_model, image_folder, tmp_path):
    """wootz-run --model=... --data=<folder>: no teacher training, the model's
    compiled metric is the objective's 'accuracy'."""
    out = tmp_path / "run"
    proc = _tool(["--scale=tiny", f"--model={user_model}", f"--data={image_folder}",
                  f"--out_dir={out}", "--export_dir=", "--num_configs=4", "--val_size=150",
                  "--max_steps=10", "--pretrain_steps=10"], tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert not (out / "teacher.keras").exists()
    figures = json.loads((out / "figures.json").read_text())
    assert figures["metric"] == "top2"
    assert "validation top2" in stdout


def test_tf_data_pipeline_with_augmentation(tmp_path):
    """The library with a tf.data pipeline (random flips) as training data."""
    import tensorflow as tf
    x, y = data.load_fashion_mnist("train", limit=1500, seed=0)
    teacher = zoo.resnet_cifar(8, width=8)
    teacher.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    teacher.fit(x[:1000], y[:1000], epochs=1, verbose=0)
    augmented = tf.data.Dataset.from_tensor_slices((x[:1000], y[:1000])).map(
        lambda a, b: (tf.image.random_flip_left_right(a, seed=1), b)).batch(32)
    run = pipeline.RunData(data.as_split(augmented), data.as_split((x[1000:1250], y[1000:1250])),
                           data.as_split((x[1250:], y[1250:])), "augmented Fashion-MNIST",
                           (28, 28, 1), 10)
    figures = pipeline.run_pipeline(QUICK, str(tmp_path / "run"), teacher=teacher, data=run)
    assert figures["modes"]["default"]["tried"] >= 1
    assert figures["metric"] == "accuracy"


@pytest.mark.parametrize("args, culprit", [
    (["--data=/no/such/folder"], "/no/such/folder"),
    (["--scale=huge"], "--scale"),
    (["--num_configs=0"], "--num_configs"),
    (["--objective=fastest:alpha=0.1x"], "--objective"),
    (["--model=missing.keras"], "missing.keras"),
])
def test_bad_flags_fail_in_one_line_before_any_work(tmp_path, args, culprit):
    proc = _tool([*args, f"--out_dir={tmp_path / 'run'}"], tmp_path)
    _, stderr = proc.communicate(timeout=120)
    last = [line for line in stderr.strip().splitlines() if line.strip()][-1]
    assert proc.returncode == 2, stderr[-2000:]
    assert last.startswith("wootz-run: error:") and culprit in last, last
    assert os.listdir(tmp_path) == []


def test_wrong_number_of_classes_is_one_line(user_model, tmp_path):
    """A folder of 12 classes for a 10-way model: a DataError before any training."""
    x, y = data.load_fashion_mnist("test", limit=240, seed=0)
    folder = data.write_image_folder(x, np.arange(len(y)) % 12, tmp_path / "twelve", size=(32, 32))
    proc = _tool(["--scale=tiny", f"--model={user_model}", f"--data={folder}",
                  f"--out_dir={tmp_path / 'run'}"], tmp_path)
    _, stderr = proc.communicate(timeout=300)
    last = stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("wootz-run: error:"), stderr[-2000:]
    assert "12" in last and str(folder) in last
    assert not (tmp_path / "run" / "journal.sqlite").exists()


@pytest.fixture(scope="module")
def quick_run():
    """A ResNet-8 trained one epoch on 1,000 real images, 4 configurations, and
    400 held-out images: explore(mode="auto") under an objective."""
    x, y = data.load_fashion_mnist("train", limit=1400, seed=0)
    keras.utils.set_random_seed(0)
    teacher = zoo.resnet_cifar(8, width=8)
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(x[:1000], y[:1000], epochs=1, verbose=0)
    configs = wz.ConfigSpace(wz.find_modules(teacher)).sample(4, seed=0)

    def run(objective, journal, **kwargs):
        return wz.explore(teacher, configs, (x[:1000], y[:1000]), (x[1000:], y[1000:]),
                          objective=objective, mode="auto", journal=str(journal),
                          progress=False, **kwargs)
    return run


def test_auto_stays_default_when_the_smallest_candidate_meets_the_target(quick_run, tmp_path):
    """The easy regime: auto costs exactly what default pruning costs."""
    result = quick_run("smallest_params:alpha=0.9", tmp_path / "j.sqlite",
                       protocol=wz.Protocol(max_steps=4, eval_every=2, batch_size=32))
    assert result.decision["pretrain"] is False and result.composed is None
    assert result.winner["met"] and result.tried == 1 and result.pretrain_seconds == 0


def test_auto_pretrains_when_the_smallest_default_candidate_falls_short(quick_run, tmp_path):
    """The hard regime: the first default candidate ends far below the target."""
    result = quick_run("smallest_params:alpha=-0.5", tmp_path / "j.sqlite", pretrain_steps=3,
                       protocol=wz.Protocol(max_steps=2, eval_every=2, batch_size=32))
    assert result.decision["pretrain"] is True and "below the target" in result.decision["reason"]
    assert result.decision["default_positions"] == 1
    assert result.composed is not None and result.composed.tried == 4
    assert result.winner is None or not result.winner["met"]
    assert result.seconds == pytest.approx(
        sum(r["seconds"] for r in result.rows) + result.pretrain_seconds)
