"""Predicted batch-1 latency of a pruned network, from the latency table alone.

The prediction is the sum, over the network's modelled layers
(convolutions, depthwise, dense: `shapes.layer_points`), of the table's
latency of that layer at its pruned channel counts. Each table entry is a
one-layer model timed on its own, so it also holds one model invocation
(input copy, dispatch); the sum counts that once per layer, and leaves out
the elementwise work between layers (residual adds, pooling). Both are
roughly proportional to the network's size, so the sum ranks candidates
well; its absolute error against real exports is measured by
`benchmarks/export_latency.py --predict` (see the README).
"""

from wootz_keras.latency.shapes import layer_points


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
        from wootz_keras.pruning.prune import analysis_of, check_group_rates, group_keep, \
            resolve_group_rates
        analysis = analysis_of(model)
        if group_rates is None:
            group_rates = resolve_group_rates(analysis, rate, rates)
        else:
            group_rates = check_group_rates(analysis, group_rates)
        keep = group_keep(analysis, group_rates, self._round_to(round_to))
        return self.predict_channels(analysis, kept_channels(analysis, keep))

    def predict_channels(self, analysis, channels=None):
        """Predicted latency (ms) of the analysed network at `channels`
        ({id(call): (cin, cout)}; None: unpruned)."""
        return float(sum(self.table.lookup(network_points(analysis, channels))))

    def predict_model(self, model):
        """Predicted latency (ms) of a plain (e.g. already pruned) Keras model."""
        from wootz_keras.graph import ChannelAnalysis
        return self.predict_channels(ChannelAnalysis(model))
