"""Explore candidates under an objective, resumably and across workers.

This layer knows nothing about how a candidate network is built or trained:
it takes `Candidate`s and a callable `evaluate(candidate)` that fine-tunes
and measures one, returning ``{"init_accuracy": ..., "final_accuracy": ...}``
(any other JSON-able keys are kept in the journal row's `extra`). The search
times each call, records it in a `Journal` once it is complete, and stops
early as the objective allows (WOOTZ.md step 6).

Workers. With `num_workers=p`, worker `i` takes the ordered positions
i, i+p, i+2p, ... Before each candidate it re-reads the shared journal,
skips candidates already finished (this is also how a crashed run resumes),
and stops once the journal holds a candidate that meets the target at an
earlier position than its next one. The winner is the met candidate with
the smallest position among the finished ones, so p workers choose the same
winner as one worker -- once every position before it is finished. A worker
that stops while another still owns an earlier position returns a result
with `complete=False`; call `wait_for_others(...)` (or `summarize(...)`
after all workers have exited) to get the final answer.

Example:
    >>> import tempfile, os
    >>> from wootz_keras.search.objectives import Candidate, SmallestWithinAccuracy
    >>> cands = [Candidate(i, (r,), params=int(1000 * (1 - r)), flops=0)
    ...          for i, r in enumerate((0.3, 0.5, 0.7))]
    >>> evaluate = lambda c: {"init_accuracy": 0.1, "final_accuracy": 0.9 - c.rates[0] / 4}
    >>> journal = os.path.join(tempfile.mkdtemp(), "journal.sqlite")
    >>> r = explore_candidates(cands, evaluate, SmallestWithinAccuracy(alpha=0.15),
    ...                        full_accuracy=0.9, journal=journal, mode="default",
    ...                        progress=False)
    >>> r.winner["index"], r.tried, r.complete
    (1, 2, True)
"""

import dataclasses
import math
import numbers
import time

from wootz_keras.search.journal import Journal, candidates_hash, now
from wootz_keras.search.objectives import Candidate, Objective, objective_from_dict, \
    parse_objective
from wootz_keras.utils.progress import Progress


