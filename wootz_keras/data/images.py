"""Fitting images to a model's input: resizing, channels, dtype; image files.

Images are fed as Keras loads them: folders give float32 0-255 (as
`keras.utils.image_dataset_from_directory` does), arrays keep their values
and become float32. Scaling belongs in the model (e.g. a Rescaling layer).
"""

from wootz_keras.data.errors import DataError

#: The formats `keras.utils.image_dataset_from_directory` reads.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"),
          (b"GIF89a", "gif"), (b"BM", "bmp"))


def sniff_image(path):
    """The image format named by the file's first bytes, or None.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
        >>> _ = open(p, "w").write("not an image")
        >>> sniff_image(p) is None
        True
    """
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def check_size(image_size, what="image_size"):
    """`image_size` as an (H, W) tuple of positive ints (or None); DataError otherwise."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    try:
        h, w = (int(d) for d in image_size)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be (height, width), got {image_size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"{what} must be positive, got {image_size!r}")
    return (h, w)


def channel_conversion(have, want, what):
    """A function converting `have` channels to `want` (None: nothing to do)."""
    import tensorflow as tf
    if want is None or have == want:
        return None
    if have == 1 and want == 3:
        return tf.image.grayscale_to_rgb
    if have == 3 and want == 1:
        return tf.image.rgb_to_grayscale
    if have == 4 and want == 3:
        return lambda x: x[..., :3]
    if have == 4 and want == 1:
        return lambda x: tf.image.rgb_to_grayscale(x[..., :3])
    raise DataError(f"{what}: images have {have} channels and cannot be turned into "
                    f"{want} (supported: 1 <-> 3, 4 -> 3 or 1 dropping alpha)")


def array_transform(shape, dtype, image_size, channels, what):
    """The per-image transform (TF ops) from arrays of `shape` (H, W, C) and
    `dtype` to float32 `image_size` x `channels`, or None when none is needed.
    Returns `(transform, output_shape)`.

    Example:
        >>> fn, shape = array_transform((28, 28, 1), "float32", (32, 32), 3, "data")
        >>> shape
        (32, 32, 3)
    """
    import numpy as np
    import tensorflow as tf
    h, w, c = shape
    size = check_size(image_size) or (h, w)
    convert = channel_conversion(c, channels, what)
    resize = size != (h, w)
    cast = np.dtype(dtype) != np.float32
    out_shape = (*size, channels or c)
    if not (resize or convert or cast):
        return None, out_shape

    def transform(x):
        x = tf.cast(x, tf.float32)
        if resize:
            x = tf.image.resize(x, size)
        if convert:
            x = convert(x)
        return x
    return transform, out_shape


def file_decoder(image_size, channels):
    """Path -> float32 (H, W, C) image, decoded and resized as
    `keras.utils.image_dataset_from_directory` does (bilinear, no crop)."""
    import tensorflow as tf
    size = check_size(image_size)

    def decode(path):
        image = tf.image.decode_image(tf.io.read_file(path), channels=channels,
                                      expand_animations=False)
        image = tf.image.resize(image, size)
        image.set_shape((*size, channels))
        return image
    return decode
