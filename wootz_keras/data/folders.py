"""Folders of class sub-folders of images, read as `keras.utils.image_dataset_from_directory` does.

Keras indexes the folder (class names = sorted sub-folder names, the same
file formats); the splits keep file *paths* and decode lazily with the same
ops as Keras (decode, bilinear resize, float32 0-255), so carving a test or
validation split is a permutation of paths: no image is read to split.
"""

import os

import numpy as np

from wootz_keras.data.errors import DataError
from wootz_keras.data.images import IMAGE_SUFFIXES, check_size, file_decoder, sniff_image
from wootz_keras.data.split import Split

#: Sub-folder names that mark a folder already split into train and test.
TRAIN_DIR, TEST_DIR = "train", "test"


def is_split_layout(path):
    """True when `path` holds `train/` and `test/`, each with class sub-folders."""
    return all(os.path.isdir(os.path.join(path, d)) and _subdirs(os.path.join(path, d))
               for d in (TRAIN_DIR, TEST_DIR))


def load_image_folder(path, image_size=None, channels=None, test_fraction=0.2, seed=0,
                      check_images="all", what="--data"):
    """`(train, test, info)` Splits of a folder of class sub-folders of images.

    A folder holding `train/` and `test/` (each of class sub-folders) gives
    both splits; otherwise a seeded `test_fraction` of the images is the test
    split. `image_size` (H, W) defaults to the first image's size and
    `channels` to 1 when every checked image is grayscale, else 3.
    `check_images="all"` decodes every image once up front (in parallel; about
    one epoch of reading, no training) so an unreadable file is named before
    any training; `"header"` only checks every file's first bytes.

    Example:
        >>> import tempfile
        >>> from wootz_keras.data import load_digits
        >>> x, y = load_digits(limit=40)
        >>> folder = write_image_folder(x, y, tempfile.mkdtemp() + "/digits", size=(16, 16))
        >>> train, test, info = load_image_folder(folder, test_fraction=0.25)
        >>> train.count, test.count, info["image_shape"], info["num_classes"]
        (30, 10, (16, 16, 3), 10)
    """
    path = os.fspath(path)
    if check_images not in ("all", "header"):
        raise DataError(f"check_images must be 'all' or 'header', got {check_images!r}")
    split_layout = is_split_layout(path)
    root = os.path.join(path, TRAIN_DIR) if split_layout else path
    paths, labels, class_names = _index(root, what)
    if split_layout:
        test_paths, test_labels, test_names = _index(os.path.join(path, TEST_DIR), what)
        unknown = sorted(set(test_names) - set(class_names))
        if unknown:
            raise DataError(f"{what}: {os.path.join(path, TEST_DIR)} has classes {unknown} "
                            f"that {root} lacks")
        remap = np.array([class_names.index(n) for n in test_names], dtype=np.int64)
        test_labels = remap[test_labels]
    if len(class_names) < 2:
        raise DataError(f"{what}: {root} has a single class sub-folder ({class_names[0]!r}); "
                        "a classifier needs at least 2")
    all_paths = paths + (test_paths if split_layout else [])
    shapes = _check_files(all_paths, check_images, what)
    size = check_size(image_size) or tuple(int(d) for d in shapes[0][:2])
    if channels is None:
        channels = 1 if all(s[2] == 1 for s in shapes) else 3
    if channels not in (1, 3, 4):
        raise DataError(f"{what}: {path}: images can be read with 1 (grayscale), 3 (RGB) or "
                        f"4 (RGBA) channels, not {channels}")
    decode = file_decoder(size, channels)
    order = np.random.default_rng(seed).permutation(len(paths))  # splits in random order
    if split_layout:
        test_order = np.random.default_rng(seed + 1).permutation(len(test_paths))
        train = Split.from_arrays(np.array(paths), labels, decode, index=order)
        test = Split.from_arrays(np.array(test_paths), test_labels, decode, index=test_order)
    else:
        n_test = int(round(len(paths) * test_fraction))
        if n_test < 1 or n_test >= len(paths):
            raise DataError(f"{what}: {len(paths)} images in {path} cannot be split with "
                            f"test_fraction={test_fraction}")
        everything = Split.from_arrays(np.array(paths), labels, decode)
        test = everything.take_indices(order[:n_test])
        train = everything.take_indices(order[n_test:])
    info = {"num_classes": len(class_names), "class_names": list(class_names),
            "image_shape": (*size, channels),
            "source": f"image folder {path} ({len(class_names)} classes, "
                      f"{len(all_paths):,} images{', train/ + test/' if split_layout else ''})"}
    return train, test, info


