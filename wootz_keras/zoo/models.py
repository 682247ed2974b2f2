"""Small reference CNNs: a plain chain, a CIFAR-style ResNet, an
inception-style net and a MobileNet-style net."""

import keras
from keras import layers


def _conv_bn_relu(x, filters, kernel, name, strides=1):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same",
                      use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def plain_cnn(input_shape=(28, 28, 1), num_classes=10, width=16, name="plain_cnn"):
    """A chain of conv-BN-ReLU layers, max pooling, Flatten and two Dense.

    Example:
        >>> model = plain_cnn()
        >>> model.output_shape
        (None, 10)
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(inputs, width, 3, "block1")
    x = layers.MaxPooling2D(name="pool1")(x)
    x = _conv_bn_relu(x, width * 2, 3, "block2")
    x = layers.MaxPooling2D(name="pool2")(x)
    x = _conv_bn_relu(x, width * 4, 3, "block3")
    x = layers.MaxPooling2D(name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(width * 4, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet_cifar(depth=20, input_shape=(28, 28, 1), num_classes=10, width=16,
                 name=None):
    """CIFAR-style ResNet (He et al. 2016): 3 stages of (depth-2)/6 basic blocks.

    Downsampling blocks use a 1x1 projection shortcut. Block `i` of stage `s`
    is named `stage{s}_block{i}`; its layers end in `_conv1`, `_bn1`, ...

    Example:
        >>> model = resnet_cifar(depth=8)
        >>> model.count_params() < 100_000
        True
    """
    if (depth - 2) % 6:
        raise ValueError(f"ResNet depth must be 6n+2 (8, 14, 20, 32, ...), got {depth}")
    n = (depth - 2) // 6
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(inputs, width, 3, "stem")
    for stage in range(3):
        filters = width * 2 ** stage
        for block in range(n):
            prefix = f"stage{stage + 1}_block{block + 1}"
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                              name=f"{prefix}_conv1")(x)
            y = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn1")(y)
            y = layers.ReLU(name=f"{prefix}_relu1")(y)
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              name=f"{prefix}_conv2")(y)
            y = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn2")(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                         name=f"{prefix}_proj")(shortcut)
                shortcut = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_proj_bn")(shortcut)
            x = layers.Add(name=f"{prefix}_add")([y, shortcut])
            x = layers.ReLU(name=f"{prefix}_out")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


def tiny_inception(input_shape=(28, 28, 1), num_classes=10, width=16, name="tiny_inception"):
    """Stem conv followed by two inception modules (1x1, 1x1->3x3,
    1x1->5x5, pool->1x1 branches joined by Concatenate).

    Example:
        >>> tiny_inception().output_shape
        (None, 10)
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(inputs, width, 3, "stem")
    x = layers.MaxPooling2D(name="stem_pool")(x)
    for i in range(2):
        p = f"mixed{i + 1}"
        b1 = _conv_bn_relu(x, width, 1, f"{p}_b1x1")
        b2 = _conv_bn_relu(x, width, 1, f"{p}_b3x3_reduce")
        b2 = _conv_bn_relu(b2, width, 3, f"{p}_b3x3")
        b3 = _conv_bn_relu(x, width // 2, 1, f"{p}_b5x5_reduce")
        b3 = _conv_bn_relu(b3, width // 2, 5, f"{p}_b5x5")
        b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{p}_pool")(x)
        b4 = _conv_bn_relu(b4, width // 2, 1, f"{p}_pool_proj")
        x = layers.Concatenate(name=p)([b1, b2, b3, b4])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def tiny_mobilenet(input_shape=(28, 28, 1), num_classes=10, width=16, name="tiny_mobilenet"):
    """Depthwise-separable blocks (DepthwiseConv2D + 1x1) and a SeparableConv2D.

    Example:
        >>> tiny_mobilenet().output_shape
        (None, 10)
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn_relu(inputs, width, 3, "stem", strides=2)
    for i, filters in enumerate((width * 2, width * 4)):
        p = f"ds{i + 1}"
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{p}_dw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{p}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{p}_dw_relu")(x)
        x = _conv_bn_relu(x, filters, 1, f"{p}_pw")
    x = layers.SeparableConv2D(width * 4, 3, padding="same", name="sep")(x)
    x = layers.BatchNormalization(momentum=0.9, name="sep_bn")(x)
    x = layers.ReLU(name="sep_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


NAMES = ("plain_cnn", "resnet_cifar", "tiny_inception", "tiny_mobilenet")


def parse_spec(text):
    """``"resnet_cifar:depth=8,width=8"`` -> ("resnet_cifar", {"depth": 8, "width": 8}).

    Example:
        >>> parse_spec("resnet_cifar:depth=8")
        ('resnet_cifar', {'depth': 8})
    """
    import ast
    name, _, rest = str(text).partition(":")
    kwargs = {}
    for item in (s.strip() for s in rest.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"zoo model {text!r}: {item!r} is not key=value")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return name.strip(), kwargs


def is_spec(text):
    """Whether `text` names a zoo model (with or without options)."""
    return bool(text) and parse_spec(text)[0] in NAMES


def from_spec(text, **defaults):
    """A fresh (untrained) zoo CNN from ``name[:key=value,...]``; `defaults`
    (e.g. input_shape) apply unless the spec sets them.

    Example:
        >>> from_spec("resnet_cifar:depth=8,width=8").name
        'resnet8'
    """
    import inspect
    name, kwargs = parse_spec(text)
    if name not in NAMES:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(NAMES)}")
    fn = globals()[name]
    allowed = list(inspect.signature(fn).parameters)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"zoo model {name} takes no {', '.join(unknown)}; it takes "
                         f"{', '.join(allowed)}")
    try:
        return fn(**{**{k: v for k, v in defaults.items() if k in allowed}, **kwargs})
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot build zoo model {text!r}: {e}") from None
