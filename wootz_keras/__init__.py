"""wootz_keras: fast structured CNN pruning for Keras 3 through composability.

    >>> import wootz_keras as wz
    >>> from wootz_keras import zoo
    >>> small = wz.strip_pruning(wz.prune_filters(zoo.plain_cnn(), rate=0.5))

Importing the package does not import TensorFlow: the engine, planner,
composition and exploration also run on Keras's other backends (e.g. JAX
on a GPU). `wz.export` (TensorFlow, TFLite, ONNX) is loaded on first use.
"""

__version__ = "0.1.0"

from wootz_keras.compose import PretrainedBlocks, assemble, pretrain_blocks  # noqa: F401
from wootz_keras.workflow.runner import explore  # noqa: F401
from wootz_keras.graph import (  # noqa: F401
    ChannelRule,
    DependencyGroup,
    LayerGraph,
    count_flops,
    count_params,
    dependency_groups,
    register_channel_rule,
)
from wootz_keras.planner import (  # noqa: F401
    Block,
    Config,
    ConfigSpace,
    Plan,
    find_modules,
    plan_tuning_blocks,
)
from wootz_keras.pruning import (  # noqa: F401
    CRITERIA,
    PruneWrapper,
    UpdatePruningStep,
    is_pruned,
    prune_compact,
    prune_filters,
    strip_pruning,
)

_LAZY = {"export": "wootz_keras.export", "ExportError": "wootz_keras.export"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wootz_keras' has no attribute {name!r}")
