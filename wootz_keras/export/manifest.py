"""manifest.json: what was exported, how well it matches Keras, how fast it runs."""

import datetime
import os

import keras

from wootz_keras.utils.io import read_json, write_json

MANIFEST = "manifest.json"


def model_cost(model):
    """(params, flops) of a plain Keras model.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> model_cost(plain_cnn())[0] > 0
        True
    """
    from wootz_keras.graph.cost import count_flops, count_params
    return int(count_params(model)), int(count_flops(model))


def describe_verify_data(count, synthetic):
    """The manifest's "verify_data" field: where the parity images came from.

    Example:
        >>> describe_verify_data(32, synthetic=True)
        'synthetic, 32 seeded images'
    """
    return f"synthetic, {count} seeded images" if synthetic else f"given, {count} images"


def manifest_header(model, *, params, flops, stripped, quantize, verify_images,
                    synthetic_verify=False):
    """Model-level manifest fields (the per-format entries go under "formats").

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> manifest_header(plain_cnn(), params=1, flops=None, stripped=False,
        ...                 quantize=None, verify_images=10)["input_shape"]
        [None, 28, 28, 1]
    """
    import tensorflow as tf

    from wootz_keras import __version__
    from wootz_keras.export.savedmodel import input_name
    return {
        "model": model.name,
        "params": params,
        "flops": flops,
        "input_name": input_name(model),
        "input_shape": [None, *[int(d) for d in model.inputs[0].shape[1:]]],
        "output_shape": [None, *[int(d) for d in model.outputs[0].shape[1:]]],
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "wootz_keras_version": __version__,
        "stripped_pruning": stripped,
        "quantize": quantize,
        "verify_images": verify_images,
        "verify_data": describe_verify_data(verify_images, synthetic_verify),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "formats": {},
    }


def write_manifest(out_dir, manifest):
    """Write `out_dir/manifest.json` atomically; return its path.

    Example:
        >>> write_manifest("/tmp/wz_doc_export", {"formats": {}}).endswith("manifest.json")
        True
    """
    path = os.path.join(out_dir, MANIFEST)
    write_json(path, manifest)
    return path


def read_manifest(out_dir):
    """Read `out_dir/manifest.json` (ValueError if missing or corrupt).

    Example:
        >>> write_manifest("/tmp/wz_doc_export", {"formats": {}}) and read_manifest("/tmp/wz_doc_export")
        {'formats': {}}
    """
    return read_json(os.path.join(out_dir, MANIFEST), what="export manifest")
