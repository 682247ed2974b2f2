"""How channels flow through each Keras layer type, and what a layer costs.

A `ChannelRule` says which role a layer call plays for channel pruning,
on which axis its tensors carry channels, which weight axes are indexed by
its input / output channels, and so how its weights are sliced and its
parameters and multiply-adds counted. Custom layers opt in either by
defining `get_channel_rule(self)` returning a ChannelRule, or through
`register_channel_rule(LayerClass, rule_or_function)`: one registration
teaches the engine both slicing and counting.
"""

import dataclasses

import keras
import numpy as np

ROLES = ("producer", "channelwise", "consumer", "passthrough", "flatten", "merge", "concat",
         "boundary")


@dataclasses.dataclass(frozen=True)
class ChannelRule:
    """Channel semantics of one layer.

    role:
      producer     its weights create new output channels (Conv, Dense, ...)
      channelwise  output channel c depends on input channel c only, through
                   per-channel weights (BatchNormalization, DepthwiseConv2D);
                   `expand` > 1 maps input c to outputs c*expand .. c*expand+expand-1
      consumer     reads channels through weights (in_axes) but its own outputs
                   are kept (recurrent layers: their units stay)
      passthrough  parameter-free, channel-preserving (activations, pooling, ...)
      flatten      output feature f carries input channel `channel_map[f]`
                   (Flatten, a Reshape that folds space into features)
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
    axis: the axis of the call's input that carries channels (counted with the
          batch axis; None: the layer works on whatever axis its input carries
          them on, as elementwise layers do)
    out_axis: the channel axis of its output when it differs (GlobalPooling)
    groups: channels (in and out) split into this many contiguous blocks, each
          kept at the same size (grouped convolution, GroupNormalization)
    channel_map: for flatten: input channel of each output feature
    params: optional (layer, cin, cout) -> parameters with cin / cout channels
    macs: optional (call, cin, cout) -> multiply-adds of one call, per sample
    configure: optional (layer, cin, cout) -> config changes for the smaller layer
    slice_weights: optional (layer, keep_in, keep_out) -> the layer's weights
          (get_weights order) for the kept channels (bool masks)
    masked_call: optional (layer, x, mask, axis) -> output: the layer computed
          as if the channels where mask == 0 were absent (normalisation layers,
          whose statistics would otherwise count the zeros); the engine wraps
          such layers so masked and stripped models agree

    Parameters and multiply-adds default to what the weight axes imply:
    every weight axis named in out_axes / in_axes scales with the channel
    count, and weights read by input channels (in_axes, or named "kernel")
    cost one multiply-add per element per output position.

    Example:
        >>> rule = ChannelRule("passthrough")
        >>> rule.role
        'passthrough'
    """
    role: str
    out_axes: dict = dataclasses.field(default_factory=dict)
    in_axes: dict = dataclasses.field(default_factory=dict)
    config_key: object = None
    expand: int = 1
    zero_preserving: bool = True
    reason: str = ""
    warn: bool = False
    axis: int = None
    out_axis: int = None
    groups: int = 1
    channel_map: object = dataclasses.field(default=None, compare=False, repr=False)
    params: object = dataclasses.field(default=None, compare=False, repr=False)
    macs: object = dataclasses.field(default=None, compare=False, repr=False)
    configure: object = dataclasses.field(default=None, compare=False, repr=False)
    slice_weights: object = dataclasses.field(default=None, compare=False, repr=False)
    masked_call: object = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown channel role {self.role!r}; expected one of {ROLES}")

    @property
    def weighted(self):
        """Whether the layer's weights are indexed by channels (sliced when pruning)."""
        return self.role in ("producer", "channelwise", "consumer")


def boundary(reason, warn=False):
    """A rule for layers that are never pruned across."""
    return ChannelRule("boundary", reason=reason, warn=warn)


def as_boundary(rule, reason, warn=False):
    """`rule` turned into a boundary, keeping its weight axes (for counting)."""
    return dataclasses.replace(rule, role="boundary", reason=reason, warn=warn)


