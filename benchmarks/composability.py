"""Default pruning vs composability vs auto, side by side in one run.

Runs the pipeline of one preset (teacher, configurations, plan, block
pre-training, the explorations under the preset's objective and one
fine-tuning protocol, medians) with the composed mode explored on its own
as well, then prints, all from one computation (`search.figures.summary`):

- the speedups: default time / composed time (pre-training included) and
  default time / auto time;
- candidates tried and winners of each mode (validation and test accuracy);
- medians right after assembly (init vs init+) and after fine-tuning;
- the fixed cost per candidate (all but training steps) as a fraction of an
  average default candidate's time;
- the alpha sweep (0.5% .. 8%) and the speedup as the number of candidates
  grows, both replayed from this run's validation curves (a subset of n
  candidates is spread over size; its composed time charges the whole
  pre-training of the blocks planned for all candidates).

    python benchmarks/composability.py --scale=small --json=/tmp/composability.json

The settings (teacher, protocol, objective) are the preset's, fixed in
`wootz_keras/workflow/presets.py` before the comparison is run.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_enum("scale", "small", ["tiny", "small", "full"], "Preset sizes.")
flags.DEFINE_string("out_dir", None, "Run folder (default runs/bench_<scale>); resumes.")
flags.DEFINE_string("json", None, "Write the figures to this JSON file.")
flags.DEFINE_list("counts", ["8", "16", "32", "64"], "Candidate counts of the growth sweep.")
flags.DEFINE_string("objective", None, "Override the preset's objective (a second run for a "
                    "tighter target; copy teacher.keras, configs.json, plan.json, blocks/ of a "
                    "first run into --out_dir to reuse them).")
FLAGS = flags.FLAGS

KEYS = ("speedup", "speedup_auto", "auto_seconds", "overhead_fraction", "init_median",
        "init_plus_median", "final_median", "final_plus_median", "default_tried",
        "composed_tried", "default_seconds", "composed_seconds", "pretrain_seconds",
        "winner_params_ratio", "default_winner_params_ratio", "full_accuracy", "num_configs",
        "num_blocks")


def flat_figures(figures, num_blocks):
    """The benchmark's JSON keys (today's names, plus auto and overhead)."""
    m = figures["modes"]
    d, c, a = m.get("default", {}), m.get("composed", {}), m.get("auto", {})
    init, final = figures.get("init") or {}, figures.get("final") or {}
    return {
        "speedup": figures.get("speedup"), "speedup_auto": figures.get("speedup_auto"),
        "auto_seconds": a.get("total_seconds"),
        "overhead_fraction": figures.get("overhead_fraction"),
        "init_median": init.get("default_median"), "init_plus_median": init.get("composed_median"),
        "final_median": final.get("default_median"),
        "final_plus_median": final.get("composed_median"),
        "default_tried": d.get("tried"), "composed_tried": c.get("tried"),
        "default_seconds": d.get("total_seconds"), "composed_seconds": c.get("total_seconds"),
        "pretrain_seconds": c.get("pretrain_seconds"),
        "winner_params_ratio": c.get("winner_params_ratio"),
        "default_winner_params_ratio": d.get("winner_params_ratio"),
        "full_accuracy": figures.get("full_accuracy"), "num_configs": d.get("num_candidates"),
        "num_blocks": num_blocks,
    }


def count_sweep(results, figures, counts):
    """Speedup for n candidates spread over size, replayed from the rows."""
    from wootz_keras.search.figures import replay_exploration
    from wootz_keras.workflow.pipeline import spread
    target = figures["target"]
    pretrain = figures["modes"]["composed"]["pretrain_seconds"]
    n_all = results["default"]["num_candidates"]
    out = []
    for n in counts:
        if n > n_all:
            continue
        keep = [int(p) for p in spread(n_all, n)]
        line = {"candidates": n}
        for mode in ("default", "composed"):
            by_position = {r["position"]: r for r in results[mode]["rows"]}
            sub = [dict(by_position[p], position=k) for k, p in enumerate(keep)
                   if p in by_position]
            got = replay_exploration(sub, n, target)
            line[mode] = None if got is None else {
                "tried": got[0], "seconds": got[1] + (pretrain if mode == "composed" else 0.0)}
        d, c = line["default"], line["composed"]
        line["speedup"] = d["seconds"] / c["seconds"] if d and c and c["seconds"] else None
        out.append(line)
    return out


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def main(argv):
    del argv
    from wootz_keras.utils.io import write_json
    from wootz_keras.workflow.pipeline import RunLog, run_pipeline
    from wootz_keras.workflow.presets import SCALES
    out_dir = FLAGS.out_dir or os.path.join("runs", f"bench_{FLAGS.scale}")
    settings = SCALES[FLAGS.scale]
    if FLAGS.objective:
        settings = settings.replace(objective=FLAGS.objective)
    figures = run_pipeline(settings, out_dir, export_dir=None, composed=True, log=RunLog())
    from wootz_keras.planner.tuning_blocks import Plan
    from wootz_keras.utils.io import read_json
    num_blocks = len(Plan.from_json(os.path.join(out_dir, "plan.json")).blocks)
    results = read_json(os.path.join(out_dir, "results.json"))["results"]
    flat = flat_figures(figures, num_blocks)
    print(f"\ncomposability benchmark, scale={FLAGS.scale}, objective {figures.get('objective')} "
          f"(target {figures.get('target')})")
    for key in KEYS:
        print(f"  {key:28s} {_fmt(flat.get(key))}")
    sweep = figures.get("alpha_sweep") or []
    print("\n  alpha   target   default tried/s     composed tried/s (incl. pre-training)  "
          "speedup")
    for line in sweep:
        d, c = line["default"], line["composed"]
        cell = (lambda m: "   not answerable" if m is None else
                f"{m['tried']:4d} {m['seconds']:8.1f}s     ")
        speed = "-" if line["speedup"] is None else f"{line['speedup']:.2f}x"
        print(f"  {line['alpha']:.3f}   {line['target']:.4f}  {cell(d)}  {cell(c)}  {speed}")
    counts = count_sweep(results, figures, [int(c) for c in FLAGS.counts])
    print("\n  candidates  default tried/s     composed tried/s   speedup")
    for line in counts:
        d, c = line["default"], line["composed"]
        cell = (lambda m: "   not answerable" if m is None else
                f"{m['tried']:4d} {m['seconds']:8.1f}s")
        speed = "-" if line["speedup"] is None else f"{line['speedup']:.2f}x"
        print(f"  {line['candidates']:10d}  {cell(d)}    {cell(c)}   {speed}")
    for mode, m in figures["modes"].items():
        print(f"  {mode}: {m['message']}")
    if FLAGS.json:
        write_json(FLAGS.json, {**flat, "alpha_sweep": sweep, "count_sweep": counts,
                                "objective": figures.get("objective"),
                                "target": figures.get("target"),
                                "decision": figures["modes"].get("auto", {}).get("decision")},
                   default=str)


if __name__ == "__main__":
    app.run(main)
