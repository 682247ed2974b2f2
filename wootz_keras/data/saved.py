"""Folders written by `tf.data.Dataset.save` of `(x, y)` elements (or batches).

Read with `tf.data.Dataset.load` in a fixed shard order (so seeded splits
are the same on every machine); one pass over the labels when loading
counts the examples and checks the classes. Images stay on disk.
"""

import os

import numpy as np

from wootz_keras.data.errors import DataError
from wootz_keras.data.images import array_transform
from wootz_keras.data.labels import class_labels
from wootz_keras.data.split import Split, is_batched

SPEC_FILE = "dataset_spec.pb"


def is_saved_dataset(path):
    """True when `path` is a folder written by `tf.data.Dataset.save`."""
    return os.path.isfile(os.path.join(path, SPEC_FILE))


def _in_order(shards):
    # The default reader interleaves as many shards as the machine has cores.
    return shards.interleave(lambda shard: shard, cycle_length=4,
                             num_parallel_calls=4, deterministic=True)


def load_saved_dataset(path, image_size=None, channels=None, what="--data"):
    """`(split, info)` of a `tf.data.Dataset.save` folder of `(x, y)` elements.

    Example:
        >>> import tempfile, tensorflow as tf
        >>> from wootz_keras.data import load_digits
        >>> folder = tempfile.mkdtemp() + "/saved"
        >>> tf.data.Dataset.from_tensor_slices(load_digits(limit=50)).save(folder)
        >>> split, info = load_saved_dataset(folder, image_size=(16, 16))
        >>> split.count, info["image_shape"], info["num_classes"]
        (50, (16, 16, 1), 10)
    """
    import tensorflow as tf
    path = os.fspath(path)
    try:
        ds = tf.data.Dataset.load(path, reader_func=_in_order)
    except (tf.errors.OpError, ValueError) as e:
        reason = (getattr(e, "message", None) or str(e)).splitlines()[0]
        raise DataError(f"{what}: cannot load {path} with tf.data.Dataset.load: {reason}") from None
    spec = ds.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2
            and all(isinstance(s, tf.TensorSpec) for s in spec)):
        raise DataError(f"{what}: {path} must hold (x, y) elements; its element_spec is {spec}")
    if is_batched(*spec):
        ds = ds.unbatch()
    x_spec, y_spec = ds.element_spec
    shape = tuple(x_spec.shape)
    if len(shape) == 2:
        ds = ds.map(lambda x, y: (x[..., None], y))
        shape = (*shape, 1)
    if len(shape) != 3 or shape[2] is None:
        raise DataError(f"{what}: {path} holds x of shape {shape}: expected images (H, W, C)")
    if (shape[0] is None or shape[1] is None) and image_size is None:
        raise DataError(f"{what}: {path} holds images of varying size {shape}; give an image "
                        "size to resize them to")
    try:
        y = np.concatenate([b.numpy() for b in ds.map(lambda x, y: y).batch(8192)])
    except tf.errors.OpError as e:
        raise DataError(f"{what}: cannot read {path}: {e.message.splitlines()[0]}") from None
    if len(y) == 0:
        raise DataError(f"{what}: {path} holds no examples")
    labels, label_format, num_classes = class_labels(y, f"{what}: {path} labels")
    transform, out_shape = array_transform(shape, x_spec.dtype.as_numpy_dtype, image_size,
                                           channels, f"{what}: {path}")
    cast_y = tf.int64 if label_format == "sparse" else tf.float32
    squeeze = label_format == "sparse" and y_spec.shape.rank == 1

    def prepare(x, y):
        y = tf.cast(y[0] if squeeze else y, cast_y)
        return (transform(x) if transform else x), y
    split = Split(ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True),
                  len(labels))
    info = {"image_shape": out_shape, "label_format": label_format, "num_classes": num_classes,
            "source": f"saved tf.data dataset {path} ({len(labels):,} examples)"}
    return split, info