PASSTHROUGH = ChannelRule("passthrough")
_REGISTRY = {}


def register_channel_rule(layer_class, rule):
    """Teach the engine a custom layer: `rule` is a ChannelRule or a function
    (layer, call) -> ChannelRule. The same rule slices the layer's weights
    and counts its parameters and FLOPs (from its weight axes, or its own
    `params` / `macs` functions).

    Example:
        >>> class Scale(keras.layers.Layer):
        ...     def call(self, x):
        ...         return 2.0 * x
        >>> register_channel_rule(Scale, ChannelRule("passthrough"))
    """
    _REGISTRY[layer_class] = rule if callable(rule) else (lambda layer, call, r=rule: r)


# -- axes -----------------------------------------------------------------------------
def _rank(t):
    return len(t.shape)


def format_axis(layer, rank):
    """The channel axis a layer with `data_format` works on, for inputs of `rank`."""
    if getattr(layer, "data_format", "channels_last") == "channels_first" and rank > 2:
        return 1
    return rank - 1


def _norm_axis(axis, rank):
    return axis % rank if rank else 0


def _out_axis(layer, call, axis):
    """Output channel axis of a data_format layer (rank may drop: global pooling)."""
    out_rank = _rank(call.outputs[0])
    if out_rank == _rank(call.inputs[0]):
        return axis
    return format_axis(layer, out_rank)


def input_axis(call):
    """Channel axis of a call's first input (the last one while undetermined)."""
    t = call.inputs[0]
    return t.axis if t.axis is not None else _rank(t) - 1


# -- cost defaults ----------------------------------------------------------------------
def _positions(shape, axis):
    """Output positions per sample: every non-batch axis but the channel axis."""
    dims = [d for i, d in enumerate(shape) if i and i != axis]
    return int(np.prod([d or 1 for d in dims])) if dims else 1


def _scaled_shapes(rule, layer, cin0, cout0, cin, cout):
    """{id(weight): (name, shape)} with channel-indexed axes scaled to cin / cout."""
    out = {}
    for v in layer.weights:
        shape = list(v.shape)
        if v.name in rule.out_axes and cout0:
            ax = rule.out_axes[v.name]
            shape[ax] = shape[ax] * cout // cout0
        if v.name in rule.in_axes and cin0:
            ax = rule.in_axes[v.name][0]
            shape[ax] = shape[ax] * cin // cin0
        out[id(v)] = (v.name, shape)
    return out


def rule_params(rule, call, cin=None, cout=None):
    """Parameters of `call`'s layer with cin / cout channels (default: as built)."""
    layer = call.core
    cin0, cout0 = call_channels(call)
    cin = cin0 if cin is None else cin
    cout = cout0 if cout is None else cout
    if rule.params is not None:
        return int(rule.params(layer, cin, cout))
    if (cin, cout) == (cin0, cout0):
        return sum(int(np.prod(v.shape)) for v in layer.weights)
    shapes = _scaled_shapes(rule, layer, cin0, cout0, cin, cout)
    return sum(int(np.prod(s)) for _, s in shapes.values())


def rule_macs(rule, call, cin=None, cout=None):
    """Multiply-adds of one call per sample with cin / cout channels."""
    cin0, cout0 = call_channels(call)
    cin = cin0 if cin is None else cin
    cout = cout0 if cout is None else cout
    if rule.macs is not None:
        return int(rule.macs(call, cin, cout))
    return _kernel_elements(rule, call.core, cin0, cout0, cin, cout) * \
        _positions(call.outputs[0].shape, call.outputs[0].axis_or_last)


def _kernel_elements(rule, layer, cin0, cout0, cin, cout, names=None):
    """Elements of the weights that multiply inputs (in_axes, or named *kernel)."""
    total = 0
    for name, shape in _scaled_shapes(rule, layer, cin0, cout0, cin, cout).values():
        if names is not None:
            if name in names:
                total += int(np.prod(shape))
        elif name in rule.in_axes or "kernel" in name:
            total += int(np.prod(shape))
    return total


