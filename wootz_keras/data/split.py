"""One split of a dataset, unbatched, batched on demand; adapters for what users pass.

A `Split` holds either random-access arrays (NumPy `(x, y)`, where `x` may
also be image file paths that a per-element transform decodes), or a
tf.data.Dataset of unbatched `(x, y)` elements. Nothing is loaded into
memory that is not already there: a folder of images stays a list of paths
until a batch is read.
"""

import itertools

import numpy as np

from wootz_keras.data.errors import DataError

#: Memory a shuffle buffer of decoded examples may take (generic tf.data splits).
SHUFFLE_BUFFER_BYTES = 256 << 20
MAX_SHUFFLE_BUFFER = 10_000

ACCEPTED = ("a (x, y) pair of arrays, a batched tf.data.Dataset of (x, y), a "
            "keras.utils.PyDataset of (x, y) batches, or a re-iterable of (x, y) "
            "batches (e.g. a torch DataLoader)")


class _Arrays:
    """Random-access arrays shared by the splits carved from them (no copies)."""

    def __init__(self, x, y, transform=None):
        self.x, self.y, self.transform = x, y, transform
        self._tensors = None

    def tensors(self):
        import tensorflow as tf
        if self._tensors is None:  # converted once, shared by every split of these arrays
            self._tensors = (tf.convert_to_tensor(self.x), tf.convert_to_tensor(self.y))
        return self._tensors


