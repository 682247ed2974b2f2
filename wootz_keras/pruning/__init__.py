"""Structured filter pruning: wrappers (masks), importance, schedules, surgery."""

from wootz_keras.pruning import importance  # noqa: F401
from wootz_keras.pruning.estimate import estimate_cost  # noqa: F401
from wootz_keras.pruning.importance import CRITERIA, Importance, group_scores  # noqa: F401
from wootz_keras.pruning.prune import (  # noqa: F401
    UpdatePruningStep,
    check_rate,
    kept_units,
    prune_compact,
    prune_filters,
    units_to_keep,
)
from wootz_keras.pruning.surgery import strip_pruning  # noqa: F401
from wootz_keras.pruning.wrapper import PruneWrapper, is_pruned  # noqa: F401
