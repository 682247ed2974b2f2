"""TensorFlow SavedModel: written by Keras 3, run through its serving signature.

The SavedModel is also what the TFLite and ONNX files are converted from, so
all three formats come from one traced graph. TensorFlow is imported inside
the functions: importing this module needs only Keras and NumPy.
"""

import re

import numpy as np

SIGNATURE = "serving_default"


def input_name(model):
    """A readable name for the model's single input: its InputLayer's name.

    A Keras 3 `Sequential` input tensor is called e.g. "keras_tensor_15"; the
    SavedModel signature and the ONNX graph would inherit that, so the
    InputLayer's name ("input_layer", or the Functional model's "image") is
    used instead.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> input_name(model).startswith("input_layer")
        True
    """
    tensor = model.inputs[0]
    history = getattr(tensor, "_keras_history", None)
    name = getattr(getattr(history, "operation", None), "name", None) or tensor.name
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name))
    if not name or name.startswith("keras_tensor") or not name[0].isalpha():
        name = "input"
    return name


def write_savedmodel(model, path):
    """Write `model` as a TF SavedModel directory at `path` (Keras 3 `model.export`).

    The "serving_default" signature takes one float32 input named
    `input_name(model)` with a dynamic batch dimension and returns "output_0".

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
    """
    import tensorflow as tf

    inp = model.inputs[0]
    spec = tf.TensorSpec((None, *inp.shape[1:]), tf.as_dtype(str(inp.dtype)), name=input_name(model))
    model.export(path, format="tf_saved_model", verbose=False, input_signature=[spec])


class SavedModelRunner:
    """Reloads a SavedModel with `tf.saved_model.load` and calls its serving signature.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
        >>> runner = SavedModelRunner("/tmp/wz_doc_savedmodel")
        >>> runner.predict(np.zeros((2, 28, 28, 1), np.float32)).shape
        (2, 10)
    """

    threads = None  # TensorFlow's global thread pools

    def __init__(self, path):
        import tensorflow as tf

        self._tf = tf
        self.runtime = f"tensorflow {tf.__version__} (tf.saved_model.load, {SIGNATURE})"
        self._loaded = tf.saved_model.load(path)
        if SIGNATURE not in self._loaded.signatures:
            raise RuntimeError(f"SavedModel has no {SIGNATURE!r} signature")
        self._fn = self._loaded.signatures[SIGNATURE]
        inputs = self._fn.structured_input_signature[1]
        if len(inputs) != 1:
            raise RuntimeError(f"expected one input in {SIGNATURE!r}, found {sorted(inputs)}")
        self.input_name = next(iter(inputs))
        outputs = self._fn.structured_outputs
        if len(outputs) != 1:
            raise RuntimeError(f"expected one output in {SIGNATURE!r}, found {sorted(outputs)}")
        self._output = next(iter(outputs))

    def predict(self, x):
        out = self._fn(**{self.input_name: self._tf.constant(x)})
        return out[self._output].numpy()

    def latency_fn(self, x1):
        """A zero-argument callable running one batch (for timing)."""
        t = self._tf.constant(np.asarray(x1))
        return lambda: self._fn(**{self.input_name: t})[self._output].numpy()
