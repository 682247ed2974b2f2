"""ONNX: converted by tf2onnx from the SavedModel's serving signature, run in onnxruntime.

Converting from the SavedModel (not from the Keras objects, as
`tf2onnx.convert.from_keras` does) works for every kind of Keras 3 model:
`from_keras` fails on any `keras.Sequential` (`KeyError: 'keras_tensor_N'`),
fresh or reloaded from .keras / .h5. It also means ONNX and TFLite are
converted from the same traced graph. The ONNX graph keeps the signature's
names: one input named like the Keras InputLayer (see
`savedmodel.input_name`), shaped ("batch", H, W, C), and one output "output_0".

Two gaps of tf2onnx 1.17 are bridged here: functions Keras compiles with
XLA (grouped convolutions) are inlined, and Erfc (exact GELU) becomes 1 - Erf;
and its optimizer's memory is kept bounded (see `_bounded_optimizer_memory`).

`ONNX_OPSET` is 18, the newest opset tf2onnx 1.17 knows (its
`constants.OPSET_TO_IR_VERSION` stops at 18); onnxruntime runs it.
The module is named onnx_export so it never shadows the `onnx` package; it
imports TensorFlow, tf2onnx, onnx and onnxruntime inside the functions only.
"""

import collections
import contextlib
import gc
import os
import tempfile

import numpy as np

from wootz_keras.export.quiet import quiet_converters
from wootz_keras.export.savedmodel import SIGNATURE, write_savedmodel

ONNX_OPSET = 18
MAX_ONNX_BYTES = 2 ** 31 - 1  # one protobuf message: a single .onnx file holds at most 2 GB
BATCH_DIM = "batch"


def check_onnx_size(model):
    """RuntimeError, before any conversion, if the weights cannot fit in one .onnx file.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> check_onnx_size(plain_cnn())
    """
    size = sum(int(np.prod(w.shape)) * np.dtype(str(w.dtype)).itemsize for w in model.weights)
    if size >= MAX_ONNX_BYTES:
        raise RuntimeError(f"the model's {size / 2 ** 30:.2f} GiB of weights exceed the 2 GiB "
                           "protobuf limit of a single .onnx file")


def _unsupported_ops(proto):
    """(op type, node name) of nodes left in the graph because tf2onnx has no conversion."""
    import onnx

    out = []
    for node in proto.graph.node:
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            name = node.name.removeprefix("StatefulPartitionedCall/")
            out.append((node.op_type, name))
    return out


def _name_batch_dim(proto, name=BATCH_DIM):
    """tf2onnx names the dynamic batch dimension e.g. "unk__52"; call it `name`."""
    dims = [d for v in (*proto.graph.input, *proto.graph.output)
            for d in v.type.tensor_type.shape.dim[:1] if d.dim_param]
    old = {d.dim_param for d in dims}
    for v in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in old:
                d.dim_param = name


XLA_ATTRS = ("_XlaMustCompile", "_noinline")


def _inline_xla_functions(graph_def):
    """Let grappler inline functions Keras marked for XLA; return how many there were.

    Keras's TensorFlow backend runs grouped convolutions (`Conv2D(groups=g)`,
    e.g. ConvNeXt's depthwise 7x7) through a `jit_compile=True` function;
    tf2onnx keeps such a call as an opaque `StatefulPartitionedCall`. Without
    the XLA attributes the (already frozen) body is inlined like any other.
    """
    marked = 0
    for fn in graph_def.library.function:
        marked += any(k in fn.attr for k in XLA_ATTRS)
        for k in XLA_ATTRS:
            if k in fn.attr:
                del fn.attr[k]
    for node in graph_def.node:
        for k in XLA_ATTRS:
            if k in node.attr:
                del node.attr[k]
    return marked


def _erfc_handler(ctx, node, name, args):
    """tf2onnx has no Erfc (exact GELU, e.g. ConvNeXt): erfc(x) = 1 - erf(x)."""
    from tf2onnx import utils

    x = node.input[0]
    one = ctx.make_const(utils.make_name(f"{node.name}_one"),
                         np.array(1, dtype=utils.map_onnx_to_numpy_type(ctx.get_dtype(x))))
    erf = ctx.make_node("Erf", [x])
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


