"""How output channels flow through each Keras layer type (channels-last).

A `ChannelRule` says which role a layer call plays for channel pruning and
which weight axes are indexed by its input / output channels. Custom layers
opt in either by defining `get_channel_rule(self)` returning a ChannelRule,
or through `register_channel_rule(LayerClass, rule_or_function)`.
"""

import dataclasses

import keras
import numpy as np

ROLES = ("producer", "channelwise", "passthrough", "flatten", "merge", "concat", "boundary")


@dataclasses.dataclass(frozen=True)
class ChannelRule:
    """Channel semantics of one layer.

    role:
      producer     its weights create new output channels (Conv, Dense, ...)
      channelwise  output channel c depends on input channel c only, through
                   per-channel weights (BatchNormalization, DepthwiseConv2D);
                   `expand` > 1 maps input c to outputs c*expand .. c*expand+expand-1
      passthrough  parameter-free, channel-preserving (activations, pooling, ...)
      flatten      flattens to one axis; flat index i carries channel i % C
      merge        elementwise merge of same-shaped inputs (Add, Multiply, ...)
      concat       concatenation along the channel axis
      boundary     cannot be seen through: channels on either side never pruned
    out_axes: {weight name: axis indexed by output channels}
    in_axes:  {weight name: (axis, repeat)} indexed by input channels; with
              repeat r, input channel c owns rows c*r .. c*r+r-1
    config_key: config entry holding the number of output channels (or a tuple of them)
    zero_preserving: for passthrough, whether f(0) == 0 (None: evaluate)
    reason: why a boundary is one (shown to users)
    warn: boundaries the user should hear about (Lambda, unknown layers)

    Example:
        >>> rule = ChannelRule("passthrough")
        >>> rule.role
        'passthrough'
    """
    role: str
    out_axes: dict = dataclasses.field(default_factory=dict)
    in_axes: dict = dataclasses.field(default_factory=dict)
    config_key: str = None
    expand: int = 1
    zero_preserving: bool = True
    reason: str = ""
    warn: bool = False

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown channel role {self.role!r}; expected one of {ROLES}")


def boundary(reason, warn=False):
    """A rule for layers that are never pruned across."""
    return ChannelRule("boundary", reason=reason, warn=warn)


PASSTHROUGH = ChannelRule("passthrough")
_REGISTRY = {}


def register_channel_rule(layer_class, rule):
    """Teach the engine a custom layer: `rule` is a ChannelRule or a function
    (layer, call) -> ChannelRule.

    Example:
        >>> class Scale(keras.layers.Layer):
        ...     def call(self, x):
        ...         return 2.0 * x
        >>> register_channel_rule(Scale, ChannelRule("passthrough"))
    """
    _REGISTRY[layer_class] = rule if callable(rule) else (lambda layer, call, r=rule: r)


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _conv(layer, call):
    if not _channels_last(layer):
        return boundary(f"{layer.name}: channels_first convolutions are not supported", warn=True)
    if getattr(layer, "groups", 1) != 1:
        return boundary(f"{layer.name}: grouped convolution (groups={layer.groups})")
    return ChannelRule("producer", out_axes={"kernel": -1, "bias": 0},
                       in_axes={"kernel": (-2, 1)}, config_key="filters")


def _conv_transpose(layer, call):
    if not _channels_last(layer):
        return boundary(f"{layer.name}: channels_first convolutions are not supported", warn=True)
    return ChannelRule("producer", out_axes={"kernel": -2, "bias": 0},
                       in_axes={"kernel": (-1, 1)}, config_key="filters")


def _dense(layer, call):
    return ChannelRule("producer", out_axes={"kernel": -1, "bias": 0},
                       in_axes={"kernel": (0, 1)}, config_key="units")


def _separable(layer, call):
    if not _channels_last(layer):
        return boundary(f"{layer.name}: channels_first convolutions are not supported", warn=True)
    m = layer.depth_multiplier
    return ChannelRule("producer", out_axes={"pointwise_kernel": -1, "bias": 0},
                       in_axes={"depthwise_kernel": (-2, 1), "pointwise_kernel": (-2, m)},
                       config_key="filters")


def _depthwise(layer, call):
    if not _channels_last(layer):
        return boundary(f"{layer.name}: channels_first convolutions are not supported", warn=True)
    return ChannelRule("channelwise", out_axes={"bias": 0},
                       in_axes={"kernel": (-2, 1)}, expand=layer.depth_multiplier)


def _batch_norm(layer, call):
    rank = len(call.inputs[0].shape)
    axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
    if axis is None or axis % rank != rank - 1:
        return boundary(f"{layer.name}: normalises over axis {layer.axis}, not channels")
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    return ChannelRule("channelwise", out_axes={n: 0 for n in names})


def _prelu(layer, call):
    if layer.alpha.shape[-1] == call.inputs[0].channels and call.inputs[0].channels > 1:
        return ChannelRule("channelwise", out_axes={"alpha": -1})
    return ChannelRule("passthrough", zero_preserving=True)


