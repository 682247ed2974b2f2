"""Real datasets available offline: Fashion-MNIST, scikit-learn digits, MNIST sample.

Every loader returns `(x, y)` with `x` float32 images in [0, 1], shaped
(N, H, W, 1), and `y` int64 labels. A missing dataset raises a clear error
saying how to install it; nothing ever falls back to random data.
"""

from wootz_keras.data.datasets import (  # noqa: F401
    DataUnavailableError,
    as_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist_sample,
    representative_images,
)
