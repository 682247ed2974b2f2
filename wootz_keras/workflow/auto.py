"""The "auto" mode: pay for block pre-training only when the run shows it pays.

Composability saves fine-tuning only where default-pruned candidates fail
the target (a tight target on a strong teacher). Where the smallest
default-pruned candidate meets the target after a short fine-tune, block
pre-training is pure cost. Auto measures which regime it is in:

1. It explores with default pruning, smallest candidate first (the
   objective's order), one position at a time.
2. A default candidate that meets the target wins: no blocks are trained
   (the easy regime costs exactly what default pruning costs).
3. It switches to composability -- pre-trains the tuning blocks, then
   explores composed candidates from the first position -- as soon as
   (a) a default candidate ended more than `margin` below the target (the
   hard regime: default pruning would have to walk on to larger
   candidates), or (b) the default candidates tried so far cost as much as
   the predicted pre-training (a ski-rental bound: auto never spends more
   than twice what the better of the two would have).
The decision and its reason are part of the result (and of the report).
"""

import dataclasses
import math
import time

import numpy as np

from wootz_keras.planner.tuning_blocks import composable_plan, plan_tuning_blocks
from wootz_keras.search.exploration import explore_candidates
from wootz_keras.training import standard_error
from wootz_keras.utils.progress import is_terminal  # noqa: F401  (re-exported for tools)


@dataclasses.dataclass
class AutoResult:
    """What auto did: the decision, the default and composed explorations
    it ran, and the winner over both.

    seconds = default candidates tried + pre-training + composed candidates.
    """
    mode: str
    winner: object
    rows: list
    tried: int
    seconds: float
    pretrain_seconds: float
    decision: dict
    default: object
    composed: object
    complete: bool
    message: str
    num_candidates: int
    full_accuracy: float
    target: float
    objective: dict

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["default"] = self.default.to_dict() if self.default is not None else None
        out["composed"] = self.composed.to_dict() if self.composed is not None else None
        return out


def decision_margin(target, val_size):
    """How far below the target a failed default candidate must end for auto
    to call the regime hard: two standard errors of the validation split at
    the target (about one point for 4,000 images at 0.9), at least 0.5 points.

    Example:
        >>> round(decision_margin(0.9, 4000), 4)
        0.0095
    """
    return max(0.005, 2.0 * standard_error(target, val_size))


def predict_pretrain_seconds(assembler, plan, steps, default_rows):
    """Predicted block pre-training time, from the default candidates' measured
    seconds per training FLOP and the multiplexing model's FLOPs per step
    (one teacher forward pass + forward and backward of every student, taken
    as 3x its forward FLOPs, as for a candidate's training step)."""
    from wootz_keras.planner.config_space import block_flops, full_size
    per_flop = []
    for row in default_rows:
        t = row.get("extra", {}).get("time", {})
        train_steps = max(0, int(row.get("extra", {}).get("steps", 0)) - 1)
        if train_steps and t.get("train"):
            per_flop.append(t["train"] / (train_steps * 3.0 * row["flops"]))
    if not per_flop or not plan.blocks:
        return math.inf if plan.blocks else 0.0
    students = sum(block_flops(assembler.modules, b.start, b.rates) for b in plan.blocks)
    mux_flops = full_size(assembler.modules)[1] + 3.0 * students
    return float(steps * mux_flops * np.median(per_flop))


