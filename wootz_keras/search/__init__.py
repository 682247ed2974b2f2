"""Exploration: objectives, candidate order, a shared journal with work claims, reports.

Independent of how candidates are built: give it `Candidate`s and a callable
that fine-tunes and measures one (docs/method.md steps 6-7). The journal is an
SQLite file (one machine) or a PostgreSQL database (workers on any machines).

Example:
    >>> from wootz_keras.search import parse_objective, Candidate
    >>> parse_objective("smallest_params:alpha=0.01").describe()
    'smallest params with accuracy >= full x (1 - 0.01)'
"""

from wootz_keras.search.backends import describe_journal  # noqa: F401
from wootz_keras.search.journal import (  # noqa: F401
    MODES,
    Claim,
    Journal,
    JournalMismatchError,
    candidates_hash,
)
from wootz_keras.search.objectives import (  # noqa: F401
    Candidate,
    FastestWithinAccuracy,
    MostAccurateWithinBudget,
    Objective,
    SmallestWithinAccuracy,
    objective_from_dict,
    parse_objective,
    register_objective,
)
from wootz_keras.search.figures import replay, summary  # noqa: F401
from wootz_keras.search.report import write_report  # noqa: F401
from wootz_keras.search.exploration import (  # noqa: F401
    ExploreResult,
    explore_candidates,
    summarize,
    wait_for_others,
)
