"""Class labels: sparse int64 or one-hot float32, checked once when data is loaded."""

import numpy as np

from wootz_keras.data.errors import DataError

ONE_HOT_TOLERANCE = 1e-3


def class_labels(y, what):
    """`(labels, label_format, num_classes)` of a label array, or a DataError.

    Sparse labels, shaped (N,) or (N, 1), become int64 (integral floats are
    accepted); one-hot (or soft, rows summing to 1) labels, shaped (N, K),
    become float32. Non-integral or negative sparse labels are an error:
    regression is not supported.

    Example:
        >>> class_labels(np.array([0, 2, 1]), "y")[1:]
        ('sparse', 3)
        >>> class_labels(np.eye(4)[[0, 3]], "y")[1:]
        ('one_hot', 4)
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        return sparse_labels(y, what), "sparse", int(y.max()) + 1 if len(y) else 0
    if y.ndim == 2:
        return one_hot_labels(y, what), "one_hot", int(y.shape[1])
    raise DataError(f"{what}: labels have shape {y.shape}; expected class labels (N,) or "
                    "one-hot (N, K) (segmentation / dense labels are not supported)")


def sparse_labels(y, what):
    """Check sparse labels (N,) and return them as int64."""
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f":
            raise DataError(f"{what}: labels of dtype {y.dtype} are not class numbers")
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
            raise DataError(f"{what}: labels must be class numbers 0..K-1, found {bad!r} "
                            "(regression is not supported)")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: labels must be class numbers 0..K-1, found {int(y.min())}")
    return y


def one_hot_labels(y, what):
    """Check one-hot / soft labels (N, K), K >= 2, and return them as float32."""
    if y.shape[1] < 2:
        raise DataError(f"{what}: one-hot labels need at least 2 columns, got {y.shape}")
    y = y.astype(np.float32)
    rows = y.sum(axis=1)
    if (y < 0).any() or not np.allclose(rows, 1.0, atol=ONE_HOT_TOLERANCE):
        i = int(np.argmax(np.abs(rows - 1.0) + (y < 0).any(axis=1)))
        raise DataError(f"{what}: labels of shape {y.shape} are neither class numbers nor "
                        f"one-hot rows (row {i} sums to {rows[i]:.3g}); regression and "
                        "multi-label targets are not supported")
    return y


def merge_formats(parts, what):
    """The common `(label_format, num_classes)` of several `(format, classes)` parts."""
    formats = {f for f, _ in parts}
    if len(formats) > 1:
        raise DataError(f"{what}: the train and test labels differ in format "
                        f"({', '.join(sorted(formats))})")
    fmt = formats.pop()
    widths = [k for _, k in parts]
    if fmt == "one_hot" and len(set(widths)) > 1:
        raise DataError(f"{what}: the train and test one-hot labels differ in width {widths}")
    return fmt, max(widths)
