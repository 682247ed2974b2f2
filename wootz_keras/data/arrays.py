"""In-memory image arrays (.npz files, the built-in Fashion-MNIST) as Splits.

Arrays stay at their stored size and dtype; resizing, channel conversion and
the cast to float32 run lazily, per example, when a batch is read.
"""

import os
import zipfile

import numpy as np

from wootz_keras.data.errors import DataError
from wootz_keras.data.images import array_transform
from wootz_keras.data.labels import class_labels, merge_formats
from wootz_keras.data.split import Split

NPZ_TRAIN_KEYS = ("x_train", "y_train")
NPZ_TEST_KEYS = ("x_test", "y_test")


def image_array(x, what):
    """`x` as (N, H, W, C) (a channel axis is added to (N, H, W)); DataError otherwise."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{what} has shape {x.shape}: expected images (N, H, W) or (N, H, W, C)")
    if x.dtype.kind not in "uif":
        raise DataError(f"{what} has dtype {x.dtype}: expected numbers")
    return x


def array_splits(parts, image_size, channels, what, seed=0):
    """Splits of `parts` = [(x, y, name), ...] plus their common description.

    Each split indexes its arrays in a seeded random order (no copy).
    Returns `(splits, info)` with info keys image_shape, label_format, num_classes.
    """
    arrays, formats = [], []
    for x, y, name in parts:
        x = image_array(x, f"{what}: {name[0]}")
        labels, fmt, classes = class_labels(y, f"{what}: {name[1]}")
        if len(x) != len(labels):
            raise DataError(f"{what}: {name[0]} holds {len(x)} images but {name[1]} holds "
                            f"{len(labels)} labels")
        if len(x) == 0:
            raise DataError(f"{what}: {name[0]} holds no images")
        arrays.append((x, labels))
        formats.append((fmt, classes))
    label_format, num_classes = merge_formats(formats, what)
    shapes = {x.shape[1:] for x, _ in arrays}
    if len(shapes) > 1 and image_size is None:
        raise DataError(f"{what}: the train and test images differ in shape "
                        f"{sorted(shapes)}; give an image size to resize them to")
    splits, out_shape = [], None
    for i, (x, labels) in enumerate(arrays):
        transform, out_shape = array_transform(x.shape[1:], x.dtype, image_size, channels, what)
        order = np.random.default_rng(seed + i).permutation(len(x))
        splits.append(Split.from_arrays(x, labels, transform, index=order))
    return splits, {"image_shape": out_shape, "label_format": label_format,
                    "num_classes": num_classes}


def read_npz(path, what):
    """{key: array} of the train (and, when present, test) arrays of an .npz file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            missing = [k for k in NPZ_TRAIN_KEYS if k not in keys]
            if missing:
                raise DataError(f"{what}: {path} has no {' / '.join(missing)} (found keys: "
                                f"{', '.join(keys) or 'none'}); expected x_train, y_train and "
                                "optionally x_test, y_test")
            test = [k for k in NPZ_TEST_KEYS if k in keys]
            if len(test) == 1:
                raise DataError(f"{what}: {path} has {test[0]} without "
                                f"{({'x_test', 'y_test'} - set(test)).pop()}")
            return {k: f[k] for k in NPZ_TRAIN_KEYS + tuple(test)}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{what}: cannot read {path} as an .npz file: {reason}") from None


def npz_description(path, arrays):
    n_test = f", x_test {len(arrays['x_test']):,}" if "x_test" in arrays else ""
    return f"npz file {os.fspath(path)} (x_train {len(arrays['x_train']):,}{n_test})"