# activations that mix (or split) the channel axis: not elementwise
_MIXING_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")


def mixing_activation(layer):
    """Name of `layer`'s activation if it mixes channels (softmax, glu, ...), else None."""
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return name if name in _MIXING_ACTIVATIONS else None


def _elementwise_activation(layer, call):
    mixing = mixing_activation(layer)
    if mixing:
        return boundary(f"{layer.name}: activation {mixing!r} mixes channels")
    return ChannelRule("passthrough", zero_preserving=None)


def _softmax(layer, call):
    rank = len(call.inputs[0].shape)
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if any(a % rank == rank - 1 for a in axes):
        return boundary(f"{layer.name}: softmax mixes channels")
    return ChannelRule("passthrough", zero_preserving=False)


def _rescaling(layer, call):
    if np.ndim(layer.scale) or np.ndim(layer.offset):
        return boundary(f"{layer.name}: per-channel rescaling")
    return ChannelRule("passthrough", zero_preserving=float(layer.offset) == 0.0)


def _reshape(layer, call):
    cin, cout = call.inputs[0].channels, call.outputs[0].channels
    if cin == cout and cin is not None:
        return ChannelRule("passthrough", config_key="target_shape")
    return boundary(f"{layer.name}: reshape changes the channel axis ({cin} -> {cout})")


def _merge(layer, call):
    channels = {t.channels for t in call.inputs} | {call.outputs[0].channels}
    if len(channels) != 1:
        return boundary(f"{layer.name}: broadcasting merge of channel counts {sorted(channels)}")
    return ChannelRule("merge")


def _concat(layer, call):
    rank = len(call.outputs[0].shape)
    if layer.axis % rank == rank - 1:
        return ChannelRule("concat")
    return _merge(layer, call)


def _mixing(layer, call):
    return boundary(f"{layer.name}: {type(layer).__name__} mixes channels")


def _grouped_or_depthwise_conv(layer, call):
    """Conv with groups == in channels == filters is a depthwise conv
    (ConvNeXt): channelwise, its filters and groups shrink together."""
    cin, cout = call.inputs[0].channels, call.outputs[0].channels
    if 1 < getattr(layer, "groups", 1) == cin == cout and _channels_last(layer):
        return ChannelRule("channelwise", out_axes={"kernel": -1, "bias": 0},
                           config_key=("filters", "groups"))
    return _conv(layer, call)


def _layer_scale(layer, call):
    """keras.applications ConvNeXt's LayerScale: x * gamma, one gamma per channel."""
    if len(layer.weights) != 1 or layer.weights[0].shape[-1] != call.inputs[0].channels:
        return boundary(f"{layer.name}: LayerScale with unexpected weights")
    return ChannelRule("channelwise", out_axes={layer.weights[0].name: 0},
                       config_key="projection_dim")


def _custom_scale(layer, call):
    """keras.applications InceptionResNetV2's CustomScaleLayer: x0 + x1 * scale."""
    if np.ndim(layer.scale) or len(call.inputs) != 2:
        return boundary(f"{layer.name}: CustomScaleLayer with a per-channel scale")
    return _merge(layer, call)


# -- Keras 3 ops-level operations (e.g. `x + 3.0` on a KerasTensor) ----------
# They are nodes of a Functional graph without being layers: no weights and
# nothing to wrap. Only elementwise ones are seen through; any other is a
# boundary naming the operation.
_ELEMENTWISE_OPS = frozenset("""
    Abs Absolute Negative Square Sqrt Exp Expm1 Log1p Tanh Sign Floor Ceil Round Trunc
    Clip Cbrt Fabs Copy NanToNum Sin Sinh Arctan Arcsinh Cast
    Relu Relu6 Sigmoid Silu Gelu Elu Selu Celu LeakyRelu Softplus Softsign HardSigmoid
    HardSilu HardTanh HardShrink SoftShrink TanhShrink LogSigmoid SparsePlus
    SparseSigmoid Squareplus
""".split())
_BINARY_OPS = frozenset("Add Subtract Multiply Divide TrueDivide Maximum Minimum Power "
                        "Fmax Fmin".split())
_MERGE_OPS = frozenset("Add Subtract Multiply Maximum Minimum Fmax Fmin".split())  # f(0, 0) == 0


def _is_symbolic(x):
    return isinstance(x, keras.KerasTensor)


def _op_args(call):
    node = getattr(call, "node", None)
    if node is None:
        return None
    return node.arguments.args, node.arguments.kwargs


def _op_maps_zero_to_zero(call):
    """Replay the operation with zeros in place of its (one) symbolic input."""
    args, kwargs = _op_args(call)
    zeros = keras.ops.zeros((1, call.inputs[0].channels or 1))
    args, kwargs = keras.tree.map_structure(
        lambda v: zeros if _is_symbolic(v) else v, (tuple(args), dict(kwargs)))
    try:
        out = keras.ops.convert_to_numpy(call.core(*args, **kwargs))
    except Exception:       # noqa: BLE001 - cannot tell: assume it does not
        return False
    return bool(np.all(out == 0))