def write_image_folder(x, y, path, size=None, rgb=True, class_names=None):
    """Write images `x` with labels `y` as PNGs in class sub-folders of `path`.

    `x` is (N, H, W) or (N, H, W, C), floats in [0, 1] (scaled to 0-255) or
    0-255 values; `size` (H, W) resizes, `rgb` turns grayscale into RGB.
    Class folders are named by `class_names` (default zero-padded class
    numbers, so that Keras' alphabetical order is the numeric one); every
    named class gets a folder, even an empty one. Written atomically: a
    failure leaves `path` as it was. Returns `path`.

    Example:
        >>> import os, tempfile
        >>> from wootz_keras.data import load_digits
        >>> x, y = load_digits(limit=20)
        >>> folder = write_image_folder(x, y, tempfile.mkdtemp() + "/d", size=(16, 16))
        >>> sorted(os.listdir(folder))[:3]
        ['0', '1', '2']
    """
    import tensorflow as tf

    from wootz_keras.utils.io import atomic_path
    x = np.asarray(x)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"x must be (N, H, W[, C]) images matching y, got {x.shape} and {y.shape}")
    if class_names is None:
        width = len(str(int(y.max()))) if len(y) else 1
        class_names = [f"{k:0{width}d}" for k in range(int(y.max()) + 1 if len(y) else 0)]
    if len(y) and y.max() >= len(class_names):
        raise ValueError(f"label {int(y.max())} has no name among {len(class_names)} class_names")
    scale = 255.0 if x.dtype.kind == "f" and x.size and x.max() <= 1.0 else 1.0
    with atomic_path(path) as tmp:
        for name in class_names:
            os.makedirs(os.path.join(tmp, name))
        for start in range(0, len(x), 256):
            batch = tf.convert_to_tensor(x[start:start + 256].astype(np.float32) * scale)
            if size is not None:
                batch = tf.image.resize(batch, check_size(size))
            if rgb and batch.shape[-1] == 1:
                batch = tf.image.grayscale_to_rgb(batch)
            batch = tf.cast(tf.clip_by_value(tf.round(batch), 0, 255), tf.uint8)
            for i, image in enumerate(batch):
                n = start + i
                target = os.path.join(tmp, class_names[y[n]], f"{n:06d}.png")
                with open(target, "wb") as f:
                    f.write(tf.io.encode_png(image).numpy())
    return os.fspath(path)


# -- internals ---------------------------------------------------------------

def _subdirs(path):
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _index(root, what):
    """(paths, labels, class_names) through Keras' own directory indexing."""
    import keras
    if not _subdirs(root):
        entries = os.listdir(root)
        images = [e for e in entries if e.lower().endswith(IMAGE_SUFFIXES)]
        if images:
            raise DataError(f"{what}: {root} holds {len(images)} images but no class "
                            "sub-folders; put each class's images in a sub-folder of its own")
        kind = "a folder without sub-folders" if entries else "an empty folder"
        raise DataError(f"{what}: {root} is {kind}; expected class sub-folders of images")
    try:
        ds = keras.utils.image_dataset_from_directory(
            root, labels="inferred", label_mode="int", batch_size=None, shuffle=False,
            verbose=False)
    except ValueError as e:
        if "No images found" in str(e):
            raise DataError(f"{what}: no images ({' '.join(IMAGE_SUFFIXES)}) in the class "
                            f"sub-folders of {root}") from None
        raise DataError(f"{what}: {root}: {e}") from None
    class_names = list(ds.class_names)
    index = {name: i for i, name in enumerate(class_names)}
    paths = list(ds.file_paths)
    labels = np.array([index[os.path.relpath(p, root).split(os.sep)[0]] for p in paths],
                      dtype=np.int64)
    return paths, labels, class_names


def _check_files(paths, check_images, what):
    """Each image's (H, W, C) (just the first one's for "header"); DataError
    naming the first unreadable file."""
    bad = []
    for p in paths:
        try:
            if sniff_image(p) is None:
                bad.append(p)
        except OSError:
            bad.append(p)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{what}: {bad[0]} is not a readable image: expected PNG, JPEG, GIF "
                        f"or BMP data{more}")
    shapes = _decoded_shapes(paths if check_images == "all" else paths[:1])
    if len(shapes) < (len(paths) if check_images == "all" else 1):
        bad = [p for p in paths if p not in shapes]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{what}: {bad[0]} is not a readable image: it cannot be "
                        f"decoded{more}")
    return [shapes[p] for p in (paths if check_images == "all" else paths[:1])]


def _decoded_shapes(paths):
    """{path: (H, W, C)} of the files that decode; the others are left out."""
    import tensorflow as tf

    def shape(p):
        image = tf.image.decode_image(tf.io.read_file(p), expand_animations=False)
        return p, tf.shape(image)
    ds = tf.data.Dataset.from_tensor_slices(np.array(paths)).map(
        shape, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    out = {}
    for ps, ss in ds.batch(1024):
        for p, s in zip(ps.numpy(), ss.numpy()):
            out[p.decode()] = tuple(int(d) for d in s)
    return out
