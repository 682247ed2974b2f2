"""wootz_keras: fast structured CNN pruning for Keras 3 through composability.

    >>> import wootz_keras as wz
    >>> from wootz_keras import zoo
    >>> small = wz.strip_pruning(wz.prune_filters(zoo.plain_cnn(), rate=0.5))

The public API is this namespace (`__all__`); subpackages hold the layers
(see docs/architecture.md). Importing the package does not require
TensorFlow beyond what Keras's backend needs: the engine, planner,
composition and exploration also run on Keras's other backends (e.g. JAX on
a GPU); `wz.export` imports TensorFlow, TFLite and ONNX tools when called.
"""

__version__ = "0.2.0"

from wootz_keras.utils import native_logs as _native_logs

_native_logs.quiet_for_commands()  # a wootz-* command: TF's native start-up lines stay off the console

from wootz_keras.compose import Assembler, PretrainedBlocks, assemble, pretrain_blocks
from wootz_keras.export.api import ExportError, export
from wootz_keras.graph import (
    ChannelAnalysis,
    ChannelRule,
    DependencyGroup,
    LayerGraph,
    count_flops,
    count_params,
    dependency_groups,
    register_channel_rule,
)
from wootz_keras.planner import (
    Block,
    Config,
    ConfigSpace,
    Plan,
    find_modules,
    plan_tuning_blocks,
)
from wootz_keras.pruning import (
    CRITERIA,
    PruneWrapper,
    UpdatePruningStep,
    estimate_cost,
    importance,
    is_pruned,
    prune_compact,
    prune_filters,
    strip_pruning,
)
from wootz_keras.search.objectives import parse_objective
from wootz_keras.training import Protocol, evaluate, fine_tune
from wootz_keras.workflow.runner import explore

__all__ = [
    "Assembler", "Block", "CRITERIA", "ChannelAnalysis", "ChannelRule", "Config", "ConfigSpace", "DependencyGroup",
    "ExportError", "LayerGraph", "Plan", "PretrainedBlocks", "Protocol", "PruneWrapper",
    "UpdatePruningStep", "assemble", "count_flops", "count_params", "dependency_groups",
    "estimate_cost", "evaluate", "explore", "export", "find_modules", "fine_tune", "importance", "is_pruned",
    "parse_objective", "plan_tuning_blocks", "pretrain_blocks", "prune_compact",
    "prune_filters", "register_channel_rule", "strip_pruning",
]
