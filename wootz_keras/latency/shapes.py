"""Layer shape classes: what a latency table is indexed by.

A shape class is everything about a layer's cost except its channel counts:
the kind of layer (a full convolution, a depthwise convolution, a dense
layer), its kernel, strides, dilation, padding and the spatial size of its
input (exact: a network has only a few). The table then holds, per class,
the measured latency of the layer at (input channels, output channels).

Modelled layers: Conv2D (groups=1, channels_last), DepthwiseConv2D,
SeparableConv2D (its depthwise and its pointwise part) and Dense. Other
layers (normalisation, pooling, merges, activations) are folded into the
neighbouring convolution or are elementwise work the table does not hold;
`layer_points` returns nothing for them.
"""

import dataclasses

KINDS = ("conv", "depthwise", "dense")


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """One shape class; `key` is its name in the table's JSON file.

    Example:
        >>> LayerShape("conv", (3, 3), (1, 1), (1, 1), "same", (32, 32)).key
        'conv-k3x3-s1x1-d1x1-same-32x32'
        >>> LayerShape("dense", positions=1).key
        'dense-p1'
    """
    kind: str
    kernel: tuple = (1, 1)
    strides: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: str = "valid"
    spatial: tuple = (1, 1)
    depth_multiplier: int = 1
    positions: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"layer kind must be one of {KINDS}, got {self.kind!r}")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {self.padding!r}")
        for name in ("kernel", "strides", "dilation", "spatial"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"{name} must be two positive integers, got {value!r}")
            object.__setattr__(self, name, value)

    @property
    def key(self):
        if self.kind == "dense":
            return f"dense-p{self.positions}"
        k, s, d, hw = ("x".join(map(str, v)) for v in
                       (self.kernel, self.strides, self.dilation, self.spatial))
        key = f"{self.kind}-k{k}-s{s}-d{d}-{self.padding}-{hw}"
        return key + (f"-m{self.depth_multiplier}" if self.kind == "depthwise" else "")

    @property
    def output_spatial(self):
        """Spatial size of the layer's output."""
        out = []
        for size, k, s, d in zip(self.spatial, self.kernel, self.strides, self.dilation):
            if self.padding == "same":
                out.append(-(-size // s))
            else:
                out.append(max(1, (size - (k - 1) * d - 1) // s + 1))
        return tuple(out)

    def check_counts(self, cin, cout):
        """(cin, cout) as ints; a depthwise layer's cout must be cin x depth_multiplier."""
        cin, cout = int(cin), int(cout)
        if cin < 1 or cout < 1:
            raise ValueError(f"{self.key}: channel counts must be positive, got ({cin}, {cout})")
        if self.kind == "depthwise" and cout != cin * self.depth_multiplier:
            raise ValueError(f"{self.key}: a depthwise layer with {cin} input channels has "
                             f"{cin * self.depth_multiplier} outputs, not {cout}")
        return cin, cout


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def layer_points(call, cin, cout):
    """[(LayerShape, cin, cout)] of one layer call with `cin` / `cout` channels
    (a SeparableConv2D gives two: its depthwise and its pointwise part), or []
    for a layer the tables do not model.

    Example:
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import LayerGraph
        >>> g = LayerGraph(zoo.plain_cnn())
        >>> call = next(c for c in g.calls if c.core.name == "block2_conv")
        >>> [(s.key, ci, co) for s, ci, co in layer_points(call, 16, 32)]
        [('conv-k3x3-s1x1-d1x1-same-14x14', 16, 32)]
    """
    import keras
    L = keras.layers
    layer = call.core
    if not call.inputs:
        return []
    shape = tuple(call.inputs[0].shape)
    if isinstance(layer, L.Dense):
        if len(shape) < 2:
            return []
        positions = 1
        for d in shape[1:-1]:
            if d is None:
                return []
            positions *= int(d)
        return [(LayerShape("dense", positions=positions), cin, cout)]
    if not isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D)):
        return []
    if len(shape) != 4 or None in shape[1:3] or getattr(layer, "data_format",
                                                          "channels_last") != "channels_last":
        return []
    common = dict(kernel=_pair(layer.kernel_size), strides=_pair(layer.strides),
                  dilation=_pair(layer.dilation_rate), padding=layer.padding,
                  spatial=(int(shape[1]), int(shape[2])))
    if isinstance(layer, L.DepthwiseConv2D):
        return [(LayerShape("depthwise", depth_multiplier=int(layer.depth_multiplier), **common),
                 cin, cout)]
    if isinstance(layer, L.SeparableConv2D):
        dm = int(layer.depth_multiplier)
        dw = LayerShape("depthwise", depth_multiplier=dm, **common)
        pw = LayerShape("conv", spatial=dw.output_spatial)
        return [(dw, cin, cin * dm), (pw, cin * dm, cout)]
    if getattr(layer, "groups", 1) != 1:
        return []
    return [(LayerShape("conv", **common), cin, cout)]
