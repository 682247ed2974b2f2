"""Export a saved Keras model to SavedModel / TFLite / ONNX, verified in each runtime.

Verification (and int8 calibration) images are real Fashion-MNIST images,
resized and channel-tiled to the model's input (pixel values in [0, 1]).
Writes <out_dir>/{savedmodel/, model.tflite, model.onnx, manifest.json}.

Example:
    python tools/export.py --model plain_cnn.keras --formats tflite,onnx --quantize int8

Exits non-zero with a one-line reason on stderr on bad input or a failed format.
"""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if __name__ == "__main__":  # run as a script from a checkout: make wootz_keras importable
    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Path to a Keras model file (.keras).")
flags.DEFINE_string("formats", "savedmodel,tflite,onnx",
                    "Comma-separated formats: savedmodel, tflite, onnx.")
flags.DEFINE_string("quantize", "none", "TFLite quantization: none, float16 or int8.")
flags.DEFINE_string("out_dir", None, "Output folder (default: exported/<model name>/).")
flags.DEFINE_integer("num_verify_images", 300,
                     "Real Fashion-MNIST test images used to check parity.")
flags.DEFINE_integer("num_representative_images", 300,
                     "Real Fashion-MNIST train images used to calibrate int8.")
flags.DEFINE_integer("latency_runs", 50, "Timed batch-1 runs per format.")


def _fail(message):
    sys.exit(f"wootz-export: error: {' '.join(str(message).split())}")


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.model:
        _fail("--model is required (path to a .keras file)")
    if not os.path.isfile(FLAGS.model):
        _fail(f"--model: file not found: {FLAGS.model}")
    if FLAGS.num_verify_images < 1 or FLAGS.num_representative_images < 1:
        _fail("--num_verify_images and --num_representative_images must be >= 1")

    from wootz_keras.export import ExportError, export, real_images_for
    from wootz_keras.export.api import normalize_formats, normalize_quantize

    # Check the cheap flags before loading anything.
    try:
        formats = normalize_formats(FLAGS.formats)
        quantize = normalize_quantize(FLAGS.quantize, formats)
    except ValueError as e:
        _fail(e)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)

    import keras
    try:
        import wootz_keras.pruning  # noqa: F401  registers the pruning wrappers, if any
    except ImportError:
        pass
    try:
        model = keras.models.load_model(FLAGS.model, compile=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is bad input
        _fail(f"--model: cannot load {FLAGS.model}: {type(e).__name__}: {e}")
    out_dir = FLAGS.out_dir or os.path.join("exported", model.name)

    try:
        verify = real_images_for(model, FLAGS.num_verify_images, split="test", seed=0)
        representative = None
        if quantize == "int8":
            try:
                representative = real_images_for(model, FLAGS.num_representative_images,
                                                 split="train", seed=0)
            except FileNotFoundError as e:
                _fail(f"int8 needs representative_data: {e}")
        manifest = export(model, out_dir, formats=formats, quantize=quantize,
                          representative_data=representative, verify_data=verify,
                          latency_runs=FLAGS.latency_runs)
    except (ExportError, ValueError, FileNotFoundError) as e:
        _fail(e)
    except Exception as e:  # noqa: BLE001 - anything else still gets a one-line reason
        logging.debug("export failed", exc_info=True)
        _fail(f"{type(e).__name__}: {e}")

    for name, entry in manifest["formats"].items():
        parity = (f"top1_agreement={entry['top1_agreement']:.4f}" if "top1_agreement" in entry
                  else f"max_abs_diff={entry['max_abs_diff']:.2e}")
        print(f"{name:<10} {entry['path']:<14} {entry['bytes']:>10} B  {parity}  "
              f"latency={entry['latency_ms']:.3f} ms  [{entry['runtime']}]")
    print(f"manifest: {os.path.join(out_dir, 'manifest.json')}")


def run():
    """Console-script entry point (wootz-export)."""
    app.run(main)


if __name__ == "__main__":
    run()
