"""Keras graph -> flat layer DAG -> channel dependency groups, and model cost."""

from wootz_keras.graph.channel_rules import ChannelRule, channel_rule, register_channel_rule  # noqa: F401
from wootz_keras.graph.cost import count_flops, count_params  # noqa: F401
from wootz_keras.graph.dependency import ChannelAnalysis, DependencyGroup, dependency_groups  # noqa: F401
from wootz_keras.graph.model_graph import LayerGraph, is_graph_model, unwrap  # noqa: F401
