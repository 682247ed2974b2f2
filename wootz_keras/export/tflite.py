"""TFLite: converted from the SavedModel, run in the LiteRT interpreter.

Quantization modes:

* ``None``: float32 weights and compute.
* ``"float16"``: float16 weights (half the size); float32 input/output, and on
  CPU the weights are dequantized so compute stays float32.
* ``"int8"``: full-integer post-training quantization calibrated on REAL
  representative images. Only int8 builtin ops are allowed (a converter that
  cannot quantize an op fails instead of silently keeping it in float), and
  the model's input and output tensors are int8 too, so it runs as is on
  integer-only accelerators (Edge TPU, microcontrollers). Callers quantize
  inputs with ``q = round(x / scale) + zero_point`` and dequantize outputs
  with ``(q - zero_point) * scale``; both pairs are written to the manifest
  (``input_quantization`` / ``output_quantization``).

TensorFlow is imported inside the functions: importing this module needs only NumPy.
"""

import numpy as np

QUANTIZE_MODES = (None, "float16", "int8")
MAX_REPRESENTATIVE = 1000


def convert_tflite(saved_model_dir, quantize=None, representative_data=None):
    """Convert a SavedModel directory to TFLite flatbuffer bytes.

    `representative_data` (real images, float32 NHWC) is required for "int8";
    at most `MAX_REPRESENTATIVE` of them are used, one per calibration step.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> from wootz_keras.export.savedmodel import write_savedmodel
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
        >>> len(convert_tflite("/tmp/wz_doc_savedmodel", "float16")) > 0
        True
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative_data is None:
            raise ValueError("quantize='int8' needs representative_data (real images)")
        images = np.asarray(representative_data, np.float32)[:MAX_REPRESENTATIVE]

        def representative_dataset():
            for i in range(len(images)):
                yield [images[i:i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _interpreter_class():
    """LiteRT's interpreter; tf.lite.Interpreter only if LiteRT cannot be imported."""
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter
        version = getattr(ai_edge_litert, "__version__", None)
        if version is None:
            try:
                from importlib.metadata import version as _v
                version = _v("ai-edge-litert")
            except Exception:  # pragma: no cover - metadata missing
                version = "unknown"
        return Interpreter, f"ai_edge_litert {version} (LiteRT Interpreter)"
    except ImportError:
        import tensorflow as tf
        return tf.lite.Interpreter, (
            f"tensorflow {tf.__version__} (tf.lite.Interpreter; ai_edge_litert not importable)")


def _quant_params(detail):
    scale, zero_point = detail["quantization"]
    return {"scale": float(scale), "zero_point": int(zero_point)}


class TFLiteRunner:
    """Runs a .tflite file in the LiteRT interpreter, handling int8 input/output.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> from wootz_keras.export.savedmodel import write_savedmodel
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
        >>> open("/tmp/wz_doc.tflite", "wb").write(convert_tflite("/tmp/wz_doc_savedmodel")) > 0
        True
        >>> TFLiteRunner("/tmp/wz_doc.tflite").predict(np.zeros((3, 28, 28, 1), np.float32)).shape
        (3, 10)
    """

    def __init__(self, path, num_threads=1):
        cls, self.runtime = _interpreter_class()
        self.threads = num_threads
        self._it = cls(model_path=path, num_threads=num_threads)
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0]
        self._batch = None

    @property
    def input_dtype(self):
        return np.dtype(self._in["dtype"]).name

    def quantization(self):
        """Input/output (scale, zero_point) for integer tensors, else {}."""
        info = {}
        if np.issubdtype(self._in["dtype"], np.integer):
            info["input_quantization"] = _quant_params(self._in)
        if np.issubdtype(self._out["dtype"], np.integer):
            info["output_quantization"] = _quant_params(self._out)
        return info

    def _quantize(self, x):
        dtype = np.dtype(self._in["dtype"])
        if not np.issubdtype(dtype, np.integer):
            return np.asarray(x, dtype)
        scale, zero_point = self._in["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)

    def _dequantize(self, y):
        if not np.issubdtype(y.dtype, np.integer):
            return y.astype(np.float32)
        scale, zero_point = self._out["quantization"]
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def _prepare(self, n):
        if self._batch != n:
            self._it.resize_tensor_input(self._in["index"], [n, *self._in["shape"][1:]])
            self._it.allocate_tensors()
            self._batch = n

    def predict(self, x):
        x = np.asarray(x)
        self._prepare(len(x))
        self._it.set_tensor(self._in["index"], self._quantize(x))
        self._it.invoke()
        return self._dequantize(self._it.get_tensor(self._out["index"]))

    def latency_fn(self, x1):
        """A zero-argument callable running one batch (for timing)."""
        q = self._quantize(np.asarray(x1))
        self._prepare(len(q))
        index_in, index_out = self._in["index"], self._out["index"]

        def run():
            self._it.set_tensor(index_in, q)
            self._it.invoke()
            return self._it.get_tensor(index_out)
        return run