def call_channels(call):
    """(input channels, output channels) of a call, as built."""
    cin = call.inputs[0].channels if call.inputs else 0
    cout = call.outputs[0].channels if call.outputs else 0
    return cin, cout


# -- slicing defaults ----------------------------------------------------------------------
def slice_by_axes(rule, layer, keep_in, keep_out):
    """The layer's weights with the dropped channels' slices removed."""
    out = []
    rows_cache = {}
    keep_out_idx = np.flatnonzero(keep_out) if keep_out is not None else None
    for var in layer.weights:
        steps = []
        if var.name in rule.out_axes and keep_out_idx is not None:
            steps.append((rule.out_axes[var.name], keep_out_idx))
        if var.name in rule.in_axes and keep_in is not None:
            axis, repeat = rule.in_axes[var.name]
            if repeat not in rows_cache:
                rows_cache[repeat] = np.flatnonzero(np.repeat(keep_in, repeat))
            steps.append((axis, rows_cache[repeat]))
        if not steps:
            out.append(keras.ops.convert_to_tensor(var))  # kept whole: no copy through numpy
            continue
        w = np.asarray(var.numpy())
        if len(steps) == 2 and steps[0][0] % w.ndim != steps[1][0] % w.ndim:
            steps.reverse()     # input rows first: the output take then copies less
        for axis, idx in steps:
            w = np.take(w, idx, axis=axis)
        out.append(w)
    return out


def _grouped_slice(layer, keep_in, keep_out):
    """Grouped convolution: filter o reads the kept inputs of its own group."""
    g = layer.groups
    kernel = np.asarray(layer.kernel.numpy())           # (*k, cin / g, cout)
    cin, cout = len(keep_in), len(keep_out)
    per_in, per_out = cin // g, cout // g
    blocks = []
    for b in range(g):
        rows = np.flatnonzero(keep_in[b * per_in:(b + 1) * per_in])
        cols = b * per_out + np.flatnonzero(keep_out[b * per_out:(b + 1) * per_out])
        blocks.append(np.take(np.take(kernel, rows, axis=-2), cols, axis=-1))
    out = [np.concatenate(blocks, axis=-1)]
    if layer.use_bias:
        out.append(np.asarray(layer.bias.numpy())[np.flatnonzero(keep_out)])
    return out


# -- layer rules -----------------------------------------------------------------------------
def _with_axis(layer, call, rule, axis=None):
    axis = format_axis(layer, _rank(call.inputs[0])) if axis is None else axis
    return dataclasses.replace(rule, axis=axis, out_axis=_out_axis(layer, call, axis))


def _conv(layer, call):
    cin = call.inputs[0].shape[format_axis(layer, _rank(call.inputs[0]))]
    groups = getattr(layer, "groups", 1)
    kernel = {"kernel": -1, "bias": 0}
    if groups == 1:
        rule = ChannelRule("producer", out_axes=kernel, in_axes={"kernel": (-2, 1)},
                           config_key="filters")
    elif cin is not None and cin // groups == 1:
        # one input channel per group (depthwise, ConvNeXt): channelwise with
        # filters / groups outputs per input; filters and groups shrink together
        m = layer.filters // groups
        rule = ChannelRule("channelwise", out_axes=kernel, expand=m,
                           configure=lambda l, ci, co: {"filters": co, "groups": ci})
    else:
        rule = ChannelRule("producer", out_axes=kernel, in_axes={"kernel": (-2, 1)},
                           config_key="filters", groups=groups, slice_weights=_grouped_slice)
    return _with_axis(layer, call, rule)


def _transpose_macs(call, cin, cout):
    layer = call.core
    k = int(np.prod(layer.kernel_size))
    t = call.inputs[0]
    return k * cin * cout * _positions(t.shape, t.axis_or_last)


