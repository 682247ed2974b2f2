"""Shared pytest set-up: quiet TensorFlow, CPU only, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def fashion_test():
    """200 real Fashion-MNIST test images (28x28x1) and labels."""
    from wootz_keras.data import load_fashion_mnist
    return load_fashion_mnist("test", limit=200, seed=1)


@pytest.fixture(scope="session")
def digits():
    """The 1,797 real 8x8 scikit-learn digits."""
    from wootz_keras.data import load_digits
    return load_digits()


@pytest.fixture(scope="session")
def fashion_images(fashion_test):
    return fashion_test[0][:32].astype(np.float32)
