"""Reference CNNs used by the demo, tests and benchmarks.

All are plain Keras 3 functional models with systematic layer names;
`from_spec("resnet_cifar:depth=8")` builds one from a command-line name.
"""

from wootz_keras.zoo.models import (  # noqa: F401
    NAMES,
    from_spec,
    is_spec,
    parse_spec,
    plain_cnn,
    resnet_cifar,
    tiny_inception,
    tiny_mobilenet,
)
