"""wootz_keras.data: the user's data (folders, .npz, saved tf.data, PyDataset) on real images."""

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from wootz_keras.data import (
    Split,
    as_split,
    check_fits,
    load_data,
    load_data_for,
    load_fashion_mnist,
    split_off,
    write_image_folder,
)

PER_CLASS = 20


def fashion_per_class(per_class=PER_CLASS):
    """`per_class` real Fashion-MNIST test images of each of the 10 classes."""
    x, y = load_fashion_mnist("test", limit=2000, seed=0)
    idx = np.concatenate([np.flatnonzero(y == k)[:per_class] for k in range(10)])
    return x[idx], y[idx]


@pytest.fixture(scope="module")
def fashion_folder(tmp_path_factory):
    x, y = fashion_per_class()
    return write_image_folder(x, y, tmp_path_factory.mktemp("data") / "fashion", size=(32, 32))


def digests(x):
    return {hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest() for a in x}


def small_classifier(input_shape=(32, 32, 3), classes=10):
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


# -- image folders -----------------------------------------------------------

def test_folder_loads_as_keras_reads_it(fashion_folder):
    data = load_data(fashion_folder, test_fraction=0.2, seed=0)
    assert (data.train.count, data.test.count) == (160, 40)
    assert data.num_classes == 10 and data.label_format == "sparse"
    assert data.image_shape == (32, 32, 3)
    assert data.class_names == [str(k) for k in range(10)]
    assert "image folder" in data.source and "10 classes" in data.source
    x, y = data.train.numpy()
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (160, 32, 32, 3)
    assert 1.0 < x.max() <= 255.0  # float 0-255, as Keras loads images
    counts = np.bincount(np.concatenate([y, data.test.numpy()[1]]), minlength=10)
    assert counts.tolist() == [PER_CLASS] * 10
    # Same pixels, resize and labels as keras.utils.image_dataset_from_directory.
    keras_ds = keras.utils.image_dataset_from_directory(
        fashion_folder, image_size=(24, 24), batch_size=None, shuffle=False, verbose=False)
    by_path = dict(zip(keras_ds.file_paths, keras_ds))
    resized = load_data(fashion_folder, image_size=(24, 24), seed=0)
    paths = resized.train.files[:8]
    ours_x, ours_y = resized.train.numpy(8)
    for p, xi, yi in zip(paths, ours_x, ours_y):
        kx, ky = by_path[p]
        np.testing.assert_allclose(xi, kx.numpy(), atol=1e-4)
        assert int(yi) == int(ky)


def test_folder_split_is_seeded_and_disjoint(fashion_folder):
    a = load_data(fashion_folder, seed=3)
    b = load_data(fashion_folder, seed=3)
    c = load_data(fashion_folder, seed=4)
    train, test = set(a.train.files), set(a.test.files)
    assert not train & test and len(train | test) == 10 * PER_CLASS
    assert list(a.test.files) == list(b.test.files)
    assert set(c.test.files) != test
    rest, val = split_off(a.train, 30, seed=0)
    assert (rest.count, val.count) == (130, 30)
    assert not set(rest.files) & set(val.files)
    assert set(rest.files) | set(val.files) == train


def test_folder_resized_to_grayscale(fashion_folder):
    data = load_data(fashion_folder, image_size=(28, 28), channels=1, train_limit=50,
                     test_limit=10)
    assert data.image_shape == (28, 28, 1)
    assert (data.train.count, data.test.count) == (50, 10)
    assert data.test.images(10).shape == (10, 28, 28, 1)


def test_folder_with_train_and_test_subfolders(tmp_path):
    x, y = fashion_per_class(6)
    write_image_folder(x[y < 5], y[y < 5], tmp_path / "d" / "train", size=(16, 16))
    write_image_folder(x[y >= 5][:10], y[y >= 5][:10] - 5, tmp_path / "d" / "test", size=(16, 16),
                       class_names=["0", "1", "2", "3", "4"])
    data = load_data(tmp_path / "d")
    assert data.num_classes == 5 and (data.train.count, data.test.count) == (30, 10)
    assert "train/ + test/" in data.source


