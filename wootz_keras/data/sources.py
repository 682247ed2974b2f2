"""`load_data`: the user's data (a name, an image folder, .npz, saved tf.data) as a `Dataset`."""

import dataclasses
import os

from wootz_keras.data.arrays import array_splits, npz_description, read_npz
from wootz_keras.data.errors import DataError
from wootz_keras.data.folders import load_image_folder
from wootz_keras.data.images import check_size
from wootz_keras.data.saved import is_saved_dataset, load_saved_dataset
from wootz_keras.data.split import Split, split_off, subset

BUILTIN = ("fashion_mnist",)
EXPECTED = ("fashion_mnist, a folder of class sub-folders of images, an .npz file with "
            "x_train and y_train, or a folder written by tf.data.Dataset.save")


@dataclasses.dataclass
class Dataset:
    """A dataset as the library trains on it: train and test `Split`s.

    Attributes:
        train, test: unbatched Splits of `(x, y)`.
        num_classes: classes in the labels (folders: sub-folders; sparse:
            largest label + 1; one-hot: width).
        image_shape: (H, W, C) of the images as fed to the model.
        label_format: "sparse" (int64) or "one_hot" (float32).
        source: a short human description.
        class_names: folder names, else None.
    """
    train: Split
    test: Split
    num_classes: int
    image_shape: tuple
    label_format: str
    source: str
    class_names: list = None


def load_data(spec, *, image_size=None, channels=None, test_fraction=0.2, seed=0,
              train_limit=None, test_limit=None, check_images="all", what="--data"):
    """Load `spec` as a `Dataset`: images fed as Keras loads them.

    `spec` is "fashion_mnist" (the built-in real dataset, pixels in [0, 1]),
    a folder of class sub-folders of images (float32 0-255, as
    `keras.utils.image_dataset_from_directory` gives; a folder with `train/`
    and `test/` sub-folders gives both splits), an `.npz` file with x_train,
    y_train and optionally x_test, y_test (values kept, cast to float32), or
    a folder written by `tf.data.Dataset.save` of `(x, y)` elements.
    `image_size` (H, W) resizes (bilinear) and `channels` (1 or 3) converts
    grayscale <-> RGB, so data fits a model's input. Without a test split, a
    seeded `test_fraction` of the data becomes one. `train_limit` /
    `test_limit` keep a seeded random subset. `check_images`: see
    `load_image_folder`. `what` names the flag in error messages.
    Bad data is a one-line `DataError` naming the file or folder.

    Example:
        >>> data = load_data("fashion_mnist", image_size=(32, 32), channels=3,
        ...                  train_limit=500, test_limit=100)
        >>> data.train.count, data.test.count, data.image_shape, data.num_classes
        (500, 100, (32, 32, 3), 10)
        >>> data.train.images(2).shape
        (2, 32, 32, 3)
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    image_size = check_size(image_size, "image_size")
    if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int)
                                 or channels < 1):
        raise DataError(f"channels must be a positive integer (1 grayscale, 3 RGB), got "
                        f"{channels!r}")
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
        raise DataError(f"{what}: got {spec!r}; expected {EXPECTED}")
    spec = os.fspath(spec)
    class_names, has_test = None, True
    if spec in BUILTIN:
        (train, test), info = _fashion_mnist(image_size, channels, train_limit, test_limit,
                                             seed, what)
    elif not os.path.exists(spec):
        raise DataError(f"{what}: {spec}: no such file or folder; expected {EXPECTED}")
    elif os.path.isfile(spec):
        if not spec.lower().endswith(".npz"):
            raise DataError(f"{what}: {spec} is a file but not an .npz; expected {EXPECTED}")
        arrays = read_npz(spec, what)
        parts = [(arrays["x_train"], arrays["y_train"], ("x_train", "y_train"))]
        has_test = "x_test" in arrays
        if has_test:
            parts.append((arrays["x_test"], arrays["y_test"], ("x_test", "y_test")))
        splits, info = array_splits(parts, image_size, channels, f"{what}: {spec}", seed)
        train = splits[0]
        test = splits[1] if has_test else None
        info["source"] = npz_description(spec, arrays)
    elif is_saved_dataset(spec):
        train, info = load_saved_dataset(spec, image_size, channels, what)
        test, has_test = None, False
    else:
        train, test, info = load_image_folder(spec, image_size, channels, test_fraction, seed,
                                              check_images, what)
        class_names = info["class_names"]
    if not has_test:
        n_test = int(round(train.count * test_fraction))
        if n_test < 1 or n_test >= train.count:
            raise DataError(f"{what}: {spec}: {train.count} examples cannot be split with "
                            f"test_fraction={test_fraction}")
        train, test = split_off(train, n_test, seed)
    if info["num_classes"] < 2:
        raise DataError(f"{what}: {spec}: the labels hold {info['num_classes']} class; a "
                        "classifier needs at least 2")
    train = subset(train, _limit(train_limit, "train_limit"), seed)
    test = subset(test, _limit(test_limit, "test_limit"), seed + 1)
    return Dataset(train=train, test=test, num_classes=info["num_classes"],
                   image_shape=tuple(info["image_shape"]),
                   label_format=info.get("label_format", "sparse"), source=info["source"],
                   class_names=class_names)


def _limit(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return value


def _fashion_mnist(image_size, channels, train_limit, test_limit, seed, what):
    from wootz_keras.data.datasets import DataUnavailableError, load_fashion_mnist
    try:
        train = load_fashion_mnist("train", limit=train_limit, seed=seed)
        test = load_fashion_mnist("test", limit=test_limit, seed=seed)
    except DataUnavailableError as e:
        raise DataUnavailableError(f"{what}=fashion_mnist: {e}") from None
    splits, info = array_splits([(*train, ("train images", "train labels")),
                                 (*test, ("test images", "test labels"))],
                                image_size, channels, f"{what}: fashion_mnist", seed)
    info["num_classes"] = 10
    info["source"] = (f"Fashion-MNIST (built-in, {len(train[0]):,} train / "
                      f"{len(test[0]):,} test images)")
    return splits, info