def explore_auto(assembler, candidates, train, val, objective, full_accuracy, journal, protocol,
                 settings, blocks=None, pretrain_steps=300, progress=True, loss=None, test=None,
                 seed=0, keep_dir=None, margin=None, learning_rate=1e-3, plan=None, worker=None):
    """Explore in "auto" mode (see the module docstring); returns an AutoResult.

    blocks: PretrainedBlocks, a zero-argument callable returning them (called
    only if auto decides to pre-train), or None (plan the candidates' tuning
    blocks, single-module ones included (`fill`), and pre-train them for
    `pretrain_steps` steps).
    """
    from wootz_keras.compose.pretrain import pretrain_blocks
    from wootz_keras.workflow.runner import CandidateTrainer

    target = objective.target(full_accuracy)
    ordered = objective.order(candidates)
    margin = decision_margin(target, len(val)) if margin is None else float(margin)
    if plan is None:
        plan, _ = composable_plan(plan_tuning_blocks([c.rates for c in candidates],
                                                     module_names=assembler.modules.names,
                                                     fill=True), assembler.modules)
    trainer_args = dict(loss=loss, test=test, seed=seed, keep_dir=keep_dir)
    default_trainer = CandidateTrainer(assembler, train, val, protocol, target, None,
                                       mode="default", **trainer_args)
    decision = {"pretrain": False, "reason": "", "default_positions": 0,
                "margin": margin, "target": target}
    default = None
    for k in range(1, len(ordered) + 1):
        default = explore_candidates(candidates, default_trainer, objective, full_accuracy,
                                     journal, "default", progress=progress, settings=settings,
                                     max_positions=k, worker=worker)
        decision["default_positions"] = k
        if default.winner is not None and default.winner.get("met"):
            decision["reason"] = (f"default candidate at position {k - 1} met the target: "
                                  "no block pre-training needed")
            break
        if target is None or not plan.blocks:
            continue
        rows = sorted(default.rows, key=lambda r: r["position"])
        last = rows[-1]
        spent = sum(r["seconds"] for r in rows)
        predicted = predict_pretrain_seconds(assembler, plan, pretrain_steps, rows)
        decision["predicted_pretrain_seconds"] = round(predicted, 2)
        decision["default_seconds"] = round(spent, 2)
        gap = target - last["final_accuracy"]
        if gap > margin:
            decision.update(pretrain=True, reason=(
                f"default candidate at position {k - 1} ended {gap * 100:.2f} points below the "
                f"target (> margin {margin * 100:.2f}): default pruning would walk on to larger "
                "candidates; pre-training tuning blocks"))
            break
        if spent >= predicted:
            decision.update(pretrain=True, reason=(
                f"{k} default candidates cost {spent:.0f} s, as much as the predicted "
                f"pre-training ({predicted:.0f} s); pre-training tuning blocks"))
            break
    else:
        if not decision["reason"]:
            decision["reason"] = ("no tuning blocks to pre-train" if not plan.blocks else
                                  "every default candidate was tried")
    composed, pretrain_seconds = None, 0.0
    if decision["pretrain"]:
        started = time.perf_counter()
        if blocks is None:
            trained = pretrain_blocks(assembler.teacher, plan, train, steps=pretrain_steps,
                                      modules=assembler.modules, batch_size=protocol.batch_size,
                                      learning_rate=learning_rate, seed=seed,
                                      verbose=progress)
        else:
            trained = blocks() if callable(blocks) else blocks
        pretrain_seconds = float(trained.seconds or (time.perf_counter() - started))
        decision["pretrain_seconds"] = round(pretrain_seconds, 2)
        composed_trainer = CandidateTrainer(assembler, train, val, protocol, target, trained,
                                            mode="composed", **trainer_args)
        composed = explore_candidates(candidates, composed_trainer, objective, full_accuracy,
                                      journal, "composed", progress=progress, settings=settings,
                                      worker=worker)
    return _combine(default, composed, pretrain_seconds, decision, objective, full_accuracy,
                    len(ordered))


def _combine(default, composed, pretrain_seconds, decision, objective, full_accuracy, n):
    rows = [dict(r, mode="default") for r in default.rows] if default else []
    winner, complete, message = default.winner, default.complete, default.message
    if composed is not None:
        rows += [dict(r, mode="composed") for r in composed.rows]
        winner, complete, message = composed.winner, composed.complete, composed.message
    seconds = sum(r["seconds"] for r in rows) + pretrain_seconds
    message = f"auto ({'composed' if composed is not None else 'default'}): " + \
        message.split(": ", 1)[-1] + f"; decision: {decision['reason']}"
    return AutoResult(mode="auto", winner=winner, rows=rows, tried=len(rows), seconds=seconds,
                      pretrain_seconds=pretrain_seconds, decision=decision, default=default,
                      composed=composed, complete=complete, message=message, num_candidates=n,
                      full_accuracy=float(full_accuracy), target=objective.target(full_accuracy),
                      objective=objective.to_dict())
