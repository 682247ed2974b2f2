"""Reference CNNs used by the demo, tests and benchmarks.

All are plain Keras 3 functional models with systematic layer names.
"""

from wootz_keras.zoo.models import (  # noqa: F401
    plain_cnn,
    resnet_cifar,
    tiny_inception,
    tiny_mobilenet,
)