def _conv_transpose(layer, call):
    rule = ChannelRule("producer", out_axes={"kernel": -2, "bias": 0},
                       in_axes={"kernel": (-1, 1)}, config_key="filters", macs=_transpose_macs)
    return _with_axis(layer, call, rule)


def _dense(layer, call):
    rank = _rank(call.inputs[0])
    return ChannelRule("producer", out_axes={"kernel": -1, "bias": 0}, in_axes={"kernel": (0, 1)},
                       config_key="units", axis=rank - 1, out_axis=rank - 1)


def _separable(layer, call):
    m = layer.depth_multiplier
    rule = ChannelRule("producer", out_axes={"pointwise_kernel": -1, "bias": 0},
                       in_axes={"depthwise_kernel": (-2, 1), "pointwise_kernel": (-2, m)},
                       config_key="filters")
    return _with_axis(layer, call, rule)


def _depthwise(layer, call):
    rule = ChannelRule("channelwise", out_axes={"bias": 0}, in_axes={"kernel": (-2, 1)},
                       expand=layer.depth_multiplier)
    return _with_axis(layer, call, rule)


def _single_axis(layer_axis, rank):
    axes = layer_axis if isinstance(layer_axis, (list, tuple)) else [layer_axis]
    return _norm_axis(axes[0], rank) if len(axes) == 1 else None


def _batch_norm(layer, call):
    rank = _rank(call.inputs[0])
    axis = _single_axis(layer.axis, rank)
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    rule = ChannelRule("channelwise", out_axes={n: 0 for n in names}, axis=axis, out_axis=axis)
    if axis is None:
        return as_boundary(rule, f"{layer.name}: normalises over axes {layer.axis}")
    return rule


def _masked_moments(x, mask, axes):
    """Mean and variance over `axes` counting only elements where mask == 1."""
    count = _kept_count(mask, x, axes)
    mean = keras.ops.sum(x * mask, axis=axes, keepdims=True) / count
    centred = (x - mean) * mask
    var = keras.ops.sum(centred * centred, axis=axes, keepdims=True) / count
    return mean, var


def _kept_count(mask, x, axes):
    """Number of kept elements over `axes` (mask broadcast to x's shape)."""
    return keras.ops.sum(keras.ops.ones_like(x) * mask, axis=axes, keepdims=True)


def _channel_mask(mask, rank, axis, dtype):
    shape = [1] * rank
    shape[axis] = -1
    return keras.ops.reshape(keras.ops.cast(mask, dtype), shape)


def masked_layer_norm(layer, x, mask, axis):
    """LayerNormalization over the kept channels only (mask: 1 kept, 0 pruned)."""
    rank = len(x.shape)
    dtype = keras.backend.result_type(x.dtype, "float32")
    x = keras.ops.cast(x, dtype)
    m = _channel_mask(mask, rank, axis, dtype)
    mean, var = _masked_moments(x, m, [axis])
    inv = keras.ops.rsqrt(var + layer.epsilon)
    shape = [1] * rank
    shape[axis] = -1
    if layer.rms_scaling:
        out = x * inv
        if layer.gamma is not None:
            out = out * keras.ops.reshape(keras.ops.cast(layer.gamma, dtype), shape)
    else:
        out = (x - mean) * inv
        if layer.gamma is not None:
            out = out * keras.ops.reshape(keras.ops.cast(layer.gamma, dtype), shape)
        if layer.beta is not None:
            out = out + keras.ops.reshape(keras.ops.cast(layer.beta, dtype), shape)
    return keras.ops.cast(out * m, layer.compute_dtype)


