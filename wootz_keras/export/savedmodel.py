"""TensorFlow SavedModel: written by Keras 3, run through its serving signature."""

import numpy as np
import tensorflow as tf

SIGNATURE = "serving_default"


def write_savedmodel(model, path):
    """Write `model` as a TF SavedModel directory at `path` (Keras 3 `model.export`).

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
    """
    model.export(path, format="tf_saved_model", verbose=False)


class SavedModelRunner:
    """Reloads a SavedModel with `tf.saved_model.load` and calls its serving signature.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> write_savedmodel(plain_cnn(), "/tmp/wz_doc_savedmodel")
        >>> runner = SavedModelRunner("/tmp/wz_doc_savedmodel")
        >>> runner.predict(np.zeros((2, 28, 28, 1), np.float32)).shape
        (2, 10)
    """

    runtime = f"tensorflow {tf.__version__} (tf.saved_model.load, {SIGNATURE})"
    threads = None  # TensorFlow's global thread pools

    def __init__(self, path):
        self._loaded = tf.saved_model.load(path)
        if SIGNATURE not in self._loaded.signatures:
            raise RuntimeError(f"SavedModel has no {SIGNATURE!r} signature")
        self._fn = self._loaded.signatures[SIGNATURE]
        inputs = self._fn.structured_input_signature[1]
        if len(inputs) != 1:
            raise RuntimeError(f"expected one input in {SIGNATURE!r}, found {sorted(inputs)}")
        self._input = next(iter(inputs))
        outputs = self._fn.structured_outputs
        if len(outputs) != 1:
            raise RuntimeError(f"expected one output in {SIGNATURE!r}, found {sorted(outputs)}")
        self._output = next(iter(outputs))

    def predict(self, x):
        out = self._fn(**{self._input: tf.constant(x)})
        return out[self._output].numpy()

    def latency_fn(self, x1):
        """A zero-argument callable running one batch (for timing)."""
        t = tf.constant(np.asarray(x1))
        return lambda: self._fn(**{self._input: t})[self._output].numpy()
