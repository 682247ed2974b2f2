"""Bad data and unsupported models: a one-line DataError naming the file or folder."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from wootz_keras.data import (
    DataError,
    as_split,
    check_fits,
    classifier_io,
    load_data,
    load_data_for,
    load_fashion_mnist,
    write_image_folder,
)


def one_line_error(fn, *args, match, **kwargs):
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def classifier(input_shape=(32, 32, 3), classes=10, activation="softmax"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=activation)(x))


@pytest.fixture(scope="module")
def images():
    return load_fashion_mnist("test", limit=240, seed=2)


@pytest.fixture
def folder(tmp_path, images):
    x, y = images
    return write_image_folder(x[:60], y[:60], tmp_path / "imgs", size=(32, 32))


def test_missing_path(tmp_path):
    missing = str(tmp_path / "nothing_here")
    message = one_line_error(load_data, missing, match="no such file or folder")
    assert missing in message and "fashion_mnist" in message


def test_other_file_suffix(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2,3\n")
    one_line_error(load_data, path, match=r"data\.csv is a file but not an \.npz")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    message = one_line_error(load_data, tmp_path / "empty", match="is an empty folder")
    assert "class sub-folders" in message


def test_images_without_class_folders(tmp_path, folder):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in os.listdir(os.path.join(folder, "0"))[:3]:
        os.link(os.path.join(folder, "0", name), flat / name)
    one_line_error(load_data, flat, match="holds 3 images but no class sub-folders")


def test_class_folders_without_images(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        (tmp_path / "d" / name / "notes.txt").write_text("x")
    one_line_error(load_data, tmp_path / "d", match="no images .* in the class sub-folders")


def test_single_class(tmp_path, images):
    x, y = images
    path = write_image_folder(x[:5], np.zeros(5), tmp_path / "one", class_names=["shirt"])
    one_line_error(load_data, path, match="single class sub-folder .'shirt'.")


def test_twelve_classes_for_a_ten_way_model(tmp_path, images):
    x, y = images
    y = y.copy()
    y[:24] = np.arange(24) % 2 + 10  # real images in two more class folders
    path = write_image_folder(x, y, tmp_path / "twelve", size=(32, 32))
    message = one_line_error(load_data_for, classifier(), path,
                             match=r"has 12 classes \(00, 01, .*, 11\), the model has 10 outputs")
    assert str(tmp_path / "twelve") in message


def test_unreadable_image_is_named(folder):
    bad = os.path.join(folder, "3", "broken.png")
    with open(bad, "w") as f:
        f.write("this is not a PNG")
    message = one_line_error(load_data, folder, match="is not a readable image")
    assert bad in message


def test_truncated_image_is_named(folder):
    victim = os.path.join(folder, "5", sorted(os.listdir(os.path.join(folder, "5")))[0])
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(data[:len(data) // 2])  # a real PNG header, a broken body
    message = one_line_error(load_data, folder, match="cannot be decoded")
    assert victim in message
    # The header-only check lets it through (documented cost trade-off).
    assert load_data(folder, check_images="header").train.count > 0


def test_npz_without_x_train(tmp_path, images):
    x, y = images
    np.savez(tmp_path / "bad.npz", images=x, labels=y)
    message = one_line_error(load_data, tmp_path / "bad.npz", match="has no x_train / y_train")
    assert "found keys: images, labels" in message and "bad.npz" in message


def test_npz_not_a_zip(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    one_line_error(load_data, tmp_path / "junk.npz", match="cannot read .*junk.npz as an .npz")


def test_npz_with_regression_targets(tmp_path, images):
    x, _ = images
    np.savez(tmp_path / "reg.npz", x_train=x, y_train=np.linspace(0, 1, len(x)))
    one_line_error(load_data, tmp_path / "reg.npz", match="regression is not supported")


def test_npz_labels_do_not_match_images(tmp_path, images):
    x, y = images
    np.savez(tmp_path / "n.npz", x_train=x, y_train=y[:10])
    one_line_error(load_data, tmp_path / "n.npz", match="holds 240 images but y_train holds 10")


def test_npz_non_image_arrays(tmp_path, images):
    x, y = images
    np.savez(tmp_path / "flat.npz", x_train=x.reshape(len(x), -1), y_train=y)
    one_line_error(load_data, tmp_path / "flat.npz", match=r"expected images \(N, H, W\)")


def test_saved_dataset_of_triples(tmp_path, images):
    x, y = images
    tf.data.Dataset.from_tensor_slices((x, y, y)).save(str(tmp_path / "s"))
    message = one_line_error(load_data, tmp_path / "s", match="must hold .x, y. elements")
    assert "element_spec" in message


def test_wrong_input_shape():
    data = load_data("fashion_mnist", train_limit=50, test_limit=20)
    one_line_error(check_fits, classifier((32, 32, 3)), data,
                   match=r"gives images \(28, 28, 1\), the model takes \(32, 32, 3\)")


def test_images_that_cannot_fit_the_channels(folder):
    one_line_error(load_data_for, classifier((32, 32, 2)), folder,
                   match="can be read with 1 .grayscale., 3 .RGB. or 4 .RGBA. channels, not 2")
    with pytest.raises(DataError, match="cannot be turned into 2"):
        load_data_for(classifier((28, 28, 2)), "fashion_mnist", train_limit=20, test_limit=10)


def test_one_hot_width_mismatch(tmp_path, images):
    x, y = images
    np.savez(tmp_path / "oh.npz", x_train=x, y_train=np.eye(12)[y])
    one_line_error(load_data_for, classifier((28, 28, 1)), tmp_path / "oh.npz",
                   match="one-hot labels of width 12, the model has 10 outputs")


def test_multi_output_model(folder):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(10)(x), keras.layers.Dense(3)(x)])
    one_line_error(load_data_for, model, folder, match="2 outputs; multi-output models are not")


def test_multi_input_model():
    a, b = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(10)(x))
    one_line_error(classifier_io, model, match="2 inputs; multi-input models are not")


def test_regression_model(folder):
    one_line_error(load_data_for, classifier(classes=1, activation=None), folder,
                   match="regression and single-unit .sigmoid. classifiers are not supported")


def test_segmentation_model(folder):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(5, 1)(inputs))
    one_line_error(load_data_for, model, folder, match="segmentation and other dense")


def test_non_image_model():
    inputs = keras.Input((784,))
    model = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    one_line_error(classifier_io, model, match=r"takes input \(None, 784\); only image")


@pytest.mark.parametrize("bad, match", [
    ({"x": 1}, "expected a .x, y. pair of arrays"),
    ((i for i in range(3)), "one-shot iterator"),
    ([np.zeros((4, 2))], "must be an .x, y. pair"),
    ((np.zeros((4, 2)), np.zeros(3)), "expected the same number of examples"),
])
def test_as_split_rejects(bad, match):
    one_line_error(as_split, bad, match=match)


def test_as_split_rejects_dataset_of_dicts():
    ds = tf.data.Dataset.from_tensor_slices({"image": np.zeros((4, 2)), "label": np.zeros(4)})
    one_line_error(as_split, ds, match="element_spec is")


def test_bad_arguments(folder):
    one_line_error(load_data, folder, test_fraction=1.5, match="test_fraction must be in")
    one_line_error(load_data, folder, image_size=(0, 3), match="image_size must be positive")
    one_line_error(load_data, folder, train_limit=0, match="train_limit must be a positive")
    one_line_error(load_data, "", match="expected fashion_mnist")
    one_line_error(load_data_for, classifier(), folder, image_size=(20, 20),
                   match=r"image size \(20, 20\) does not match the model's input \(32, 32\)")
    one_line_error(load_data_for, classifier((None, None, 3)), folder,
                   match="leaves the image size open")


def test_model_without_input():
    model = keras.Sequential([keras.layers.Dense(10)])
    one_line_error(classifier_io, model, match="has no defined input")
