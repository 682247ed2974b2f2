"""wootz_keras: fast structured CNN pruning for Keras 3 through composability.

    >>> import wootz_keras as wz
    >>> from wootz_keras import zoo
    >>> small = wz.strip_pruning(wz.prune_filters(zoo.plain_cnn(), rate=0.5))
"""

__version__ = "0.1.0"

from wootz_keras.graph import (  # noqa: F401
    ChannelRule,
    DependencyGroup,
    LayerGraph,
    count_flops,
    count_params,
    dependency_groups,
    register_channel_rule,
)
from wootz_keras.pruning import (  # noqa: F401
    CRITERIA,
    PruneWrapper,
    UpdatePruningStep,
    is_pruned,
    prune_filters,
    strip_pruning,
)
