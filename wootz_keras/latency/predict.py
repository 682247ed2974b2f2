"""Predicted batch-1 latency of a pruned network, from the latency table alone.

Each table entry is a one-layer model timed on its own, so it holds the
layer plus one model invocation (dispatch, input and output copies). The
prediction is

    invocation + sum over the modelled layers of (entry - invocation)

where `invocation` is the table's entry for the smallest possible model (a
1 -> 1 dense layer): the layers' own time, plus one invocation for the whole
network. Modelled layers are convolutions, depthwise and dense layers
(`shapes.layer_points`); the elementwise work between them (residual adds,
pooling, a softmax) is left out. The prediction is made from the table, not
by exporting each candidate; its error against real exports is measured by
`benchmarks/export_latency.py --predict N`.
"""

from wootz_keras.latency.shapes import LayerShape, layer_points

#: the smallest model: its latency is one invocation of the runtime
INVOCATION = (LayerShape("dense"), 1, 1)


def network_points(analysis, channels=None):
    """[(LayerShape, cin, cout)] of every modelled layer call of the analysed
    network, at `channels` ({id(call): (cin, cout)}; None: the teacher's)."""
    points = []
    for call in analysis.graph.calls:
        if not (call.inputs and call.outputs and getattr(call.core, "weights", None)):
            continue
        cin, cout = (channels or {}).get(id(call), (call.inputs[0].channels,
                                                    call.outputs[0].channels))
        points.extend(layer_points(call, cin, cout))
    return points


class LatencyPredictor:
    """Predicts the latency of pruned variants of one network in one runtime.

    table: a `LatencyTable` (its runtime and threads); the predictor's
    round_to="auto" uses a `ChannelPolicy` on the same table, so predictions
    and prunings agree.

    Example:
        >>> import tempfile
        >>> from wootz_keras import zoo
        >>> from wootz_keras.graph import ChannelAnalysis
        >>> from wootz_keras.latency.table import LatencyTable
        >>> table = LatencyTable("onnxruntime", cache=tempfile.mkdtemp(),
        ...                      measure=lambda shape, cin, cout: 1e-4 * cin * cout)
        >>> predictor = LatencyPredictor(table)
        >>> a = ChannelAnalysis(zoo.plain_cnn())
        >>> predictor.predict(a, rate=0.5) < predictor.predict(a, rate=0.0)
        True
    """

    def __init__(self, table, policy=None):
        from wootz_keras.latency.policy import ChannelPolicy
        self.table = table
        self.policy = policy if policy is not None else ChannelPolicy(table)

    @property
    def runtime(self):
        return self.table.runtime

    @property
    def threads(self):
        return self.table.threads

    def _round_to(self, round_to):
        if isinstance(round_to, str) and round_to.strip().lower() == "auto":
            return self.policy
        return round_to

    def predict(self, model, rate=None, rates=None, group_rates=None, round_to=1):
        """Predicted latency (ms) of `prune_compact(model, rate / rates /
        group_rates, round_to)`; `model` is a Keras model or, for many
        predictions, its ChannelAnalysis."""
        from wootz_keras.pruning.estimate import kept_channels
        from wootz_keras.pruning.prune import analysis_of, group_keep, group_rates_of
        analysis = analysis_of(model)
        group_rates = group_rates_of(analysis, rate, rates, group_rates)
        keep = group_keep(analysis, group_rates, self._round_to(round_to))
        return self.predict_channels(analysis, kept_channels(analysis, keep))

    def predict_channels(self, analysis, channels=None):
        """Predicted latency (ms) of the analysed network at `channels`
        ({id(call): (cin, cout)}; None: unpruned)."""
        invocation, *layers = self.table.lookup([INVOCATION, *network_points(analysis, channels)])
        return float(invocation + sum(max(0.0, ms - invocation) for ms in layers))

    def predict_model(self, model):
        """Predicted latency (ms) of a plain (e.g. already pruned) Keras model."""
        from wootz_keras.graph import ChannelAnalysis
        return self.predict_channels(ChannelAnalysis(model))