def test_load_data_for_fits_and_trains(fashion_folder):
    model = small_classifier((28, 28, 3))
    data = load_data_for(model, fashion_folder)
    assert data.image_shape == (28, 28, 3)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(data.train.batches(32, shuffle=True, repeat=True), steps_per_epoch=3,
                        epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    loss, acc = model.evaluate(data.test.batches(64), verbose=0)
    assert 0.0 <= acc <= 1.0


def test_fully_convolutional_model_takes_image_size(fashion_folder):
    model = small_classifier((None, None, 3))
    data = load_data_for(model, fashion_folder, image_size=(20, 20))
    assert data.image_shape == (20, 20, 3)


# -- .npz, saved tf.data, built-in -------------------------------------------

def test_npz_with_and_without_test(tmp_path):
    x, y = fashion_per_class(10)
    raw = (x[..., 0] * 255).astype(np.uint8)  # (N, 28, 28) uint8, no channel axis
    np.savez(tmp_path / "both.npz", x_train=raw[:80], y_train=y[:80], x_test=raw[80:],
             y_test=y[80:])
    data = load_data(tmp_path / "both.npz")
    assert (data.train.count, data.test.count) == (80, 20)
    test_y = data.test.numpy()[1]  # in seeded random order, not the stored one
    assert sorted(test_y) == sorted(y[80:]) and not np.array_equal(test_y, y[80:])
    assert data.image_shape == (28, 28, 1) and data.num_classes == 10
    xs, _ = data.train.numpy(5)
    assert xs.dtype == np.float32 and xs.max() > 1  # values kept, cast to float32
    np.savez(tmp_path / "train_only.npz", x_train=raw, y_train=np.eye(10)[y])
    data = load_data(tmp_path / "train_only.npz", test_fraction=0.25, image_size=(32, 32),
                     channels=3, seed=1)
    assert (data.train.count, data.test.count) == (75, 25)
    assert data.label_format == "one_hot" and data.num_classes == 10
    xs, ys = data.test.numpy()
    assert xs.shape == (25, 32, 32, 3) and ys.shape == (25, 10)
    assert digests(data.train.numpy()[0]).isdisjoint(digests(xs))


@pytest.mark.parametrize("batched", [False, True])
def test_saved_dataset(tmp_path, batched):
    x, y = fashion_per_class(10)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds.batch(16).save(str(tmp_path / "s")) if batched else ds.save(str(tmp_path / "s"))
    data = load_data(tmp_path / "s", test_fraction=0.2, seed=0, image_size=(32, 32), channels=3)
    assert (data.train.count, data.test.count) == (80, 20)
    assert data.image_shape == (32, 32, 3) and data.num_classes == 10
    train_x, train_y = data.train.numpy()
    test_x, _ = data.test.numpy()
    assert train_x.shape == (80, 32, 32, 3) and train_y.dtype == np.int64
    assert len(digests(train_x) | digests(test_x)) == 100
    assert not digests(train_x) & digests(test_x)
    again = load_data(tmp_path / "s", seed=0, image_size=(32, 32), channels=3)
    np.testing.assert_array_equal(again.test.numpy()[0], test_x)


def test_fashion_mnist_builtin_resized():
    data = load_data("fashion_mnist", image_size=(32, 32), channels=3, train_limit=300,
                     test_limit=100)
    assert (data.train.count, data.test.count) == (300, 100)
    xb, yb = next(iter(data.train.batches(64, shuffle=True)))
    assert tuple(xb.shape) == (64, 32, 32, 3) and float(tf.reduce_max(xb)) <= 1.0
    assert data.label_format == "sparse" and "Fashion-MNIST" in data.source


# -- library data: arrays, tf.data, PyDataset --------------------------------

class FashionBatches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size, self.reads = x, y, batch_size, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        self.reads += 1
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def test_pydataset_is_read_lazily(fashion_test):
    x, y = fashion_test
    pyds = FashionBatches(x[:100], y[:100], 32)
    split = as_split(pyds)
    assert split.count == 100 and pyds.reads == 2  # the first and the last batch only
    xs, ys = split.numpy()
    np.testing.assert_array_equal(xs, x[:100])
    np.testing.assert_array_equal(ys, y[:100])
    sizes = [len(b[0]) for b in split.batches(40)]
    assert sizes == [40, 40, 20]


class EndlessBatches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    @property
    def num_batches(self):
        return None

    def __getitem__(self, i):
        j = (i * 8) % (len(self.x) - 8)
        return self.x[j:j + 8], self.y[j:j + 8]


def test_endless_pydataset(fashion_test):
    x, y = fashion_test
    split = as_split(EndlessBatches(x, y))
    assert split.count is None
    xb, yb = next(iter(split.batches(20)))
    np.testing.assert_array_equal(yb.numpy(), y[:20])
    assert len(split.numpy(limit=50)[0]) == 50


def test_batched_tf_dataset_is_unbatched(fashion_test):
    x, y = fashion_test
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(10, dtype=np.float32)[y])).batch(16)
    split = as_split(ds, count=len(x))
    x_spec, y_spec = split.element_spec
    assert tuple(x_spec.shape) == (28, 28, 1) and tuple(y_spec.shape) == (10,)
    assert [len(b[0]) for b in split.batches(100)] == [100, 100]
    check_fits(small_classifier((28, 28, 1)), split)
    unbatched = as_split(tf.data.Dataset.from_tensor_slices((x, y)))
    assert unbatched.count == len(x) and tuple(unbatched.element_spec[0].shape) == (28, 28, 1)


