"""The user's model file: `.keras` or legacy `.h5`, with its compiled loss and metrics."""

import os
import warnings

from wootz_keras.data.errors import DataError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(path, what="--model"):
    """Load a `.keras` or legacy `.h5` model, keeping its compiled loss and metrics.

    Loads with `compile=True` first; when the compile config cannot be
    restored (e.g. an unregistered custom loss) it loads with `compile=False`
    and warns (UserWarning) that the loss and metric will come from elsewhere.
    A missing file, a folder, another suffix or an unreadable file is a
    DataError naming `path`. wootz_keras' serialisables (the pruning wrapper)
    are registered first.

    Example:
        >>> import tempfile
        >>> from wootz_keras.zoo import plain_cnn
        >>> model = plain_cnn()
        >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> path = tempfile.mkdtemp() + "/m.keras"
        >>> model.save(path)
        >>> load_model(path).compiled
        True
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{what}: {path}: no such file; expected a .keras or .h5 model file")
    if os.path.isdir(path):
        raise DataError(f"{what}: {path} is a folder (a SavedModel?); Keras 3 loads .keras "
                        "or .h5 model files")
    if not path.lower().endswith(MODEL_SUFFIXES):
        raise DataError(f"{what}: {path} is not a .keras or .h5 model file")
    import keras

    import wootz_keras  # noqa: F401  registers the pruning wrapper and other serialisables
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Skipping variable loading for optimizer.*")
        warnings.filterwarnings("ignore", message=".*Compiled the loaded model.*")
        try:
            return keras.models.load_model(path, compile=True)
        except Exception as e:  # noqa: BLE001 - retried without the compile config
            first = e
            try:
                model = keras.models.load_model(path, compile=False)
            except Exception as e:  # noqa: BLE001 - any loader failure is bad input
                raise DataError(f"{what}: cannot load {path}: {type(e).__name__}: "
                                f"{_one_line(e)}") from None
    warnings.warn(f"{what}: {path}: loaded without its compile config ({type(first).__name__}: "
                  f"{_one_line(first)}); the loss and metric will not be the model's",
                  stacklevel=2)
    return model


def ends_in_softmax(model):
    """True when `model` outputs probabilities (its last layer applies softmax).

    Example:
        >>> import keras
        >>> ends_in_softmax(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))
        False
    """
    import keras
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    if layer is None:
        return False
    if isinstance(layer, keras.Model):
        return ends_in_softmax(layer)
    if isinstance(layer, keras.layers.Softmax):
        return True
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


def _one_line(error, limit=300):
    text = " ".join(str(error).split())
    return text[:limit] + ("..." if len(text) > limit else "")