def _operation_rule(op, call):
    kind = type(op).__name__
    what = f"operation {op.name!r} ({type(op).__module__}.{kind})"
    if _op_args(call) is None or len(call.outputs) != 1:
        return boundary(f"{what} is opaque to channel pruning", warn=True)
    args, kwargs = _op_args(call)
    flat = keras.tree.flatten((tuple(args), dict(kwargs)))
    symbolic = [v for v in flat if _is_symbolic(v)]
    constants = [v for v in flat if not _is_symbolic(v)]
    out = call.outputs[0]
    if kind in _ELEMENTWISE_OPS or kind in _BINARY_OPS:
        if len(symbolic) == 1 and tuple(call.inputs[0].shape) == tuple(out.shape):
            if any(np.ndim(c) and np.shape(c)[-1] != 1 for c in constants
                   if isinstance(c, (int, float, np.ndarray, np.generic)) or hasattr(c, "shape")):
                return boundary(f"{what}: per-channel constant operand")
            return ChannelRule("passthrough", zero_preserving=_op_maps_zero_to_zero(call))
        if kind in _MERGE_OPS and len(symbolic) == 2:
            return _merge(op, call)
    return boundary(f"{what} is not a layer the pruning engine can see through", warn=True)


def _builtin_rules():
    L = keras.layers
    rules = {
        L.Conv1D: _grouped_or_depthwise_conv, L.Conv2D: _grouped_or_depthwise_conv,
        L.Conv3D: _grouped_or_depthwise_conv,
        L.Conv1DTranspose: _conv_transpose, L.Conv2DTranspose: _conv_transpose,
        L.Conv3DTranspose: _conv_transpose,
        L.Dense: _dense,
        L.SeparableConv1D: _separable, L.SeparableConv2D: _separable,
        L.DepthwiseConv1D: _depthwise, L.DepthwiseConv2D: _depthwise,
        L.BatchNormalization: _batch_norm,
        L.PReLU: _prelu,
        L.Activation: _elementwise_activation, L.ReLU: _elementwise_activation,
        L.LeakyReLU: _elementwise_activation, L.ELU: _elementwise_activation,
        L.Softmax: _softmax,
        L.Rescaling: _rescaling,
        L.Reshape: _reshape,
        L.Flatten: lambda layer, call: ChannelRule("flatten"),
        L.Concatenate: _concat,
    }
    for cls in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum):
        rules[cls] = _merge
    for cls in (L.LayerNormalization, L.GroupNormalization, L.UnitNormalization,
                L.Normalization, L.Dot, L.Permute, L.EinsumDense, L.Embedding,
                L.TimeDistributed, L.Bidirectional, L.Attention, L.MultiHeadAttention):
        rules[cls] = _mixing
    passthrough = [
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
        "Cropping1D", "Cropping2D", "Cropping3D",
        "UpSampling1D", "UpSampling2D", "UpSampling3D", "Identity", "Masking",
    ]
    for name in passthrough:
        cls = getattr(L, name, None)
        if cls is not None:
            rules[cls] = lambda layer, call: PASSTHROUGH
    # layers private to keras.applications (ConvNeXt, InceptionResNetV2)
    for module, name, fn in (("convnext", "LayerScale", _layer_scale),
                             ("convnext", "StochasticDepth", lambda layer, call: PASSTHROUGH),
                             ("inception_resnet_v2", "CustomScaleLayer", _custom_scale)):
        try:
            mod = __import__(f"keras.src.applications.{module}", fromlist=[name])
            rules[getattr(mod, name)] = fn
        except (ImportError, AttributeError):
            pass
    return rules


_BUILTIN = _builtin_rules()


def channel_rule(call):
    """The ChannelRule for one call of a layer (looking through wrappers).

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph.model_graph import LayerGraph
        >>> g = LayerGraph(zoo.plain_cnn())
        >>> channel_rule(g.calls[0]).role
        'producer'
    """
    layer = call.core
    custom = getattr(layer, "get_channel_rule", None)
    if callable(custom):
        return custom()
    for cls in type(layer).__mro__:
        fn = _REGISTRY.get(cls) or _BUILTIN.get(cls)
        if fn is not None:
            return fn(layer, call)
    if not isinstance(layer, keras.layers.Layer):      # a keras.ops Operation node
        return _operation_rule(layer, call)
    if type(layer).__name__ == "Lambda":
        return boundary(f"Lambda layer {layer.name!r} is opaque to channel pruning", warn=True)
    return boundary(f"layer {layer.name!r} ({type(layer).__name__}) is unknown to the pruning "
                    "engine; register it with wz.register_channel_rule", warn=True)


def evaluates_zero_to_zero(call):
    """Whether a parameter-free elementwise layer maps 0 to 0."""
    zeros = keras.ops.zeros((1, call.inputs[0].channels or 1))
    return bool(np.all(keras.ops.convert_to_numpy(call.core(zeros)) == 0))
