"""Does this data fit this model? Checked once, before any training.

Supported: one image input (None, H, W, C) and one output of K >= 2 class
scores (None, K), softmax probabilities or logits, with sparse or one-hot
labels. Multi-input and multi-output models, regression (a single output
unit, or non-integral labels), and segmentation / dense prediction (spatial
outputs) are not supported: each gets a DataError saying so.
"""

from wootz_keras.data.errors import DataError
from wootz_keras.data.sources import Dataset, load_data


def classifier_io(model, what="--model"):
    """`(input_shape, num_outputs)` of a single-input image classifier.

    `input_shape` is (H, W, C) with None for sizes the model leaves open.
    A DataError says why any other model is not supported.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> classifier_io(plain_cnn())
        ((28, 28, 1), 10)
    """
    name = getattr(model, "name", type(model).__name__)
    try:
        inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    except (AttributeError, ValueError):
        raise DataError(f"{what}: model {name!r} has no defined input; build it from a "
                        "keras.Input (functional, or a Sequential starting with one)") from None
    if len(inputs) != 1:
        raise DataError(f"{what}: model {name!r} has {len(inputs)} inputs; multi-input models "
                        "are not supported (one image input)")
    if len(outputs) != 1:
        raise DataError(f"{what}: model {name!r} has {len(outputs)} outputs; multi-output "
                        "models are not supported (one output of class scores)")
    in_shape = tuple(inputs[0].shape[1:])
    out_shape = tuple(outputs[0].shape[1:])
    if len(in_shape) != 3:
        raise DataError(f"{what}: model {name!r} takes input {(None, *in_shape)}; only image "
                        "models taking (None, H, W, C) are supported")
    if len(out_shape) != 1:
        raise DataError(f"{what}: model {name!r} outputs {(None, *out_shape)}; segmentation "
                        "and other dense (spatial) outputs are not supported: the model must "
                        "output class scores (None, K)")
    classes = out_shape[0]
    if classes is None or classes < 2:
        raise DataError(f"{what}: model {name!r} outputs {(None, *out_shape)}; regression and "
                        "single-unit (sigmoid) classifiers are not supported: the model must "
                        "output K >= 2 class scores (None, K)")
    return in_shape, int(classes)


def check_fits(model, dataset, what="--data"):
    """DataError unless `dataset` (a Dataset, or a Split) fits `model`.

    Checks the model is a supported classifier (see `classifier_io`), the
    images' shape equals the model's input (open sizes match any), the
    classes in the labels do not exceed the model's outputs (e.g. 12
    sub-folders for a 10-way model), and one-hot labels are as wide as the
    outputs.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> data = load_data("fashion_mnist", train_limit=100, test_limit=50)
        >>> check_fits(plain_cnn(), data)
        >>> check_fits(plain_cnn(input_shape=(32, 32, 3)), data)
        Traceback (most recent call last):
        ...
        wootz_keras.data.errors.DataError: --data: Fashion-MNIST (built-in, 100 train / 50 test images) gives images (28, 28, 1), the model takes (32, 32, 3)
    """
    in_shape, classes = classifier_io(model)
    names = None
    if isinstance(dataset, Dataset):
        image_shape, source = tuple(dataset.image_shape), dataset.source
        label_format, num_classes = dataset.label_format, dataset.num_classes
        names = dataset.class_names
    else:
        x_spec, y_spec = dataset.element_spec
        image_shape, source = tuple(x_spec.shape), "the data"
        label_format = "one_hot" if y_spec.shape.rank == 1 and y_spec.shape[0] != 1 else "sparse"
        num_classes = y_spec.shape[0] if label_format == "one_hot" else _sparse_classes(dataset)
    if len(image_shape) != 3 or any(
            m is not None and d != m for d, m in zip(image_shape, in_shape)):
        raise DataError(f"{what}: {source} gives images {image_shape}, the model takes "
                        f"{in_shape}")
    if label_format == "one_hot" and num_classes != classes:
        raise DataError(f"{what}: {source} has one-hot labels of width {num_classes}, the "
                        f"model has {classes} outputs")
    if num_classes is not None and num_classes > classes:
        listed = f" ({', '.join(names)})" if names and len(names) <= 20 else ""
        raise DataError(f"{what}: {source} has {num_classes} classes{listed}, the model has "
                        f"{classes} outputs")


def _sparse_classes(split):
    """Largest label + 1 of a Split over in-memory arrays (else None: not read)."""
    import numpy as np
    arrays = getattr(split, "_arrays", None)
    if arrays is None or np.asarray(arrays.y).dtype.kind not in "iu" or not split.count:
        return None
    y = arrays.y if split._index is None else arrays.y[split._index]
    return int(np.max(y)) + 1


def load_data_for(model, spec, **kwargs):
    """`load_data` sized to `model`'s input, then `check_fits`.

    The image size and channels are the model's input; `image_size` is only
    needed (and only used) for sizes the model leaves open, e.g. a fully
    convolutional (None, None, None, 3) input.

    Example:
        >>> from wootz_keras.zoo import resnet_cifar
        >>> model = resnet_cifar(8, input_shape=(32, 32, 3))
        >>> data = load_data_for(model, "fashion_mnist", train_limit=64, test_limit=32)
        >>> data.image_shape
        (32, 32, 3)
    """
    what = kwargs.get("what", "--data")
    (h, w, c), _ = classifier_io(model)
    given = kwargs.pop("image_size", None)
    if given is not None:
        from wootz_keras.data.images import check_size
        given = check_size(given)
    if h is None or w is None:
        if given is None:
            raise DataError(f"{what}: the model's input {(None, h, w, c)} leaves the image size "
                            "open; give an image size (--image_size)")
        h, w = (h or given[0]), (w or given[1])
    elif given is not None and given != (h, w):
        raise DataError(f"{what}: image size {given} does not match the model's input "
                        f"{(h, w)}")
    kwargs.setdefault("channels", c)
    dataset = load_data(spec, image_size=(h, w), **kwargs)
    check_fits(model, dataset, what)
    return dataset
