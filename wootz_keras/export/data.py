"""Images for verification and int8 calibration: validated, real when we pick them,
seeded synthetic ones when the caller gives none (parity only)."""

import numpy as np

SYNTHETIC_IMAGES = 32
SYNTHETIC_SEED = 0


def model_input_shape(model):
    """The single input's shape without the batch dimension; ValueError otherwise.

    Example:
        >>> from wootz_keras.zoo import plain_cnn
        >>> model_input_shape(plain_cnn())
        (28, 28, 1)
    """
    if len(model.inputs) != 1:
        raise ValueError(f"model: export supports single-input models, {model.name!r} has "
                         f"{len(model.inputs)} inputs")
    if len(model.outputs) != 1:
        raise ValueError(f"model: export supports single-output models, {model.name!r} has "
                         f"{len(model.outputs)} outputs")
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"model: input shape {(None, *shape)} must be fully known except the "
                         "batch dimension (TFLite needs static image sizes)")
    dtype = np.dtype(str(model.inputs[0].dtype))
    if dtype != np.float32:
        raise ValueError(f"model: export expects a float32 input, {model.name!r} takes {dtype}")
    return tuple(int(d) for d in shape)


def _take_from_dataset(ds, limit):
    out, count = [], 0
    for item in ds:
        x = item[0] if isinstance(item, (tuple, list)) else item
        x = np.asarray(x)
        out.append(x)
        count += len(x)
        if count >= limit:
            break
    return np.concatenate(out, axis=0)[:limit] if out else np.zeros((0,))


def as_images(data, name, shape, limit=None):
    """Turn `data` (array, or a tf.data.Dataset of images or (images, labels)
    batches) into float32 NHWC images of `shape`; ValueError naming `name`.

    Example:
        >>> as_images(np.zeros((4, 28, 28, 1)), "verify_data", (28, 28, 1)).dtype
        dtype('float32')
    """
    if data is None:
        raise ValueError(f"{name} is required (real images shaped (N, {', '.join(map(str, shape))}))")
    try:
        import tensorflow as tf
        if isinstance(data, tf.data.Dataset):
            data = _take_from_dataset(data, limit or 1000)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(data, (tuple, list)) and len(data) == 2 and np.ndim(data[1]) == 1:
        data = data[0]  # an (x, y) pair
    try:
        x = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be an array of images: {e}") from None
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} has shape {x.shape}, the model expects (N, "
                         f"{', '.join(map(str, shape))})")
    if len(x) == 0:
        raise ValueError(f"{name} holds no images")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds non-finite values")
    return x if limit is None else x[:limit]


def synthetic_images(shape, count=SYNTHETIC_IMAGES, seed=SYNTHETIC_SEED):
    """`count` seeded uniform [0, 1) float32 images of `shape` (no batch dimension).

    Only for float parity checks when no real images are given: they say
    nothing about accuracy, so int8 verification and calibration never use them.

    Example:
        >>> x = synthetic_images((8, 8, 1), count=3)
        >>> x.shape, x.dtype, bool((synthetic_images((8, 8, 1), count=3) == x).all())
        ((3, 8, 8, 1), dtype('float32'), True)
    """
    rng = np.random.default_rng(seed)
    return rng.random((count, *shape), dtype=np.float32)


def real_images_for(model, count=200, split="test", seed=0):
    """`count` real Fashion-MNIST images resized / channel-tiled to the model's input.

    Pixel values are in [0, 1]. Raises `wootz_keras.data.DataUnavailableError`
    when the dataset is not installed (never falls back to random data).

    Example:
        >>> from wootz_keras.zoo import resnet_cifar
        >>> real_images_for(resnet_cifar(8, input_shape=(32, 32, 3)), count=4).shape
        (4, 32, 32, 3)
    """
    from wootz_keras.data import load_fashion_mnist, representative_images

    shape = model_input_shape(model)
    if len(shape) != 3:
        raise ValueError(f"model: real images need an (H, W, C) input, got {shape}")
    h, w, c = shape
    x, _ = load_fashion_mnist(split, seed=seed)
    if count > len(x):
        raise ValueError(f"count={count} exceeds the {len(x)} Fashion-MNIST {split} images")
    return representative_images(x, count=count, size=(h, w), channels=c, seed=seed)
