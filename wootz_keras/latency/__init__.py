"""Measured latency: tables per runtime, channel counts the runtime likes, predictions.

    >>> import wootz_keras as wz
    >>> from wootz_keras import zoo
    >>> # small = wz.prune_compact(zoo.resnet_cifar(), rate=0.5, round_to="auto", runtime="tflite")

* `LatencyTable`: batch-1 latency of single layers in LiteRT ("tflite") or
  onnxruntime, per shape class and channel counts, measured on first use and
  cached per (runtime, version, threads, CPU) under $WOOTZ_CACHE or
  ~/.cache/wootz_keras (see `table`).
* `ChannelPolicy` / `channel_policy(runtime, threads)`: what
  `prune_filters(..., round_to="auto", runtime=...)` uses to pick each
  group's kept count (see `policy` for the rule and its guarantees).
* `LatencyPredictor` / `latency_predictor(runtime, threads)`: predicted
  latency of pruned candidates, from the table (see `predict`).
* `model_latency_ms(model, runtime)`: a Keras model exported as
  `wootz_keras.export` writes it, timed (what predictions are checked against).

A runtime that cannot be imported is a `RuntimeUnavailable` error naming the
package to install; nothing falls back to another runtime or to FLOPs.
"""

from wootz_keras.latency.measure import layer_latency_ms, model_latency_ms
from wootz_keras.latency.policy import DEFAULT_STEP, DEFAULT_TOLERANCE, ChannelPolicy, choose_count
from wootz_keras.latency.predict import LatencyPredictor, network_points
from wootz_keras.latency.runtimes import RUNTIMES, RuntimeUnavailable, check_runtime
from wootz_keras.latency.shapes import LayerShape, layer_points
from wootz_keras.latency.table import CACHE_ENV, LatencyTable, cache_dir

_TABLES = {}


def latency_table(runtime, threads=1, cache=None, **settings):
    """The process's shared `LatencyTable` for (runtime, threads, cache folder)
    (settings: runs / warmup / rounds of entries it measures)."""
    runtime = check_runtime(runtime)
    key = (runtime, threads, cache_dir(cache), tuple(sorted(settings.items())))
    table = _TABLES.get(key)
    if table is None or not _same_file(table):
        table = _TABLES[key] = LatencyTable(runtime, threads, cache, **settings)
    return table


def _same_file(table):
    """False once a cached table's file was removed (tests, a user reset)."""
    import os
    return not table.entries or os.path.exists(table.path)


def channel_policy(runtime, threads=1, step=DEFAULT_STEP, tolerance=DEFAULT_TOLERANCE,
                   cache=None, **settings):
    """The `ChannelPolicy` of round_to="auto" for `runtime` at `threads`.

    Example:
        >>> import tempfile
        >>> channel_policy("onnxruntime", cache=tempfile.mkdtemp())
        ChannelPolicy(onnxruntime, threads=1, step=16, tolerance=0.03)
    """
    return ChannelPolicy(latency_table(runtime, threads, cache, **settings), step, tolerance)


def latency_predictor(runtime, threads=1, cache=None, **settings):
    """A `LatencyPredictor` for `runtime` at `threads`, on the shared table.

    Example:
        >>> import tempfile
        >>> latency_predictor("onnxruntime", cache=tempfile.mkdtemp()).runtime
        'onnxruntime'
    """
    table = latency_table(runtime, threads, cache, **settings)
    return LatencyPredictor(table, ChannelPolicy(table))


__all__ = [
    "CACHE_ENV", "ChannelPolicy", "DEFAULT_STEP", "DEFAULT_TOLERANCE", "LatencyPredictor",
    "LatencyTable", "LayerShape", "RUNTIMES", "RuntimeUnavailable", "cache_dir",
    "channel_policy", "check_runtime", "choose_count", "latency_predictor", "latency_table",
    "layer_latency_ms", "layer_points", "model_latency_ms", "network_points",
]
