"""Timing: synthetic single layers, or a whole Keras model exported as the exporter does.

A table entry is the batch-1 latency of a one-layer model (the layer, its
bias and a ReLU, which every runtime fuses into the layer) on random
inputs. Entries are timed in interleaved rounds: `warmup` untimed runs of
each model, then `rounds` passes over all the models measured together,
each pass timing `runs` runs of every model; an entry is the smallest of
its per-pass medians. Interference from other work on the machine comes in
bursts and only ever adds time, so a burst hits one pass of an entry, not
all of them, and the minimum of medians is the steadiest figure a shared
machine gives.
"""

import os
import tempfile
import zlib

import numpy as np

from wootz_keras.latency.runtimes import check_runtime, check_threads, runtime_version


def check_settings(runs, warmup, rounds):
    """(runs, warmup, rounds) checked: runs, rounds >= 1, warmup >= 0."""
    for name, v, low in (("runs", runs, 1), ("warmup", warmup, 0), ("rounds", rounds, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return runs, warmup, rounds


def time_many(fns, runs=30, warmup=5, rounds=3):
    """Smallest per-round median wall time (ms) of each zero-argument callable,
    timed in `rounds` interleaved passes over all of them.

    Example:
        >>> len(time_many([lambda: None, lambda: sum(range(9))], runs=3, warmup=1, rounds=2))
        2
    """
    from wootz_keras.export.verify import median_latency_ms
    check_settings(runs, warmup, rounds)
    fns = list(fns)
    best = [None] * len(fns)
    for r in range(rounds):
        for i, fn in enumerate(fns):
            ms = median_latency_ms(fn, runs=runs, warmup=warmup if r == 0 else 0)
            best[i] = ms if best[i] is None else min(best[i], ms)
    return best


def time_ms(fn, runs=30, warmup=5, rounds=3):
    """Smallest per-round median wall time of `fn()`, in milliseconds.

    Example:
        >>> time_ms(lambda: sum(range(10)), runs=3, warmup=1, rounds=2) >= 0
        True
    """
    return time_many([fn], runs, warmup, rounds)[0]


def _rng(shape, cin, cout):
    return np.random.default_rng(zlib.crc32(f"{shape.key}|{cin}|{cout}".encode()))


def _same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _tflite_layer(shape, cin, cout, threads):
    """A zero-argument callable running the one-layer model in LiteRT."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    rng = _rng(shape, cin, cout)
    if shape.kind == "dense":
        x_shape = [shape.positions, cin]
        w = rng.standard_normal((cin, cout)).astype(np.float32) * 0.1

        def layer(x):
            return tf.matmul(x, w)
    else:
        x_shape = [1, *shape.spatial, cin]
        kh, kw = shape.kernel
        if shape.kind == "conv":
            w = rng.standard_normal((kh, kw, cin, cout)).astype(np.float32) * 0.1

            def layer(x):
                return tf.nn.conv2d(x, w, [1, *shape.strides, 1], shape.padding.upper(),
                                    dilations=[1, *shape.dilation, 1])
        else:
            w = rng.standard_normal((kh, kw, cin, shape.depth_multiplier)).astype(np.float32)

            def layer(x):
                return tf.nn.depthwise_conv2d(x, w * 0.1, [1, *shape.strides, 1],
                                              shape.padding.upper(), dilations=shape.dilation)
    b = rng.standard_normal(cout).astype(np.float32)
    fn = tf.function(lambda x: tf.nn.relu(layer(x) + b),
                     input_signature=[tf.TensorSpec(x_shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    interpreter = Interpreter(model_content=converter.convert(), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    x = rng.standard_normal(x_shape).astype(np.float32)

    def run():
        interpreter.set_tensor(index, x)
        interpreter.invoke()
    return run


def _onnx_layer(shape, cin, cout, threads):
    """A zero-argument callable running the one-layer ONNX graph in onnxruntime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = _rng(shape, cin, cout)
    b = rng.standard_normal(cout).astype(np.float32)
    if shape.kind == "dense":
        x_shape = [shape.positions, cin]
        w = rng.standard_normal((cin, cout)).astype(np.float32) * 0.1
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"])
    else:
        x_shape = [1, cin, *shape.spatial]
        kh, kw = shape.kernel
        group = cin if shape.kind == "depthwise" else 1
        w = rng.standard_normal((cout, cin // group, kh, kw)).astype(np.float32) * 0.1
        attrs = dict(kernel_shape=[kh, kw], strides=list(shape.strides),
                     dilations=list(shape.dilation), group=group)
        if shape.padding == "same":
            (t, bo), (le, r) = (_same_pads(n, k, s, d) for n, k, s, d in
                                zip(shape.spatial, shape.kernel, shape.strides, shape.dilation))
            attrs["pads"] = [t, le, bo, r]
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["y"], ["z"])], "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    return lambda: session.run(None, feed)


_LAYER_BUILDERS = {"tflite": _tflite_layer, "onnxruntime": _onnx_layer}


def layer_runner(runtime, shape, cin, cout, threads=1):
    """A zero-argument callable running one layer of `shape` with `cin` -> `cout`
    channels once, at batch 1, in `runtime` (RuntimeUnavailable if missing)."""
    runtime = check_runtime(runtime)
    runtime_version(runtime)
    check_threads(threads)
    cin, cout = shape.check_counts(cin, cout)
    return _LAYER_BUILDERS[runtime](shape, cin, cout, threads)


def layer_latency_ms(runtime, shape, cin, cout, threads=1, runs=30, warmup=5, rounds=3):
    """Measured batch-1 latency (ms) of one layer of `shape` with `cin` -> `cout`
    channels in `runtime` (RuntimeUnavailable if the runtime is missing).

    Example:
        >>> from wootz_keras.latency.shapes import LayerShape
        >>> s = LayerShape("conv", (3, 3), (1, 1), (1, 1), "same", (8, 8))
        >>> layer_latency_ms("onnxruntime", s, 4, 8, runs=2, warmup=0, rounds=1) > 0
        True
    """
    check_settings(runs, warmup, rounds)
    return time_ms(layer_runner(runtime, shape, cin, cout, threads), runs, warmup, rounds)


def layer_latencies_ms(runtime, points, threads=1, runs=30, warmup=5, rounds=3, batch=48):
    """Measured latency (ms) of each (shape, cin, cout) in `points`, timed in
    interleaved rounds, `batch` one-layer models at a time.

    Example:
        >>> from wootz_keras.latency.shapes import LayerShape
        >>> s = LayerShape("dense")
        >>> len(layer_latencies_ms("onnxruntime", [(s, 4, 2), (s, 4, 3)], runs=2, warmup=0))
        2
    """
    check_settings(runs, warmup, rounds)
    points = list(points)
    out = []
    for i in range(0, len(points), batch):
        fns = [layer_runner(runtime, *p, threads=threads) for p in points[i:i + batch]]
        out.extend(time_many(fns, runs, warmup, rounds))
    return out


def model_runner(model, runtime, threads=1, folder=None):
    """A runner (`predict`, `latency_fn`) of `model` exported to `runtime` the way
    `wootz_keras.export.export` writes it (TFLite fp32 from the SavedModel,
    ONNX through tf2onnx), without the parity check."""
    from wootz_keras.export.onnx_export import OnnxRunner, write_onnx
    from wootz_keras.export.savedmodel import write_savedmodel
    from wootz_keras.export.tflite import TFLiteRunner, convert_tflite

    runtime = check_runtime(runtime)
    runtime_version(runtime)
    folder = folder or tempfile.mkdtemp(prefix="wz_latency_")
    if runtime == "onnxruntime":
        path = os.path.join(folder, "model.onnx")
        write_onnx(model, path)
        return OnnxRunner(path, num_threads=threads)
    saved = os.path.join(folder, "savedmodel")
    write_savedmodel(model, saved)
    path = os.path.join(folder, "model.tflite")
    with open(path, "wb") as f:
        f.write(convert_tflite(saved))
    return TFLiteRunner(path, num_threads=threads)


def model_latency_ms(model, runtime, threads=1, runs=50, warmup=10, rounds=3, x=None):
    """Measured batch-1 latency (ms) of a Keras model exported to `runtime`
    (the figure a latency prediction is checked against).

    Example:
        >>> from wootz_keras import zoo
        >>> model_latency_ms(zoo.plain_cnn(), "onnxruntime", runs=2, warmup=0, rounds=1) > 0
        True
    """
    check_threads(threads)
    check_settings(runs, warmup, rounds)
    with tempfile.TemporaryDirectory(prefix="wz_latency_") as folder:
        runner = model_runner(model, runtime, threads, folder)
        if x is None:
            shape = [1, *[int(d) for d in model.inputs[0].shape[1:]]]
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        return time_ms(runner.latency_fn(np.asarray(x[:1], np.float32)), runs=runs,
                       warmup=warmup, rounds=rounds)
