"""Explore candidates under an objective, resumably, with any number of workers.

This layer knows nothing about how a candidate network is built or trained:
it takes `Candidate`s and a callable `evaluate(candidate)` that fine-tunes
and measures one, returning ``{"init_accuracy": ..., "final_accuracy": ...}``
(any other JSON-able keys are kept in the journal row's `extra`). The search
times each call, records it in a `Journal` once it is complete, and stops
early as the objective allows (docs/method.md step 6).

Workers. Work is claimed, not pre-assigned: each worker (a process calling
`explore_candidates` on the same journal -- an SQLite file on one machine,
or a PostgreSQL URL from any machine) repeatedly claims the first
unfinished position in objective order, evaluates it while a heartbeat
renews its lease, and records it. Workers may start or stop at any time; a
position whose worker died is taken over once its lease expires. Claims
stop at the first position whose candidate meets the target, and the
winner is the met candidate with the smallest position, so any number of
workers choose the winner one worker chooses. A worker returns once no
unfinished position remains before the winner (waiting for positions that
live workers hold, taking over expired ones), so every worker returns the
final answer. A worker whose claim was taken over (its lease expired while
it was stalled) discards its result and says so; the position keeps the
result of the worker that took it over.

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

from wootz_keras.search.journal import DEFAULT_LEASE, Journal, candidates_hash, now
from wootz_keras.search.leases import Heartbeat, worker_id
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
        position when there is no met candidate, is finished) -- for the
        first `max_positions` positions when that was given.
    pending: ordered positions that still block a final answer.
    evaluated / reused / wall_seconds: what this call itself did;
    discarded: indices this worker evaluated but did not record because its
    claim had been taken over; worker: this worker's id.
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
    max_positions: object = None
    discarded: list = dataclasses.field(default_factory=list)
    worker: object = None

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


def _summarize(ordered, finished, objective, full_accuracy, mode, max_positions=None):
    num_candidates = len(ordered)
    if max_positions is not None:
        ordered = ordered[:max_positions]
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
    of = f"{tried} of {len(ordered)} tried"
    if max_positions is not None and len(ordered) < num_candidates:
        of += f" (the first {len(ordered)} of {num_candidates} positions)"

    if not ordered:
        message = f"{mode}: no candidate to try for {objective.describe()}"
    elif met:
        message = (f"{mode}: {_fmt_candidate(winner)} meets {target_text} with final accuracy "
                   f"{winner['final_accuracy']:.4f}; {of}")
    elif winner is not None:
        message = (f"{mode}: no candidate met {target_text}; the most accurate is "
                   f"{_fmt_candidate(winner)} at {winner['final_accuracy']:.4f}; {of}")
    elif best is not None:
        message = (f"{mode}: no candidate met {target_text}; best was {_fmt_candidate(best)} "
                   f"at {best['final_accuracy']:.4f}; {of}")
    else:
        message = f"{mode}: no candidate met {target_text}; none tried yet"
    if not complete and ordered:
        message += (f" (not final: {len(pending)} earlier position(s) unfinished, "
                    f"e.g. {pending[:5]})")
    return ExploreResult(mode=mode, objective=objective.to_dict(),
                         full_accuracy=float(full_accuracy),
                         target=objective.target(full_accuracy), winner=winner,
                         complete=complete, message=message, tried=tried, seconds=seconds,
                         rows=rows, num_candidates=num_candidates, pending=pending,
                         max_positions=max_positions)


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
    """Use a Journal as given, or open (and later close) one from a path or URL."""

    def __init__(self, journal):
        self.own = not isinstance(journal, Journal)
        self.journal = Journal(journal) if self.own else journal

    def __enter__(self):
        return self.journal

    def __exit__(self, *exc):
        if self.own:
            self.journal.close()


def _prepare(candidates, objective, full_accuracy, max_positions=None):
    objective = _as_objective(objective)
    full_accuracy = _check_full_accuracy(full_accuracy)
    candidates = list(candidates)
    for c in candidates:
        if not isinstance(c, Candidate):
            raise ValueError(f"candidates must be Candidate objects, got {c!r}")
    if max_positions is not None and (isinstance(max_positions, bool) or not isinstance(
            max_positions, numbers.Integral) or max_positions < 0):
        raise ValueError(f"max_positions must be a non-negative int or None, got "
                         f"{max_positions!r}")
    return candidates, objective, full_accuracy, objective.order(candidates)


def _check_positive(name, value, kind=numbers.Real):
    if (isinstance(value, bool) or not isinstance(value, kind)
            or not math.isfinite(value) or value <= 0):
        what = "int" if kind is numbers.Integral else "number"
        raise ValueError(f"{name} must be a positive {what}, got {value!r}")
    return value


class _Log:
    def __init__(self, progress, worker):
        self.on = progress
        self.worker = worker

    def __call__(self, text):
        if self.on:
            print(f"[{self.worker}] {text}", flush=True)


def _evaluate_claims(evaluate, claims, ordered, batch_size):
    """Run evaluate on the claimed candidates: [(init, final, extra, seconds, started)]."""
    cands = [ordered[c.position] for c in claims]
    started = now()
    t0 = time.perf_counter()
    if batch_size == 1:
        outs = [evaluate(cands[0])]
    else:
        outs = evaluate(list(cands))
        if not isinstance(outs, (list, tuple)) or len(outs) != len(cands):
            raise ValueError(f"evaluate(<{len(cands)} candidates>) must return a list of "
                             f"{len(cands)} result dicts (batch_size={batch_size}), got {outs!r}")
    seconds = (time.perf_counter() - t0) / len(cands)
    return [(*_outcome(out, c), seconds, started) for out, c in zip(outs, cands)]


def explore_candidates(candidates, evaluate, objective, full_accuracy, journal, mode, *,
                       worker=None, progress=True, settings=None, max_positions=None,
                       batch_size=1, lease=DEFAULT_LEASE, wait=True, poll_interval=1.0,
                       worker_index=None, num_workers=None):
    """Evaluate candidates in objective order until the objective is met.

    Args:
        candidates: `Candidate`s (unique indices).
        evaluate: `evaluate(candidate) -> {"init_accuracy", "final_accuracy", ...}`;
            trains/measures one candidate. Exceptions propagate (the claims
            are released first); nothing is recorded for a candidate whose
            evaluate() did not return. With `batch_size > 1` it receives a
            list of up to `batch_size` candidates (claimed together, in
            objective order) and returns a list of result dicts, one each;
            each row's `seconds` is the batch's time / its size.
        objective: an `Objective`, its dict, or a string for `parse_objective`.
        full_accuracy: the unpruned model's accuracy (the target's base).
        journal: a `Journal`, a path (SQLite) or a `postgresql://` URL
            (opened and closed here). Workers share work through it.
        mode: "default" or "composed".
        worker: a label for this worker (e.g. its TF_CONFIG index); its id,
            stored with its claims and rows, is '[label@]host:pid:random'.
        progress: print progress (line by line in logs) and the result message.
        settings: JSON-able fine-tuning settings; stored in the mode's journal
            header with the objective, candidate hash and full accuracy.
            Resuming with any of these changed raises `JournalMismatchError`.
        max_positions: only the first `max_positions` positions in objective
            order are claimed and considered; `complete` then says whether
            the answer is final for them (not part of the header: a later
            call without it continues the same exploration).
        lease: seconds a claim stays valid without renewal (renewed every
            lease/3 while evaluate runs); a worker silent for longer may have
            its position taken over.
        wait: when every claimable position is taken, wait for the positions
            other live workers hold (taking over those whose lease expires)
            so that the answer is final; False returns at once (maybe with
            `complete=False`). poll_interval: seconds between those checks.
        worker_index, num_workers: deprecated (the static split is gone);
            `worker_index` labels the worker when `worker` is not given.

    Returns:
        `ExploreResult`.

    Example:
        >>> import tempfile, os
        >>> from wootz_keras.search.objectives import Candidate
        >>> cands = [Candidate(i, (0.1 * i,), 100 - i, 0) for i in range(5)]
        >>> path = os.path.join(tempfile.mkdtemp(), "j.sqlite")
        >>> r = explore_candidates(cands, lambda c: {"final_accuracy": 0.5}, "smallest_params",
        ...                        0.9, path, "default", progress=False, max_positions=3)
        >>> r.winner is None, r.tried, r.complete
        (True, 3, True)
    """
    candidates, objective, full_accuracy, ordered = _prepare(
        candidates, objective, full_accuracy, max_positions)
    if not callable(evaluate):
        raise ValueError(f"evaluate must be callable, got {evaluate!r}")
    batch_size = int(_check_positive("batch_size", batch_size, numbers.Integral))
    lease = float(_check_positive("lease", lease))
    poll_interval = float(_check_positive("poll_interval", poll_interval))
    me = worker_id(worker if worker is not None else worker_index)
    log = _Log(progress, me)
    considered = len(ordered) if max_positions is None else min(max_positions, len(ordered))
    t_start = time.perf_counter()
    evaluated = 0
    discarded = []
    best = None

    with _Journal(journal) as j:
        j.begin(mode, _header(objective, candidates, full_accuracy, settings),
                order=[c.index for c in ordered])
        finished = j.finished(mode)
        position = {c.index: p for p, c in enumerate(ordered)}
        j.mark_met(mode, [i for i, row in finished.items()
                          if i in position and objective.is_met(row, full_accuracy)])
        reused = sum(1 for i in finished if position.get(i, considered) < considered)
        bar = None
        if progress and considered:
            bar = Progress(considered, f"explore {mode}", unit="candidate", every=1)
            if reused:
                bar.update(j.done_count(mode, max_positions), reused=reused)
        waiting_on = None
        with Heartbeat(j, lease) as heartbeat:
            while True:
                claims = j.claim(mode, me, n=batch_size, lease=lease,
                                 max_positions=max_positions)
                if not claims:
                    left = j.unfinished(mode, max_positions)
                    if not left or not wait:
                        break
                    held = [u for u in left if u["worker"] is not None]
                    shown = tuple((u["position"], u["worker"]) for u in held)
                    if held and shown != waiting_on:
                        u = held[0]
                        log(f"waiting for {len(held)} position(s) held by other workers, e.g. "
                            f"#{u['index']} (position {u['position']}) by {u['worker']}, "
                            f"lease {u['lease_left']:.0f} s left")
                    waiting_on = shown
                    soonest = min((u["lease_left"] for u in held), default=0.0)
                    time.sleep(min(poll_interval, max(0.05, soonest + 0.01)))
                    continue
                for c in claims:
                    if c.previous is not None:
                        log(f"took over #{c.index} (position {c.position}) from {c.previous} "
                            f"(its lease expired)")
                heartbeat.hold(claims)
                try:
                    outcomes = _evaluate_claims(evaluate, claims, ordered, batch_size)
                except BaseException:
                    heartbeat.drop()
                    try:
                        j.release(claims)
                    except ValueError:
                        pass  # the lease expires by itself
                    raise
                heartbeat.drop()
                for c, (init, final, extra, seconds, started) in zip(claims, outcomes):
                    cand = ordered[c.position]
                    met = objective.is_met(final, full_accuracy)
                    if cand.latency_ms is not None:
                        extra = {**(extra or {}), "predicted_latency_ms": cand.latency_ms,
                                 "latency_runtime": (objective.latency or {}).get("runtime")}
                    if j.record(mode, cand, claim=c, init_accuracy=init, final_accuracy=final,
                                seconds=seconds, started=started, finished=now(), extra=extra,
                                met=met):
                        evaluated += 1
                        best = final if best is None else max(best, final)
                    else:
                        discarded.append(cand.index)
                        holder = next((r["worker"] for r in j.claims(mode)
                                       if r["position"] == c.position), None)
                        log(f"lost the claim on #{cand.index} (position {c.position}): its "
                            f"lease expired and {holder} took it over; result discarded "
                            f"(final {final:.4f})")
                if bar is not None:
                    values = {"init": outcomes[-1][0]} if outcomes[-1][0] is not None else {}
                    if best is not None:
                        values.update(final=outcomes[-1][1], best=best)
                    bar.update(j.done_count(mode, max_positions), **values)
        if bar is not None:
            bar.close()
        result = _summarize(ordered, j.finished(mode), objective, full_accuracy, mode,
                            max_positions)
    result.evaluated = evaluated
    result.reused = reused
    result.discarded = discarded
    result.worker = me
    result.wall_seconds = time.perf_counter() - t_start
    if progress:
        print(result.message)
    return result


def summarize(candidates, objective, full_accuracy, journal, mode, max_positions=None):
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
                                                             full_accuracy, max_positions)
    with _Journal(journal) as j:
        j.check(mode, _header(objective, candidates, full_accuracy))
        return _summarize(ordered, j.finished(mode), objective, full_accuracy, mode,
                          max_positions)


def wait_for_others(candidates, objective, full_accuracy, journal, mode, timeout=None,
                    poll_interval=1.0, max_positions=None):
    """Poll the journal until the mode's answer is final (`complete`) or `timeout` s.

    For a process that watches an exploration without exploring (explorers
    themselves wait by default: `explore_candidates(wait=True)`). It
    evaluates and claims nothing, so it ends only when explorers finish the
    positions. Returns the last `ExploreResult` (check `.complete`).

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
            result = summarize(candidates, objective, full_accuracy, j, mode, max_positions)
            if result.complete:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                return result
            wait = float(poll_interval)
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            time.sleep(wait)


__all__ = ["ExploreResult", "explore_candidates", "summarize", "wait_for_others"]
