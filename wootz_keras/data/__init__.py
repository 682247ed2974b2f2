"""Data and models, in one place: built-in datasets and the user's own.

`load_data(spec)` reads "fashion_mnist", a folder of class sub-folders of
images, an .npz file or a `tf.data.Dataset.save` folder as a `Dataset` of
unbatched train / test `Split`s; `load_data_for(model, spec)` sizes it to
the model and `check_fits` checks it; `as_split` adapts what library users
pass (arrays, tf.data, PyDataset); `load_model` and `training_spec` read the
user's model and the loss / metric to train and select with. Bad data is a
one-line `DataError` naming the file, folder or flag, before any training.

Supported: image classifiers with one input (None, H, W, C) and one output
of K >= 2 class scores (softmax or logits), sparse or one-hot labels.
Not supported, each with a clear DataError: multi-input and multi-output
models, regression (one output unit, or non-integral labels), multi-label
targets, segmentation and other spatial outputs, sample weights.
Batches are tf.data.Datasets, which Keras' `fit` takes on every backend.

The built-in loaders return `(x, y)` with `x` float32 images in [0, 1],
shaped (N, H, W, 1), and `y` int64 labels. A missing dataset raises a clear
error saying how to install it; nothing ever falls back to random data.
"""

from wootz_keras.data.datasets import (  # noqa: F401
    DataUnavailableError,
    as_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist_sample,
    representative_images,
)
from wootz_keras.data.errors import DataError  # noqa: F401
from wootz_keras.data.fit import check_fits, classifier_io, load_data_for  # noqa: F401
from wootz_keras.data.folders import write_image_folder  # noqa: F401
from wootz_keras.data.loss_metric import TrainingSpec, training_spec  # noqa: F401
from wootz_keras.data.models import ends_in_softmax, load_model  # noqa: F401
from wootz_keras.data.sources import Dataset, load_data  # noqa: F401
from wootz_keras.data.split import Split, as_split, split_off, subset  # noqa: F401

__all__ = [
    "DataError", "DataUnavailableError", "Dataset", "Split", "TrainingSpec", "as_dataset",
    "as_split", "check_fits", "classifier_io", "ends_in_softmax", "load_data",
    "load_data_for", "load_digits", "load_fashion_mnist", "load_mnist_sample", "load_model",
    "representative_images", "split_off", "subset", "training_spec", "write_image_folder",
]