def masked_group_norm(layer, x, mask, axis):
    """GroupNormalization whose group statistics count the kept channels only."""
    rank = len(x.shape)
    dtype = keras.backend.result_type(x.dtype, "float32")
    x = keras.ops.cast(x, dtype)
    g = layer.groups
    shape = list(keras.ops.shape(x))
    c = shape[axis]
    grouped = shape[:axis] + [g, c // g] + shape[axis + 1:]
    grouped[0] = -1
    xg = keras.ops.reshape(x, grouped)
    mshape = [1] * (rank + 1)
    mshape[axis], mshape[axis + 1] = g, c // g
    mg = keras.ops.reshape(keras.ops.cast(mask, dtype), mshape)
    axes = [i for i in range(1, rank + 1) if i != axis]
    mean, var = _masked_moments(xg, mg, axes)
    out = (xg - mean) * keras.ops.rsqrt(var + layer.epsilon)
    out = keras.ops.reshape(out, [-1] + shape[1:])
    bshape = [1] * rank
    bshape[axis] = -1
    if layer.scale:
        out = out * keras.ops.reshape(keras.ops.cast(layer.gamma, dtype), bshape)
    if layer.center:
        out = out + keras.ops.reshape(keras.ops.cast(layer.beta, dtype), bshape)
    return keras.ops.cast(out * _channel_mask(mask, rank, axis, dtype), layer.compute_dtype)


_MASKED_CALLS = {}


def masked_call_for(layer):
    """The masked_call implementation for a layer class (None if it needs none)."""
    for cls in type(layer).__mro__:
        if cls in _MASKED_CALLS:
            return _MASKED_CALLS[cls]
    return None


def _layer_norm(layer, call):
    rank = _rank(call.inputs[0])
    axis = _single_axis(layer.axis, rank)
    rule = ChannelRule("channelwise", out_axes={"gamma": 0, "beta": 0}, axis=axis, out_axis=axis,
                       masked_call=masked_layer_norm)
    if axis is None:
        return as_boundary(rule, f"{layer.name}: LayerNormalization over several axes "
                                 f"{layer.axis} mixes channels with space")
    return rule


def _group_norm(layer, call):
    rank = _rank(call.inputs[0])
    axis = _norm_axis(layer.axis, rank)
    g = layer.groups
    c = call.inputs[0].shape[axis]
    out_axes = {"gamma": 0, "beta": 0}
    if c is not None and c == g:          # one channel per group: instance normalisation
        return ChannelRule("channelwise", out_axes=out_axes, axis=axis, out_axis=axis,
                           configure=lambda l, ci, co: {"groups": co})
    return ChannelRule("channelwise", out_axes=out_axes, axis=axis, out_axis=axis, groups=g,
                       masked_call=masked_group_norm)


def _prelu(layer, call):
    axis = input_axis(call)
    c = call.inputs[0].channels
    alpha = tuple(layer.alpha.shape)
    # alpha is shaped like the input without its batch axis (shared axes are 1)
    if c > 1 and len(alpha) == _rank(call.inputs[0]) - 1 and alpha[axis - 1] == c and \
            int(np.prod(alpha)) == c:
        return ChannelRule("channelwise", out_axes={"alpha": axis - 1}, axis=axis, out_axis=axis)
    if int(np.prod(alpha)) == 1:
        return ChannelRule("passthrough", zero_preserving=True)
    return boundary(f"{layer.name}: PReLU with per-position slopes")


def _recurrent_macs(call, cin, cout):
    t = call.inputs[0]
    steps = t.shape[1] or 1
    layer = call.core
    cin0, cout0 = call_channels(call)
    rule = ChannelRule("consumer", in_axes={"kernel": (0, 1)})
    return steps * _kernel_elements(rule, layer, cin0, cout0, cin, cout0,
                                    names=("kernel", "recurrent_kernel"))


def _recurrent(layer, call):
    """SimpleRNN / GRU / LSTM (or Bidirectional around one) reading channels
    as input features: the input kernel's rows are sliced; the units stay
    (masking a unit's output would not stop it feeding the recurrence)."""
    inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
    if not isinstance(inner, (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)) \
            or _rank(call.inputs[0]) != 3:
        return _mixing(layer, call)
    return ChannelRule("consumer", in_axes={"kernel": (0, 1)}, axis=2, out_axis=None,
                       macs=_recurrent_macs, configure=_unbuilt_inner_layers,
                       reason=f"recurrent layer {layer.name!r} keeps its units")


def _unbuilt_inner_layers(layer, cin, cout):
    """Bidirectional's config carries its inner layers' build configs (their old
    input width): drop them so the smaller copy builds on its new input."""
    config = layer.get_config()
    changes = {}
    for key in ("layer", "backward_layer"):
        inner = config.get(key)
        if isinstance(inner, dict) and "build_config" in inner:
            changes[key] = {k: v for k, v in inner.items() if k != "build_config"}
    return changes


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
    rank = _rank(call.inputs[0])
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if any(a % rank == input_axis(call) for a in axes):
        return boundary(f"{layer.name}: softmax mixes channels")
    return ChannelRule("passthrough", zero_preserving=False)


def _rescaling(layer, call):
    if np.ndim(layer.scale) or np.ndim(layer.offset):
        return boundary(f"{layer.name}: per-channel rescaling")
    return ChannelRule("passthrough", zero_preserving=float(layer.offset) == 0.0)


def _channel_ids(shape, axis):
    """Array of `shape` (no batch axis) holding each element's channel index."""
    ids = np.arange(shape[axis - 1]).reshape([-1] + [1] * (len(shape) - axis))
    return np.broadcast_to(ids, shape)


def _feature_axis(ids):
    """(axis, channel of each position along it) if `ids` only varies along one
    axis, else None."""
    for k in range(ids.ndim):
        line = ids[(0,) * k + (slice(None),) + (0,) * (ids.ndim - k - 1)]
        shape = [1] * ids.ndim
        shape[k] = -1
        if np.array_equal(ids, np.broadcast_to(line.reshape(shape), ids.shape)):
            return k, line
    return None


def _reshape(layer, call):
    t_in, t_out = call.inputs[0], call.outputs[0]
    axis = input_axis(call)
    shape_in, shape_out = tuple(t_in.shape[1:]), tuple(t_out.shape[1:])
    if None in shape_in or None in shape_out or int(np.prod(shape_in)) > 10 ** 7:
        if axis == _rank(t_in) - 1 and t_in.channels == t_out.shape[-1]:
            return ChannelRule("passthrough", config_key="target_shape", axis=axis,
                               out_axis=_rank(t_out) - 1)
        return boundary(f"{layer.name}: reshape changes the channel axis "
                        f"({t_in.channels} -> {t_out.shape[-1]})")
    ids = np.reshape(_channel_ids(shape_in, axis), shape_out)
    found = _feature_axis(ids)
    if found is None:
        return boundary(f"{layer.name}: reshape spreads the channels over several axes")
    k, line = found
    if len(line) == t_in.channels and np.array_equal(line, np.arange(t_in.channels)):
        return ChannelRule("passthrough", config_key="target_shape", axis=axis, out_axis=k + 1)
    return ChannelRule("flatten", config_key="target_shape", axis=axis, out_axis=k + 1,
                       channel_map=np.asarray(line))


def _flatten(layer, call):
    t_in = call.inputs[0]
    axis = input_axis(call)
    shape = tuple(t_in.shape[1:])
    if None in shape:
        return boundary(f"{layer.name}: flattening an input of unknown shape {t_in.shape}")
    ids = _channel_ids(shape, axis)
    if getattr(layer, "data_format", "channels_last") == "channels_first" and len(shape) > 1:
        ids = np.moveaxis(ids, 0, -1)          # Flatten(channels_first) moves channels last
    return ChannelRule("flatten", axis=axis, out_axis=1, channel_map=ids.reshape(-1))


def _permute(layer, call):
    axis = input_axis(call)
    dims = list(layer.dims)
    if axis == 0 or axis not in dims:
        return boundary(f"{layer.name}: permutation without a channel axis")
    return ChannelRule("passthrough", axis=axis, out_axis=dims.index(axis) + 1)


def _merge(layer, call):
    channels = {t.channels for t in call.inputs} | {call.outputs[0].channels}
    axes = {t.axis_or_last for t in call.inputs} | {call.outputs[0].axis_or_last}
    ranks = {len(t.shape) for t in call.inputs}
    if len(channels) != 1 or len(axes) != 1 or len(ranks) != 1:
        return boundary(f"{layer.name}: broadcasting merge of channel counts {sorted(channels)}"
                        + ("" if len(axes) == 1 else f" on axes {sorted(axes)}"))
    return ChannelRule("merge")


def _concat(layer, call):
    rank = _rank(call.outputs[0])
    axes = {t.axis_or_last for t in call.inputs}
    if len(axes) == 1 and layer.axis % rank == axes.pop():
        return ChannelRule("concat")
    return _merge(layer, call)


def _mixing(layer, call):
    return boundary(f"{layer.name}: {type(layer).__name__} mixes channels")


def _layer_scale(layer, call):
    """keras.applications ConvNeXt's LayerScale: x * gamma, one gamma per channel."""
    if len(layer.weights) != 1 or layer.weights[0].shape[-1] != call.inputs[0].channels \
            or input_axis(call) != _rank(call.inputs[0]) - 1:
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
    shape = [1] * _rank(call.inputs[0])
    shape[input_axis(call)] = call.inputs[0].channels or 1
    zeros = keras.ops.zeros(shape)
    args, kwargs = keras.tree.map_structure(
        lambda v: zeros if _is_symbolic(v) else v, (tuple(args), dict(kwargs)))
    try:
        out = keras.ops.convert_to_numpy(call.core(*args, **kwargs))
    except Exception:       # noqa: BLE001 - cannot tell: assume it does not
        return False
    return bool(np.all(out == 0))


def _per_channel_constant(c, call):
    """Whether constant operand `c` varies along the input's channel axis."""
    if not (isinstance(c, (int, float, np.ndarray, np.generic)) or hasattr(c, "shape")):
        return False
    shape = tuple(np.shape(c))
    back = _rank(call.inputs[0]) - input_axis(call)        # channel axis counted from the end
    return len(shape) >= back and shape[-back] != 1


def _operation_rule(op, call):
    kind = type(op).__name__
    what = f"operation {op.name!r} ({type(op).__module__}.{kind})"
    if _op_args(call) is None or len(call.outputs) != 1 or not call.inputs:
        return boundary(f"{what} is opaque to channel pruning", warn=True)
    args, kwargs = _op_args(call)
    flat = keras.tree.flatten((tuple(args), dict(kwargs)))
    symbolic = [v for v in flat if _is_symbolic(v)]
    constants = [v for v in flat if not _is_symbolic(v)]
    out = call.outputs[0]
    if kind in _ELEMENTWISE_OPS or kind in _BINARY_OPS:
        if len(symbolic) == 1 and tuple(call.inputs[0].shape) == tuple(out.shape):
            if any(_per_channel_constant(c, call) for c in constants):
                return boundary(f"{what}: per-channel constant operand")
            return ChannelRule("passthrough", zero_preserving=_op_maps_zero_to_zero(call))
        if kind in _MERGE_OPS and len(symbolic) == 2:
            return _merge(op, call)
    return boundary(f"{what} is not a layer the pruning engine can see through", warn=True)


def _builtin_rules():
    L = keras.layers
    rules = {
        L.Conv1D: _conv, L.Conv2D: _conv, L.Conv3D: _conv,
        L.Conv1DTranspose: _conv_transpose, L.Conv2DTranspose: _conv_transpose,
        L.Conv3DTranspose: _conv_transpose,
        L.Dense: _dense,
        L.SeparableConv1D: _separable, L.SeparableConv2D: _separable,
        L.DepthwiseConv1D: _depthwise, L.DepthwiseConv2D: _depthwise,
        L.BatchNormalization: _batch_norm,
        L.LayerNormalization: _layer_norm,
        L.GroupNormalization: _group_norm,
        L.PReLU: _prelu,
        L.Activation: _elementwise_activation, L.ReLU: _elementwise_activation,
        L.LeakyReLU: _elementwise_activation, L.ELU: _elementwise_activation,
        L.Softmax: _softmax,
        L.Rescaling: _rescaling,
        L.Reshape: _reshape,
        L.Flatten: _flatten,
        L.Permute: _permute,
        L.Concatenate: _concat,
        L.SimpleRNN: _recurrent, L.GRU: _recurrent, L.LSTM: _recurrent,
        L.Bidirectional: _recurrent,
    }
    _MASKED_CALLS[L.LayerNormalization] = masked_layer_norm
    _MASKED_CALLS[L.GroupNormalization] = masked_group_norm
    for cls in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum):
        rules[cls] = _merge
    for cls in (L.UnitNormalization, L.Normalization, L.Dot, L.EinsumDense, L.Embedding,
                L.TimeDistributed, L.Attention, L.MultiHeadAttention):
        rules[cls] = _mixing
    elementwise = ["Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                   "ActivityRegularization", "Identity", "Masking"]
    formatted = [
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
        "Cropping1D", "Cropping2D", "Cropping3D",
        "UpSampling1D", "UpSampling2D", "UpSampling3D",
    ]
    for name in elementwise:
        cls = getattr(L, name, None)
        if cls is not None:
            rules[cls] = lambda layer, call: PASSTHROUGH
    for name in formatted:
        cls = getattr(L, name, None)
        if cls is not None:
            rules[cls] = lambda layer, call: _with_axis(layer, call, PASSTHROUGH)
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


def known_rule(layer):
    """The rule function for `layer`'s class (custom protocol, registry or
    built-in), or None if the engine does not know the layer."""
    custom = getattr(layer, "get_channel_rule", None)
    if callable(custom):
        return lambda layer, call: custom()
    for cls in type(layer).__mro__:
        fn = _REGISTRY.get(cls) or _BUILTIN.get(cls)
        if fn is not None:
            return fn
    return None


def channel_rule(call):
    """The ChannelRule for one call of a layer (looking through wrappers).

    Never raises: a layer whose rule fails is a boundary naming it.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph.model_graph import LayerGraph
        >>> g = LayerGraph(zoo.plain_cnn())
        >>> channel_rule(g.calls[0]).role
        'producer'
    """
    layer = call.core
    fn = known_rule(layer)
    try:
        if fn is not None:
            return fn(layer, call)
        if not isinstance(layer, keras.layers.Layer):      # a keras.ops Operation node
            return _operation_rule(layer, call)
    except Exception as e:      # noqa: BLE001 - a layer we cannot read is a boundary
        return boundary(f"layer {layer.name!r} ({type(layer).__name__}) could not be read "
                        f"by the pruning engine ({type(e).__name__}: {e})", warn=True)
    if type(layer).__name__ == "Lambda":
        return boundary(f"Lambda layer {layer.name!r} is opaque to channel pruning", warn=True)
    why = getattr(call, "open_error", None)
    extra = f" (it could not be opened: {why})" if why else ""
    return boundary(f"layer {layer.name!r} ({type(layer).__name__}) is unknown to the pruning "
                    f"engine{extra}; register it with wz.register_channel_rule", warn=True)


_ZERO_TO_ZERO = {}


def evaluates_zero_to_zero(call):
    """Whether a parameter-free elementwise layer maps 0 to 0 (cached per
    built-in layer class and config)."""
    layer = call.core
    key = None
    if type(layer).__module__.startswith("keras.src.") and not layer.weights:
        try:
            config = layer.get_config()
            config.pop("name", None)
            key = (type(layer), repr(sorted(config.items())))
        except Exception:       # noqa: BLE001 - uncachable: just evaluate
            key = None
    if key is not None and key in _ZERO_TO_ZERO:
        return _ZERO_TO_ZERO[key]
    zeros = keras.ops.zeros((1, call.inputs[0].channels or 1))
    result = bool(np.all(keras.ops.convert_to_numpy(layer(zeros)) == 0))
    if key is not None:
        _ZERO_TO_ZERO[key] = result
    return result