def test_batches_are_seeded_and_reshuffled(digits):
    split = Split(digits)
    first = [b[1].numpy() for b in split.batches(600, shuffle=True, seed=5)]
    again = [b[1].numpy() for b in split.batches(600, shuffle=True, seed=5)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    epochs = split.batches(len(digits[0]), shuffle=True, repeat=True, seed=5).take(2)
    e1, e2 = (b[1].numpy() for b in epochs)
    assert not np.array_equal(e1, e2) and sorted(e1) == sorted(e2) == sorted(digits[1])
    plain = next(iter(split.batches(10)))
    np.testing.assert_array_equal(plain[1].numpy(), digits[1][:10])


def test_split_off_arrays_and_tf_data(digits):
    x, y = digits
    parent = Split((x, y))
    rest, carved = split_off(parent, 300, seed=2)
    assert (rest.count, carved.count) == (1497, 300)
    assert not digests(rest.data[0]) & digests(carved.data[0])
    assert rest._arrays is carved._arrays is parent._arrays  # indexed, not copied
    again_rest, _ = split_off(parent, 300, seed=2)
    np.testing.assert_array_equal(again_rest.numpy(20)[1], rest.numpy(20)[1])
    ds_split = as_split(tf.data.Dataset.from_tensor_slices((x, y)))
    rest, carved = split_off(ds_split, 300, seed=2)
    rx, cx = rest.numpy()[0], carved.numpy()[0]
    assert (len(rx), len(cx)) == (1497, 300) == (rest.count, carved.count)
    assert digests(rx) | digests(cx) == digests(x) and not digests(rx) & digests(cx)
    np.testing.assert_array_equal(carved.numpy()[0], cx)  # the same on every pass
    unknown = Split(tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True))
    rest, carved = split_off(unknown, 100, seed=0)
    assert len(carved.numpy()[0]) == 100 and len(rest.numpy()[0]) == len(x) - 100


def test_iterable_of_batches(digits):
    x, y = digits
    batches = [(x[i:i + 100], y[i:i + 100]) for i in range(0, 500, 100)]
    split = as_split(batches)
    assert len(split.numpy()[0]) == 500 and split.count is None
