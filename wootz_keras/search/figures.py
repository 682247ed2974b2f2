"""The figures of a run, computed in one place and labelled with what they cover.

`summary` turns the explorations of one candidate set (default pruning,
composability, auto) into the numbers the console, report.md, results.json,
the benchmark and the README print: candidates tried, time (pre-training
included where it was paid), the winners, the speedups, the fixed cost per
candidate, the medians right after assembly and after fine-tuning.

`replay` answers "what would the same exploration have done for another
target" from the rows' validation curves: fine-tuning does not depend on
the target (only where it stops), so a looser target stops each candidate
at its first evaluation that reaches it. A row that stopped because it met
the run's own target says nothing about a tighter one beyond its curve:
such answers are None ("not answerable from this run"). Where an
evaluation was screened (`Protocol.screen`) and not completed, the screened
value stands in for the whole split's, and the answer says it is
`estimated`.

Example:
    >>> rows = [dict(index=0, position=0, params=10, flops=5, seconds=4.0, final_accuracy=0.8,
    ...              extra={"stop": "plateau", "curve": [{"step": 0, "full": 0.5, "t": 1.0},
    ...                                                  {"step": 50, "full": 0.8, "t": 4.0}]})]
    >>> replay(rows, target=0.7)[0]["seconds"], replay(rows, target=0.7)[0]["met"]
    (4.0, True)
"""

import math
import statistics

from wootz_keras.search.objectives import objective_from_dict


def _as_dict(result):
    if result is None or isinstance(result, dict):
        return result
    return result.to_dict()


def _median(values):
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _round(v, digits=4):
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, digits)
    if isinstance(v, dict):
        return {k: _round(x, digits) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x, digits) for x in v]
    return v


def _time(rows, part):
    return sum(float(r.get("extra", {}).get("time", {}).get(part, 0.0) or 0.0) for r in rows)


def mode_figures(result, teacher_params, pretrain_seconds=0.0):
    """The figures of one exploration (an ExploreResult, AutoResult or their dict)."""
    r = _as_dict(result)
    rows = r["rows"]
    w = r.get("winner")
    seconds = float(sum(row["seconds"] for row in rows))
    pre = float(r.get("pretrain_seconds", pretrain_seconds) or 0.0)
    out = {
        "tried": len(rows),
        "num_candidates": r.get("num_candidates"),
        "fine_tune_seconds": seconds,
        "pretrain_seconds": pre,
        "total_seconds": seconds + pre,
        "complete": r.get("complete"),
        "winner_index": None if w is None else w["index"],
        "winner_met": bool(w and w.get("met")),
        "winner_params": None if w is None else w["params"],
        "winner_flops": None if w is None else w["flops"],
        "winner_params_ratio": (None if w is None or not teacher_params
                                else w["params"] / teacher_params),
        "winner_val_accuracy": None if w is None else w["final_accuracy"],
        "winner_test_accuracy": None if w is None else w.get("extra", {}).get("test_accuracy"),
        "time_split": {part: _time(rows, part)
                       for part in ("assemble", "trace", "train", "evaluate", "test")},
        "stops": {s: sum(row.get("extra", {}).get("stop") == s for row in rows)
                  for s in ("met", "plateau", "budget")},
        "message": r.get("message", ""),
    }
    if "decision" in r:
        out["decision"] = r["decision"]
    return out


def overhead_fraction(default_rows):
    """Mean per-candidate fixed cost (everything but training steps: assembly,
    graph tracing, evaluation) over the mean default candidate's time."""
    if not default_rows:
        return None
    total = sum(r["seconds"] for r in default_rows)
    train = _time(default_rows, "train")
    return (total - train) / total if total else None