@dataclasses.dataclass
class ExploreResult:
    """The outcome of exploring one mode.

    winner: the winning row (a dict as in `Journal.rows`, plus `position` and
        `met`), or None. rows: every finished row of the mode, by position.
    tried: candidates fine-tuned for this mode so far (journal rows, all
        workers and all runs: evaluated now + reused from the journal).
    seconds: the sum of their evaluate() times. complete: True when the
        answer is final (every position before the winner, or every
        position when there is no met candidate, is finished).
    pending: ordered positions that still block a final answer.
    evaluated / reused / wall_seconds: what this call itself did.
    """

    mode: str
    objective: dict
    full_accuracy: float
    target: object
    winner: object
    complete: bool
    message: str
    tried: int
    seconds: float
    rows: list
    num_candidates: int = 0
    pending: list = dataclasses.field(default_factory=list)
    evaluated: int = 0
    reused: int = 0
    wall_seconds: float = 0.0

    def to_dict(self):
        """A JSON-ready dict; `ExploreResult.from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _as_objective(objective):
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        return parse_objective(objective)
    return objective_from_dict(objective)


def _header(objective, candidates, full_accuracy, settings=None):
    h = {"objective": objective.to_dict(), "candidates": candidates_hash(candidates),
         "num_candidates": len(candidates), "full_accuracy": float(full_accuracy)}
    if settings is not None:
        h["settings"] = dict(settings)
    return h


def _check_full_accuracy(full_accuracy):
    if (isinstance(full_accuracy, bool) or not isinstance(full_accuracy, numbers.Real)
            or not math.isfinite(full_accuracy)):
        raise ValueError(f"full_accuracy must be a finite number, got {full_accuracy!r}")
    return float(full_accuracy)


def _fmt_candidate(row):
    return f"#{row['index']} ({row['params']:,} params, {row['flops']:,} flops)"


def _summarize(ordered, finished, objective, full_accuracy, mode):
    position = {c.index: i for i, c in enumerate(ordered)}
    rows = []
    for idx, row in finished.items():
        if idx not in position:
            continue
        row = dict(row, position=position[idx])
        row["met"] = bool(objective.is_met(row, full_accuracy))
        rows.append(row)
    rows.sort(key=lambda r: r["position"])
    done = {r["position"] for r in rows}
    met = [r for r in rows if r["met"]]
    target_text = objective.describe_target(full_accuracy)
    tried = len(rows)
    seconds = float(sum(r["seconds"] for r in rows))
    if met:
        winner = met[0]
        pending = [p for p in range(winner["position"]) if p not in done]
    else:
        pending = [p for p in range(len(ordered)) if p not in done]
        winner = objective.fallback(rows)
    complete = not pending
    best = max(rows, key=lambda r: (r["final_accuracy"], -r["position"])) if rows else None

    if not ordered:
        message = f"{mode}: no candidate to try for {objective.describe()}"
    elif met:
        message = (f"{mode}: {_fmt_candidate(winner)} meets {target_text} with final accuracy "
                   f"{winner['final_accuracy']:.4f}; {tried} of {len(ordered)} tried")
    elif winner is not None:
        message = (f"{mode}: no candidate met {target_text}; the most accurate is "
                   f"{_fmt_candidate(winner)} at {winner['final_accuracy']:.4f}; "
                   f"{tried} of {len(ordered)} tried")
    elif best is not None:
        message = (f"{mode}: no candidate met {target_text}; best was {_fmt_candidate(best)} "
                   f"at {best['final_accuracy']:.4f}; {tried} of {len(ordered)} tried")
    else:
        message = f"{mode}: no candidate met {target_text}; none tried yet"
    if not complete and ordered:
        message += (f" (not final: {len(pending)} earlier position(s) unfinished, "
                    f"e.g. {pending[:5]}; see wait_for_others)")
    return ExploreResult(mode=mode, objective=objective.to_dict(),
                         full_accuracy=float(full_accuracy),
                         target=objective.target(full_accuracy), winner=winner,
                         complete=complete, message=message, tried=tried, seconds=seconds,
                         rows=rows, num_candidates=len(ordered), pending=pending)


def _first_met_position(ordered_index, finished, objective, full_accuracy):
    best = None
    for idx, row in finished.items():
        pos = ordered_index.get(idx)
        if pos is not None and (best is None or pos < best) and objective.is_met(row, full_accuracy):
            best = pos
    return best


def _outcome(out, candidate):
    if not (isinstance(out, dict) or hasattr(out, "keys")):
        raise ValueError(f"evaluate(candidate #{candidate.index}) returned {out!r}; expected a "
                         "dict with final_accuracy (and init_accuracy)")
    out = dict(out)
    if out.get("final_accuracy") is None:
        raise ValueError(f"evaluate(candidate #{candidate.index}) returned no final_accuracy: "
                         f"{out!r}")
    final = float(out.pop("final_accuracy"))
    init = out.pop("init_accuracy", None)
    init = None if init is None else float(init)
    for name, v in (("final_accuracy", final), ("init_accuracy", init)):
        if v is not None and not math.isfinite(v):
            raise ValueError(f"evaluate(candidate #{candidate.index}) returned {name}={v}")
    return init, final, out


class _Journal:
    """Use a Journal as given, or open (and later close) one from a path."""

    def __init__(self, journal):
        self.own = not isinstance(journal, Journal)
        self.journal = Journal(journal) if self.own else journal

    def __enter__(self):
        return self.journal

    def __exit__(self, *exc):
        if self.own:
            self.journal.close()


def _prepare(candidates, objective, full_accuracy, worker_index=0, num_workers=1):
    objective = _as_objective(objective)
    full_accuracy = _check_full_accuracy(full_accuracy)
    candidates = list(candidates)
    for c in candidates:
        if not isinstance(c, Candidate):
            raise ValueError(f"candidates must be Candidate objects, got {c!r}")
    if (isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral)
            or num_workers < 1):
        raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
    if (isinstance(worker_index, bool) or not isinstance(worker_index, numbers.Integral)
            or not 0 <= worker_index < num_workers):
        raise ValueError(f"worker_index must be in [0, {num_workers}), got {worker_index!r}")
    return candidates, objective, full_accuracy, objective.order(candidates)


def explore_candidates(candidates, evaluate, objective, full_accuracy, journal, mode,
                       worker_index=0, num_workers=1, progress=True, settings=None,
                       max_positions=None):
    """Evaluate candidates in objective order until the objective is met.

    Args:
        candidates: `Candidate`s (unique indices).
        evaluate: `evaluate(candidate) -> {"init_accuracy", "final_accuracy", ...}`;
            trains/measures one candidate. Exceptions propagate; nothing is
            recorded for a candidate whose evaluate() did not return.
        objective: an `Objective`, its dict, or a string for `parse_objective`.
        full_accuracy: the unpruned model's accuracy (the target's base).
        journal: a `Journal` or a path (opened and closed here).
        mode: "default" or "composed".
        worker_index, num_workers: this worker's shard of the ordered positions.
        progress: print progress (line by line in logs) and the result message.
        settings: JSON-able fine-tuning settings; stored in the mode's journal
            header with the objective, candidate hash and full accuracy.
            Resuming with any of these changed raises `JournalMismatchError`.
        max_positions: only the first `max_positions` ordered positions are
            explored (and the answer is final for them alone).

    Returns:
        `ExploreResult`. `complete=False` means other workers still own
        earlier positions: see `wait_for_others`.

    Example:
        >>> import tempfile, os
        >>> from wootz_keras.search.objectives import Candidate
        >>> cands = [Candidate(i, (0.1 * i,), 100 - i, 0) for i in range(5)]
        >>> path = os.path.join(tempfile.mkdtemp(), "j.sqlite")
        >>> r = explore_candidates(cands, lambda c: {"final_accuracy": 0.5}, "smallest_params",
        ...                        0.9, path, "default", progress=False)
        >>> r.winner is None, r.tried
        (True, 5)
    """
    candidates, objective, full_accuracy, ordered = _prepare(
        candidates, objective, full_accuracy, worker_index, num_workers)
    if not callable(evaluate):
        raise ValueError(f"evaluate must be callable, got {evaluate!r}")
    ordered_index = {c.index: i for i, c in enumerate(ordered)}
    limit = len(ordered) if max_positions is None else min(int(max_positions), len(ordered))
    mine = list(range(worker_index, limit, num_workers))
    t_start = time.perf_counter()
    evaluated = reused = 0

    bar = None
    if progress and mine:
        bar = Progress(len(mine), f"explore {mode}", unit="candidate", every=1)
    best = None
    shown = 0
    with _Journal(journal) as j:
        j.begin(mode, _header(objective, candidates, full_accuracy, settings))
        for k, pos in enumerate(mine):
            finished = j.finished(mode)
            met_pos = _first_met_position(ordered_index, finished, objective, full_accuracy)
            if met_pos is not None and met_pos < pos:
                break
            cand = ordered[pos]
            if cand.index in finished:
                reused += 1
                shown = k + 1
                if bar is not None:
                    bar.update(shown, reused=reused)
                continue
            started = now()
            t0 = time.perf_counter()
            init, final, extra = _outcome(evaluate(cand), cand)
            seconds = time.perf_counter() - t0
            j.record(mode, cand, init_accuracy=init, final_accuracy=final, seconds=seconds,
                     position=pos, worker=worker_index, started=started, finished=now(),
                     extra=extra)
            evaluated += 1
            best = final if best is None else max(best, final)
            shown = k + 1
            if bar is not None:
                values = {"init": init} if init is not None else {}
                bar.update(shown, **values, final=final, best=best)
        if bar is not None:
            bar.close()
        result = _summarize(ordered[:limit], j.finished(mode), objective, full_accuracy, mode)
    result.evaluated = evaluated
    result.reused = reused
    result.wall_seconds = time.perf_counter() - t_start
    if progress:
        print(result.message)
    return result


def summarize(candidates, objective, full_accuracy, journal, mode):
    """The current `ExploreResult` of a mode, read from the journal (evaluates nothing).

    Raises `JournalMismatchError` if the journal's header for `mode` has
    another objective, candidate list or full accuracy.

    Example:
        >>> import tempfile, os
        >>> from wootz_keras.search.objectives import Candidate
        >>> path = os.path.join(tempfile.mkdtemp(), "j.sqlite")
        >>> summarize([Candidate(0, (0.5,), 10, 10)], "smallest_params", 0.9, path,
        ...           "default").complete
        False
    """
    candidates, objective, full_accuracy, ordered = _prepare(candidates, objective,
                                                             full_accuracy)
    with _Journal(journal) as j:
        j.check(mode, _header(objective, candidates, full_accuracy))
        return _summarize(ordered, j.finished(mode), objective, full_accuracy, mode)


def wait_for_others(candidates, objective, full_accuracy, journal, mode, timeout=None,
                    poll_interval=1.0):
    """Poll the journal until the mode's answer is final (`complete`) or `timeout` s.

    For a worker that stopped early while others still run earlier
    positions. `timeout=None` waits indefinitely -- a worker that died
    leaves its positions unfinished: re-run that worker (it resumes) and
    the wait ends. Returns the last `ExploreResult` (check `.complete`).

    Example:
        >>> import tempfile, os
        >>> from wootz_keras.search.objectives import Candidate
        >>> path = os.path.join(tempfile.mkdtemp(), "j.sqlite")
        >>> r = wait_for_others([Candidate(0, (0.5,), 10, 10)], "smallest_params", 0.9,
        ...                     path, "default", timeout=0.1, poll_interval=0.05)
        >>> r.complete, r.pending
        (False, [0])
    """
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    with _Journal(journal) as j:
        while True:
            result = summarize(candidates, objective, full_accuracy, j, mode)
            if result.complete:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                return result
            wait = float(poll_interval)
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            time.sleep(wait)


__all__ = ["ExploreResult", "explore_candidates", "summarize", "wait_for_others"]
