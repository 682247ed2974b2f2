"""Fine-tuning and evaluation of candidate networks (the exploration protocol)."""

import keras
import numpy as np


def accuracy(model, data, batch_size=256):
    """Top-1 accuracy of `model` on real `(images, labels)` arrays.

    Example:
        >>> from wootz_keras import zoo, data
        >>> x, y = data.load_fashion_mnist("test", limit=64)
        >>> 0.0 <= accuracy(zoo.plain_cnn(), (x, y)) <= 1.0
        True
    """
    x, y = data
    # Eager batches: each candidate is a new model, and predict() would
    # trace a new graph for every one of them.
    hits = 0
    for i in range(0, len(x), batch_size):
        probs = model(x[i:i + batch_size], training=False)
        hits += int(np.sum(np.argmax(keras.ops.convert_to_numpy(probs), -1) == y[i:i + batch_size]))
    return hits / len(x)


def finetune(model, train, steps, learning_rate=1e-3, batch_size=64, seed=0):
    """Fine-tune `model` for `steps` batches of real `(images, labels)`, seeded.

    The same seed gives the same batches and the same result in any process.
    """
    if steps <= 0:
        return model
    keras.utils.set_random_seed(seed)
    x, y = train
    idx = np.random.default_rng(seed).integers(0, len(x), steps * batch_size)
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    model.fit(x[idx], y[idx], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return model