def summary(full_accuracy, teacher_params, results, pretrain_seconds=0.0, init=None,
            medians=None, teacher_curve=None, alphas=(0.005, 0.01, 0.02, 0.03, 0.05, 0.08)):
    """Every figure of a run, from its explorations (see the module docstring).

    results: {mode: result} for "default", "composed" and/or "auto";
    pretrain_seconds: what block pre-training cost (charged to composed);
    init: {"default": [...], "composed": [...], "over": "..."} accuracies
    right after assembly; medians: the same for the final accuracies.

    Example:
        >>> summary(0.9, 100, {})["speedup"] is None
        True
    """
    results = {m: _as_dict(r) for m, r in results.items() if r is not None}
    modes = {m: mode_figures(r, teacher_params, pretrain_seconds if m == "composed" else 0.0)
             for m, r in results.items()}
    out = {"full_accuracy": float(full_accuracy), "teacher_params": teacher_params,
           "modes": modes, "speedup": None, "speedup_auto": None, "overhead_fraction": None}
    first = next(iter(results.values()), None)
    if first is not None:
        out["objective"] = objective_from_dict(first["objective"]).describe()
        out["target"] = first.get("target")
    d = modes.get("default")
    if d is not None:
        if modes.get("composed") and modes["composed"]["total_seconds"] > 0:
            out["speedup"] = d["total_seconds"] / modes["composed"]["total_seconds"]
        if modes.get("auto") and modes["auto"]["total_seconds"] > 0:
            out["speedup_auto"] = d["total_seconds"] / modes["auto"]["total_seconds"]
        out["overhead_fraction"] = overhead_fraction(results["default"]["rows"])
    if init:
        out["init"] = {"over": init.get("over"), "default_median": _median(init["default"]),
                       "composed_median": _median(init["composed"])}
    if medians:
        out["final"] = {"over": medians.get("over"),
                        "default_median": _median(medians["default"]),
                        "composed_median": _median(medians["composed"])}
    if teacher_curve:
        out["teacher_curve"] = teacher_curve
    if "default" in results and "composed" in results:
        out["alpha_sweep"] = alpha_sweep(results, full_accuracy, pretrain_seconds, alphas)
    return _round(out)


def replay(rows, target):
    """Each row (position order) replayed for `target`: {index, position,
    met, final, seconds}, or None where this run cannot tell (see above)."""
    out = []
    for row in sorted(rows, key=lambda r: r.get("position", 0)):
        extra = row.get("extra", {})
        curve = extra.get("curve")
        if not curve:
            out.append(None)
            continue
        offset = float(extra.get("time", {}).get("assemble", 0.0))

        def value(p):
            return p["full"] if p.get("full") is not None else p.get("screen")
        hit = next((p for p in curve if value(p) is not None and value(p) >= target - 1e-9),
                   None)
        if hit is not None:
            out.append({"index": row["index"], "position": row["position"], "met": True,
                        "final": value(hit), "seconds": offset + float(hit["t"]),
                        "estimated": hit.get("full") is None})
        elif extra.get("stop") == "met":
            out.append(None)            # stopped at the run's target: says nothing beyond it
        else:
            out.append({"index": row["index"], "position": row["position"], "met": False,
                        "final": row["final_accuracy"], "seconds": float(row["seconds"]),
                        "estimated": False})
    return out


def replay_exploration(rows, num_candidates, target):
    """(tried, seconds, winner row replayed) of a smallest-first exploration
    for `target`, or None when the rows cannot answer it."""
    rows = sorted(rows, key=lambda r: r.get("position", 0))
    tried, seconds, estimated = 0, 0.0, False
    for k, (row, r) in enumerate(zip(rows, replay(rows, target))):
        if row.get("position") != k or r is None:
            return None
        tried += 1
        seconds += r["seconds"]
        estimated = estimated or r["estimated"]
        if r["met"]:
            return tried, seconds, dict(r, params=row["params"], estimated=estimated)
    if len(rows) < num_candidates:
        return None
    return tried, seconds, {"params": None, "estimated": estimated}


def alpha_sweep(results, full_accuracy, pretrain_seconds, alphas):
    """Candidates tried, time, winner size and speedup per alpha, replayed
    from the default and composed rows (None where not answerable)."""
    lines = []
    for alpha in alphas:
        target = float(full_accuracy) * (1 - alpha)
        line = {"alpha": alpha, "target": target}
        for mode in ("default", "composed"):
            r = results[mode]
            got = replay_exploration(r["rows"], r.get("num_candidates") or 0, target)
            line[mode] = None if got is None else {
                "tried": got[0], "seconds": got[1] + (pretrain_seconds if mode == "composed"
                                                      else 0.0),
                "winner_params": got[2]["params"], "estimated": got[2]["estimated"]}
        if line["default"] and line["composed"] and line["composed"]["seconds"] > 0:
            line["speedup"] = line["default"]["seconds"] / line["composed"]["seconds"]
        else:
            line["speedup"] = None
        lines.append(line)
    return lines
