"""Structured filter pruning: wrappers (masks), importance, schedules, surgery."""

from wootz_keras.pruning.importance import CRITERIA, group_scores  # noqa: F401
from wootz_keras.pruning.prune import UpdatePruningStep, prune_compact, prune_filters, units_to_keep  # noqa: F401
from wootz_keras.pruning.surgery import strip_pruning  # noqa: F401
from wootz_keras.pruning.wrapper import PruneWrapper, is_pruned  # noqa: F401
