"""wootz-export: a saved Keras model to SavedModel / TFLite / ONNX, verified in each runtime.

Parity is checked on real images (--data, sized to the model's input; the
int8 calibration takes training images), and batch-1 latency is measured in
each runtime. Writes <out_dir>/{savedmodel/, model.tflite, model.onnx,
manifest.json}; a format that fails to convert or verify leaves no file.

    wootz-export --model=plain_cnn.keras --formats=tflite,onnx --quantize=int8
"""

import os

from absl import flags

from wootz_keras import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "The Keras model to export (.keras or .h5).")
flags.DEFINE_string("formats", "savedmodel,tflite,onnx", "Comma-separated: savedmodel, tflite, "
                    "onnx.")
flags.DEFINE_string("quantize", "none", "TFLite quantization: none, float16 or int8.")
flags.DEFINE_string("out_dir", None, "Output folder (default: exported/<model name>/).")
cli.define_data_flags()
flags.DEFINE_integer("num_verify_images", 300, "Real test images that check parity.")
flags.DEFINE_integer("num_representative_images", 300, "Real training images that calibrate "
                     "int8.")
flags.DEFINE_integer("latency_runs", 50, "Timed batch-1 runs per format.")


def main(argv):
    cli.check_model_flag(allow_zoo=False)
    spec, image_size = cli.check_data_flags()
    cli.check_at_least("num_verify_images", 1)
    cli.check_at_least("num_representative_images", 1)
    cli.check_at_least("latency_runs", 1)
    from wootz_keras.export.api import export, normalize_formats, normalize_quantize
    try:
        formats = normalize_formats(FLAGS.formats)
        quantize = normalize_quantize(FLAGS.quantize, formats)
    except ValueError as e:
        raise cli.UsageError(f"--formats/--quantize: {e}") from None
    from wootz_keras.data import load_data_for
    model, _ = cli.load_model_flag(allow_zoo=False)
    data = load_data_for(model, spec, image_size=image_size, seed=0,
                         train_limit=FLAGS.num_representative_images,
                         test_limit=FLAGS.num_verify_images)
    out_dir = FLAGS.out_dir or os.path.join("exported", model.name)
    manifest = export(model, out_dir, formats=formats, quantize=quantize,
                      representative_data=data.train.images() if quantize == "int8" else None,
                      verify_data=data.test.images(), latency_runs=FLAGS.latency_runs)
    rows = []
    for name, entry in manifest["formats"].items():
        parity = (f"top-1 agreement {entry['top1_agreement']:.4f}" if "top1_agreement" in entry
                  else f"max |diff| {entry['max_abs_diff']:.2e}")
        rows.append([name, entry["path"], f"{entry['bytes']:,}", parity,
                     f"{entry['latency_ms']:.3f} ms", entry["runtime"]])
    print(cli.table(["format", "file", "bytes", "parity", "latency (batch 1)", "runtime"], rows,
                    align="llrrrl"))
    print(f"manifest: {os.path.join(out_dir, 'manifest.json')}")


def run():
    """Console-script entry point (wootz-export)."""
    cli.run_tool(main, "wootz-export", __doc__)


if __name__ == "__main__":
    run()