CUSTOM_OP_HANDLERS = {"Erfc": (_erfc_handler, [])}


class _CollectFirst:
    """An optimizer factory that runs the cyclic garbage collector first."""

    def __init__(self, factory):
        self._factory = factory

    def __call__(self):
        gc.collect()
        return self._factory()


COLLECT_ABOVE_BYTES = 32 * 2 ** 20
"""Graphs (weights included) at least this big get the garbage collector run
between conversion steps; below it the copies are small and the collector's
passes (about 0.3 s each in a fresh process, 25 per conversion) would cost more
than the conversion itself."""


def _collect_if(big):
    if big:
        gc.collect()


@contextlib.contextmanager
def _bounded_optimizer_memory(big):
    """tf2onnx 1.17 deep-copies the whole graph, weights included, before each
    of its ~20 optimizer passes; the copies form reference cycles that only
    Python's cyclic collector frees, which runs too rarely to keep up (ResNet50:
    6.6 GB peak for 90 MB of weights). Collecting before each pass keeps two
    or three copies alive (2.4 GB). Only for `big` graphs (see
    COLLECT_ABOVE_BYTES)."""
    from tf2onnx import optimizer

    saved = getattr(optimizer, "_optimizers", None)
    if not big or not isinstance(saved, dict):  # small, or another tf2onnx version
        yield
        return
    optimizer._optimizers = collections.OrderedDict(
        (name, _CollectFirst(factory)) for name, factory in saved.items())
    try:
        yield
    finally:
        optimizer._optimizers = saved
        gc.collect()


