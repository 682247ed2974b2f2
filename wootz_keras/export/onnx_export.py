"""ONNX: converted with tf2onnx, checked with onnx.checker, run in onnxruntime.

`ONNX_OPSET` is 18, the newest opset tf2onnx 1.17 knows (its
`constants.OPSET_TO_IR_VERSION` stops at 18); onnxruntime runs it.
The module is named onnx_export so it never shadows the `onnx` package.
"""

import logging

import numpy as np
import tensorflow as tf

ONNX_OPSET = 18


def _input_spec(model):
    inp = model.inputs[0]
    return tf.TensorSpec((None, *inp.shape[1:]), tf.as_dtype(inp.dtype), name=inp.name)


def write_onnx(model, path, opset=ONNX_OPSET):
    """Convert a single-input Keras model to ONNX at `path` (batch dimension left dynamic).

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_onnx(plain_cnn(), "/tmp/wz_doc.onnx")
    """
    import onnx
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=[_input_spec(model)], opset=opset)
    onnx.checker.check_model(proto)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


class OnnxRunner:
    """Checks an .onnx file with `onnx.checker` and runs it in onnxruntime (CPU).

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_onnx(plain_cnn(), "/tmp/wz_doc.onnx")
        >>> OnnxRunner("/tmp/wz_doc.onnx").predict(np.zeros((2, 28, 28, 1), np.float32)).shape
        (2, 10)
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
        self._input, self._output = inputs[0].name, outputs[0].name

    def predict(self, x):
        return self._session.run([self._output], {self._input: np.asarray(x, np.float32)})[0]

    def latency_fn(self, x1):
        """A zero-argument callable running one batch (for timing)."""
        feed = {self._input: np.asarray(x1, np.float32)}
        return lambda: self._session.run([self._output], feed)