class Split:
    """One split of a dataset: unbatched `(x, y)` examples.

    Attributes:
        data: a `(x, y)` pair of NumPy arrays, or a tf.data.Dataset of
            unbatched `(x, y)` elements (built lazily for folder / resized
            sources).
        count: the number of examples (None only when truly unknown).

    Splits made by `load_data` and `split_off` over arrays or folders share
    the parent's arrays and keep only an index (8 bytes an example).

    Example:
        >>> from wootz_keras.data import load_digits
        >>> x, y = load_digits(limit=100)
        >>> split = Split((x, y))
        >>> split.count, split.numpy(limit=3)[0].shape
        (100, (3, 8, 8, 1))
        >>> xb, yb = next(iter(split.batches(32, shuffle=True, seed=1)))
        >>> tuple(xb.shape), yb.dtype.name
        ((32, 8, 8, 1), 'int64')
    """

    def __init__(self, data, count=None):
        self._arrays = None       # random-access arrays behind `data`, or None
        self._index = None        # which of them, in which order (None: all, in order)
        self._data = None
        if isinstance(data, tuple) and len(data) == 2:
            x, y = data
            _check_pair(x, y)
            self._arrays = _Arrays(x, y)
            self.count = len(x) if count is None else int(count)
        elif _is_tf_dataset(data):
            self._data = data
            self.count = count
        else:
            raise DataError(f"Split takes a (x, y) pair of arrays or a tf.data.Dataset of "
                            f"unbatched (x, y), got {_describe(data)}; as_split adapts {ACCEPTED}")

    @classmethod
    def from_arrays(cls, x, y, transform=None, index=None):
        """A split over random-access arrays: `x` images (or file paths), `y`
        labels, `transform` (TF ops, one `x` -> model-ready image) run lazily
        per example, `index` the examples it holds (default: all, in order)."""
        split = cls((x, y))
        split._arrays = _Arrays(x, y, transform)
        if index is not None:
            split._index = np.asarray(index, dtype=np.int64)
            split.count = len(split._index)
        return split

    def __repr__(self):
        kind = "tf.data"
        if self._arrays is not None:
            kind = "arrays" + (" + per-example transform" if self._arrays.transform else "")
        return f"Split({kind}, count={self.count})"

    # -- views -------------------------------------------------------------

    @property
    def data(self):
        if self._data is None:
            a = self._arrays
            if a.transform is None:
                if self._index is None:
                    return (a.x, a.y)
                self._data = (a.x[self._index], a.y[self._index])  # copied once, on request
            else:
                self._data = self._pipeline(shuffle=False, repeat=False, seed=0)
        return self._data

    @property
    def files(self):
        """The image file paths of a folder split, in order (else None)."""
        a = self._arrays
        if a is None or np.asarray(a.x).dtype.kind not in "US":
            return None
        return [str(p) for p in (a.x if self._index is None else a.x[self._index])]

    @property
    def element_spec(self):
        """`(x_spec, y_spec)` tf.TensorSpecs of one unbatched example."""
        import tensorflow as tf
        a = self._arrays
        if a is None:
            return tuple(self.data.element_spec)
        y_spec = tf.TensorSpec(a.y.shape[1:], tf.as_dtype(a.y.dtype))
        x_spec = tf.TensorSpec(a.x.shape[1:], tf.as_dtype(a.x.dtype))
        if a.transform is None:
            return x_spec, y_spec
        out = tf.function(a.transform).get_concrete_function(x_spec).structured_outputs
        return tf.TensorSpec(out.shape, out.dtype), y_spec

    def batches(self, batch_size, *, shuffle=False, repeat=False, seed=0, drop_remainder=False):
        """A batched tf.data.Dataset of `(x, y)`, ready for `model.fit`.

        `shuffle` reshuffles every pass (seeded: the same seed gives the same
        sequence of batches). Array and folder splits shuffle indices over the
        whole split; other tf.data splits use a buffer of at most
        `MAX_SHUFFLE_BUFFER` examples / `SHUFFLE_BUFFER_BYTES`. `repeat`
        repeats forever (batches then run across pass boundaries). Keras'
        `fit` takes a tf.data.Dataset on every backend.
        """
        import tensorflow as tf
        batch_size = _positive_int(batch_size, "batch_size")
        if self._arrays is not None:
            ds = self._pipeline(shuffle, repeat, seed, batch_size, drop_remainder)
        else:
            ds = self.data
            if shuffle:
                ds = ds.shuffle(self._buffer_size(), seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds.prefetch(tf.data.AUTOTUNE)

    def numpy(self, limit=None):
        """`(x, y)` arrays of the first `limit` examples (all when None).

        Every split `load_data` and `split_off` make is in seeded random
        order, so the first `limit` are a random sample; reading them costs
        `limit` examples (decoded, for folders).
        """
        a = self._arrays
        if a is not None and a.transform is None:
            if self._index is None:
                return np.asarray(a.x[:limit]), np.asarray(a.y[:limit])
            idx = self._index[:limit]
            return np.asarray(a.x[idx]), np.asarray(a.y[idx])
        ds = self.data if limit is None else self.data.take(limit)
        xs, ys = [], []
        for xb, yb in ds.batch(256):
            xs.append(xb.numpy())
            ys.append(yb.numpy())
        if not xs:
            x_spec, y_spec = self.element_spec
            return (np.zeros((0, *x_spec.shape), x_spec.dtype.as_numpy_dtype),
                    np.zeros((0, *y_spec.shape), y_spec.dtype.as_numpy_dtype))
        return np.concatenate(xs), np.concatenate(ys)

    def images(self, limit=None):
        """The images `x` of the first `limit` examples (verification, calibration).

        Example:
            >>> from wootz_keras.data import load_digits
            >>> Split(load_digits(limit=10)).images(4).shape
            (4, 8, 8, 1)
        """
        return self.numpy(limit)[0]

    # -- internals ---------------------------------------------------------

    def take_indices(self, positions):
        """A new split of this (random-access) split's examples at `positions`."""
        positions = np.asarray(positions, dtype=np.int64)
        index = positions if self._index is None else self._index[positions]
        split = Split.from_arrays(self._arrays.x, self._arrays.y, None, index)
        split._arrays = self._arrays  # shared, with its converted tensors
        return split

    def _pipeline(self, shuffle, repeat, seed, batch_size=None, drop_remainder=False):
        import tensorflow as tf
        a = self._arrays
        xt, yt = a.tensors()
        n = self.count
        ds = (tf.data.Dataset.range(n) if self._index is None
              else tf.data.Dataset.from_tensor_slices(self._index))
        if shuffle and n > 1:
            # Shuffling indices, not images: a full shuffle costs 8 bytes an example.
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if a.transform is None:
            if batch_size is None:
                return ds.map(lambda i: (tf.gather(xt, i), tf.gather(yt, i)))
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
            return ds.map(lambda i: (tf.gather(xt, i), tf.gather(yt, i)),
                          num_parallel_calls=tf.data.AUTOTUNE)
        transform = a.transform
        ds = ds.map(lambda i: (transform(tf.gather(xt, i)), tf.gather(yt, i)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if batch_size is not None:
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds

    def _buffer_size(self):
        x_spec, _ = self.element_spec
        dims = [d if d is not None else 256 for d in x_spec.shape]
        example_bytes = max(1, int(np.prod(dims)) * x_spec.dtype.size)
        size = max(1, min(MAX_SHUFFLE_BUFFER, SHUFFLE_BUFFER_BYTES // example_bytes))
        return min(size, self.count) if self.count else size


def split_off(split, count, seed=0):
    """Carve `count` examples (seeded) from `split`: returns `(rest, carved)`.

    Costs: for arrays and image folders, a seeded permutation of indices:
    nothing is read or copied (both parts index the parent's arrays or file
    paths, in random order). For other
    tf.data splits of known size, a boolean mask of `split.count` bytes picks
    the carved examples uniformly; then every pass over *either* part reads
    the whole parent once (its examples stay in the parent's order); call
    `.numpy()` once on a small carved part to read it only once. Of unknown
    size: a seeded shuffle buffer (`reshuffle_each_iteration=False`) then
    take / skip, so the carve is only as random as the buffer is large, and
    each pass over the rest reads through the carved part too.

    Example:
        >>> from wootz_keras.data import load_digits
        >>> rest, carved = split_off(Split(load_digits()), 297, seed=0)
        >>> rest.count, carved.count
        (1500, 297)
    """
    count = _positive_int(count, "count")
    n = split.count
    if n is not None and count >= n:
        raise DataError(f"cannot carve {count} examples from a split of {n}: at least one "
                        "must remain")
    if split._arrays is not None:
        perm = np.random.default_rng(seed).permutation(n)
        return split.take_indices(perm[count:]), split.take_indices(perm[:count])
    import tensorflow as tf
    ds = split.data
    if n is not None:
        mask = np.zeros(n, dtype=bool)
        mask[np.random.default_rng(seed).permutation(n)[:count]] = True
        mask = tf.constant(mask)

        def part(keep):
            picked = ds.enumerate().filter(lambda i, e: tf.equal(tf.gather(mask, i), keep))
            return picked.map(lambda i, e: e)
        return Split(part(False), n - count), Split(part(True), count)
    shuffled = ds.shuffle(split._buffer_size(), seed=seed, reshuffle_each_iteration=False)
    return Split(shuffled.skip(count), None), Split(shuffled.take(count), None)


def subset(split, limit, seed=0):
    """At most `limit` examples of `split`, picked like `split_off` (seeded).

    Example:
        >>> from wootz_keras.data import load_digits
        >>> subset(Split(load_digits()), 100).count
        100
    """
    if limit is None or (split.count is not None and limit >= split.count):
        return split
    return split_off(split, limit, seed)[1]


def as_split(data, count=None, batched=None):
    """Adapt what a library user passes into an unbatched `Split`.

    Accepts a `(x, y)` pair of arrays (kept as is), a tf.data.Dataset of
    `(x, y)` (batched ones are unbatched: the batch size is not kept, as
    `Split.batches` decides it; `batched=None` infers it from the element
    shapes), a `keras.utils.PyDataset` or a re-iterable of `(x, y)` batches
    (read lazily, one batch at a time, through `tf.data.Dataset.from_generator`).
    `count` overrides the size when the source does not know it. A `Split`
    passes through. Anything else is a DataError saying what is accepted.

    Example:
        >>> import tensorflow as tf
        >>> from wootz_keras.data import load_digits
        >>> x, y = load_digits(limit=100)
        >>> s = as_split(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), count=100)
        >>> s.count, tuple(s.element_spec[0].shape)
        (100, (8, 8, 1))
    """
    if isinstance(data, Split):
        return data
    if _is_tf_dataset(data):
        return _split_of_tf_dataset(data, count, batched)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            _is_array_like(a) for a in data):
        x, y = (np.asarray(a) for a in data)
        return Split((x, y))
    if _is_pydataset(data):
        return _split_of_pydataset(data, count)
    if isinstance(data, (dict, np.ndarray, str, bytes)) or not hasattr(data, "__iter__"):
        raise DataError(f"data: got {_describe(data)}; expected {ACCEPTED}")
    if iter(data) is data:
        raise DataError(f"data: got a one-shot iterator ({type(data).__name__}), which can "
                        "be read only once; wrap it in a keras.utils.PyDataset")
    return _split_of_iterable(data, count)


# -- adapters ----------------------------------------------------------------

def _split_of_tf_dataset(ds, count, batched):
    import tensorflow as tf
    spec = ds.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2
            and all(isinstance(s, tf.TensorSpec) for s in spec)):
        raise DataError(f"data: a tf.data.Dataset of (x, y) tensor pairs is expected; its "
                        f"element_spec is {spec}")
    if batched is None:
        batched = is_batched(*spec)
    if batched:
        ds = ds.unbatch()
    if count is None:
        n = int(ds.cardinality())
        count = n if n >= 0 else None
    return Split(ds, count)


def is_batched(x_spec, y_spec):
    """Whether `(x, y)` TensorSpecs describe batches (True) or single examples.

    Sparse labels of one example are scalars; batched labels have a leading
    batch dimension, unknown unless the batches were made with
    `drop_remainder`; images are (H, W, C) alone, (B, H, W, C) batched.
    """
    y_shape, x_shape = y_spec.shape, x_spec.shape
    if y_shape.rank == 0:
        return False
    if y_shape[0] is None or (x_shape.rank and x_shape[0] is None):
        return True
    return x_shape.rank == 4 or y_shape.rank >= 2


def _split_of_pydataset(pyds, count):
    try:
        n = pyds.num_batches
    except NotImplementedError:
        raise DataError(f"data: the {type(pyds).__name__} has neither __len__ nor num_batches "
                        "(return None from num_batches for an endless one)") from None
    if n == 0:
        raise DataError(f"data: the {type(pyds).__name__} holds no batches")
    first = _pair(pyds[0], type(pyds).__name__)
    if count is None and n is not None:
        last = first if n == 1 else _pair(pyds[n - 1], type(pyds).__name__)
        count = (n - 1) * len(first[0]) + len(last[0])

    def batches():
        pyds.on_epoch_begin()
        for i in (range(n) if n is not None else itertools.count()):
            yield _pair(pyds[i], type(pyds).__name__)
        pyds.on_epoch_end()
    return Split(_from_generator(batches, first), count)


def _split_of_iterable(data, count):
    name = type(data).__name__
    try:
        first = _pair(next(iter(data)), name)
    except StopIteration:
        raise DataError(f"data: the {name} holds no batches") from None

    def batches():
        for item in data:
            yield _pair(item, name)
    return Split(_from_generator(batches, first), count)


def _from_generator(batches, first):
    import tensorflow as tf
    x, y = first
    signature = (tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)),
                 tf.TensorSpec((None, *y.shape[1:]), tf.as_dtype(y.dtype)))
    return tf.data.Dataset.from_generator(batches, output_signature=signature).unbatch()


def _pair(item, name):
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        what = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else type(item).__name__
        raise DataError(f"data: each batch of the {name} must be an (x, y) pair; got {what} "
                        "(sample weights and multi-input dicts are not supported)")
    x, y = (np.asarray(a) for a in item)
    if x.ndim == 0 or len(x) != len(y):
        raise DataError(f"data: a batch of the {name} has x of shape {x.shape} and y of shape "
                        f"{y.shape}: expected the same number of examples")
    return x, y


# -- small helpers -----------------------------------------------------------

def _check_pair(x, y):
    if not (hasattr(x, "shape") and hasattr(y, "shape")):
        raise DataError(f"data: (x, y) must be arrays; got ({type(x).__name__}, "
                        f"{type(y).__name__})")
    if len(x.shape) == 0 or len(y.shape) == 0 or x.shape[0] != y.shape[0]:
        raise DataError(f"data: x has shape {tuple(x.shape)} and y has shape "
                        f"{tuple(y.shape)}: expected the same number of examples")


def _is_tf_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - other backends without TF
        return False
    return isinstance(data, tf.data.Dataset)


def _is_pydataset(data):
    import keras
    return isinstance(data, keras.utils.PyDataset)


def _is_array_like(a):
    return hasattr(a, "shape") and hasattr(a, "__len__") or isinstance(a, np.ndarray)


def _describe(data):
    if isinstance(data, (tuple, list)):
        kinds = ", ".join(type(a).__name__ for a in data[:3])
        return f"a {type(data).__name__} of {len(data)} ({kinds})"
    return type(data).__name__


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