def _frozen_signature(saved_model_dir, signature=SIGNATURE):
    """(graph_def with the weights as constants, input names, output names, renames).

    What `tf2onnx.tf_loader.from_saved_model` does, less its grappler pass
    (`from_graph_def` runs one anyway), with the loaded SavedModel released
    before that pass: the two held together dominated the conversion's peak
    memory (ConvNeXtSmall: 5.4 GB for 200 MB of weights).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    from tf2onnx import tf_loader

    loaded = tf.saved_model.load(saved_model_dir, tags=["serve"])
    if signature not in loaded.signatures:
        raise RuntimeError(f"SavedModel has no {signature!r} signature")
    fn = loaded.signatures[signature]
    frozen = convert_variables_to_constants_v2(fn, lower_control_flow=False,
                                               aggressive_inlining=True)
    graph_def = tf_loader.fix_freezing_errors_part2(frozen.graph.as_graph_def(add_shapes=True))
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs if t.dtype != tf.resource]
    specs = [t for t in tf.nest.flatten(fn.structured_input_signature) if isinstance(t, tf.TensorSpec)]
    renames = dict(zip(inputs, [t.name for t in specs]))
    renames.update(zip(outputs, sorted(fn.structured_outputs)))
    del loaded, fn, frozen
    _collect_if(graph_def.ByteSize() >= COLLECT_ABOVE_BYTES)
    return graph_def, inputs, outputs, renames


def _convert_frozen(frozen, opset, name):
    """ONNX proto from `_frozen_signature`'s result: `tf2onnx.convert.from_graph_def`
    without its re-import and re-freeze of an already frozen graph (two more
    copies of the weights at the peak); the graph_def is dropped once optimized."""
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    graph_def, inputs, outputs, renames = frozen
    del frozen
    big = graph_def.ByteSize() >= COLLECT_ABOVE_BYTES
    _inline_xla_functions(graph_def)  # grappler (tf_optimize) inlines them now

    convert_common = getattr(tf2onnx.convert, "_convert_common", None)
    if convert_common is None:  # another tf2onnx version: its public path
        return tf2onnx.convert.from_graph_def(
            graph_def, name=name, input_names=inputs, output_names=outputs, opset=opset,
            tensors_to_rename=renames, custom_op_handlers=CUSTOM_OP_HANDLERS)[0]
    with tf.device("/cpu:0"), tf.Graph().as_default():  # grappler's meta-graph export wants graph mode
        optimized = tf_loader.tf_optimize(inputs, outputs, graph_def)
    del graph_def
    _collect_if(big)
    with _bounded_optimizer_memory(big):
        proto, _ = convert_common(optimized, name=name, continue_on_error=True, opset=opset,
                                  custom_op_handlers=dict(CUSTOM_OP_HANDLERS), input_names=inputs,
                                  output_names=outputs, tensors_to_rename=renames)
    return proto


def savedmodel_to_onnx(saved_model_dir, path, opset=ONNX_OPSET, signature=SIGNATURE):
    """Convert a SavedModel's `signature` to an ONNX file at `path`, checked by onnx.checker.

    Raises RuntimeError naming each TensorFlow op (and the node, i.e. the
    layer path) that tf2onnx cannot convert.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
        >>> savedmodel_to_onnx("/tmp/wz_doc_savedmodel", "/tmp/wz_doc.onnx")
    """
    import onnx

    with quiet_converters() as captured:
        proto = _convert_frozen(_frozen_signature(saved_model_dir, signature), opset,
                                name=os.path.basename(os.path.normpath(saved_model_dir)))
    missing = _unsupported_ops(proto)
    if missing:
        shown = ", ".join(f"{op} (node {name})" for op, name in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise RuntimeError(f"tf2onnx cannot convert TensorFlow op(s) {shown}{more}")
    if proto.ByteSize() >= MAX_ONNX_BYTES:
        raise RuntimeError(f"the ONNX graph ({proto.ByteSize() / 2 ** 30:.2f} GiB) exceeds the "
                           "2 GiB protobuf limit of a single .onnx file")
    errors = captured.errors()
    _name_batch_dim(proto)
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        hint = f" (tf2onnx: {errors[-1]})" if errors else ""
        raise RuntimeError(f"onnx.checker rejects the converted graph: {e}{hint}") from None
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def write_onnx(model, path, opset=ONNX_OPSET):
    """Convert a single-input Keras model to ONNX at `path` (batch dimension left dynamic).

    Goes through a temporary SavedModel (`write_savedmodel`, then
    `savedmodel_to_onnx`); `export()` reuses the SavedModel it writes anyway.

    Example:
        >>> import keras
        >>> seq = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
        ...                         keras.layers.Dense(10)])
        >>> write_onnx(seq, "/tmp/wz_doc_seq.onnx")
        >>> OnnxRunner("/tmp/wz_doc_seq.onnx").input_shape
        ['batch', 28, 28, 1]
    """
    check_onnx_size(model)
    with tempfile.TemporaryDirectory(prefix="wz_onnx_") as scratch:
        staged = os.path.join(scratch, "savedmodel")
        with quiet_converters():
            write_savedmodel(model, staged)
        savedmodel_to_onnx(staged, path, opset=opset)


class OnnxRunner:
    """Checks an .onnx file with `onnx.checker` and runs it in onnxruntime (CPU).

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_onnx(plain_cnn(), "/tmp/wz_doc.onnx")
        >>> runner = OnnxRunner("/tmp/wz_doc.onnx")
        >>> runner.input_name, runner.predict(np.zeros((2, 28, 28, 1), np.float32)).shape
        ('image', (2, 10))
    """

    def __init__(self, path, num_threads=1):
        import onnx
        import onnxruntime as ort

        onnx.checker.check_model(path, full_check=True)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.threads = num_threads
        self.runtime = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self.input_name, self.input_shape = inputs[0].name, list(inputs[0].shape)
        self._output = outputs[0].name

    def predict(self, x):
        return self._session.run([self._output], {self.input_name: np.asarray(x, np.float32)})[0]

    def latency_fn(self, x1):
        """A zero-argument callable running one batch (for timing)."""
        feed = {self.input_name: np.asarray(x1, np.float32)}
        return lambda: self._session.run([self._output], feed)
