"""Export to SavedModel, TFLite (fp32 / fp16 / int8) and ONNX, verified in each runtime.

`export(model, out_dir)` is the entry point (its docstring has the runnable
example). Works for Functional, Sequential, nested and reloaded (.keras / .h5) models:
TFLite and ONNX are both converted from the SavedModel. Without
`verify_data`, parity is checked on seeded synthetic images (the manifest
says so); real images remain the recommended check, and int8 needs them.

Modules: `api` (export, ExportError), `savedmodel`, `tflite`, `onnx_export`
(writers and runtime runners), `verify` (tolerances, parity, latency),
`manifest`, `data` (input validation, real and synthetic images for a model),
`quiet` (converter output kept off the console). None of them imports
TensorFlow, tf2onnx, onnx or onnxruntime at import time, so the package
imports on Keras's other backends; `export()` needs TensorFlow when it runs.
"""

from wootz_keras.export.api import FORMATS, PATHS, ExportError, export  # noqa: F401
from wootz_keras.export.data import real_images_for  # noqa: F401
from wootz_keras.export.manifest import MANIFEST, read_manifest  # noqa: F401
from wootz_keras.export.onnx_export import ONNX_OPSET  # noqa: F401
from wootz_keras.export.verify import (  # noqa: F401
    FP16_RTOL,
    FP32_ATOL,
    INT8_MIN_TOP1,
    VerificationError,
)
