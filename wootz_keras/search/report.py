"""Exploration reports: JSON, CSV, a Markdown summary and PNG plots.

`write_report` compares the explorations of one candidate set -- default
pruning, composability and auto (docs/method.md, step 7): candidates tried,
time, the winners, the speedups, the medians; every number comes from
`figures.summary`, the one computation the console and the benchmark print
too.

Every file is written atomically; plots use matplotlib's Agg canvas (no
display, no global backend change).

Example:
    >>> import tempfile
    >>> from wootz_keras.search.exploration import ExploreResult
    >>> row = dict(index=0, position=0, rates=[0.5], params=40, flops=80, init_accuracy=0.5,
    ...            final_accuracy=0.9, seconds=2.0, worker=0, started="", finished="",
    ...            met=True, extra={})
    >>> r = ExploreResult("default", {"name": "smallest_within_accuracy", "alpha": 0.01,
    ...                   "size": "params"}, 0.9, 0.891, row, True, "ok", 1, 2.0, [row])
    >>> paths = write_report(tempfile.mkdtemp(), 0.9, 100, {"default": r})
    >>> sorted(paths)
    ['accuracy_distributions', 'accuracy_vs_size', 'csv', 'json', 'markdown', 'timeline']
"""

import csv
import io
import math
import os

from wootz_keras.search.figures import summary  # noqa: F401 (re-exported)
from wootz_keras.utils.io import atomic_path, write_json, write_text

FILES = {
    "json": "results.json",
    "csv": "results.csv",
    "markdown": "report.md",
    "accuracy_vs_size": "accuracy_vs_size.png",
    "accuracy_distributions": "accuracy_distributions.png",
    "timeline": "timeline.png",
}

CSV_COLUMNS = ("mode", "position", "index", "rates", "params", "flops", "params_ratio",
               "init_accuracy", "final_accuracy", "met", "winner", "seconds", "worker",
               "started", "finished")

_COLORS = {"default": "tab:blue", "composed": "tab:orange"}
_MODE_ORDER = ("default", "composed")


def _as_dict(result):
    return result if isinstance(result, dict) else result.to_dict()


def _modes(results):
    return sorted(results, key=lambda m: (_MODE_ORDER.index(m) if m in _MODE_ORDER else 99, m))


def _is_winner(row, winner):
    return winner is not None and row["index"] == winner["index"] and \
        row.get("mode", "") == winner.get("mode", row.get("mode", ""))


def _fmt(v, spec="{:.4f}"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return spec.format(v)


def _flatten(d, prefix=""):
    """[(dotted key, value)] of a nested dict, sorted."""
    out = []
    for k, v in sorted(d.items(), key=lambda kv: str(kv[0])):
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def _cell(v):
    if isinstance(v, float):
        v = f"{v:.6g}"
    elif isinstance(v, (list, tuple)):
        v = ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def _secs(s):
    return "-" if s is None else (f"{s:.1f}" if s >= 100 else f"{s:.3g}")


def _markdown(figures, settings):
    lines = ["# Wootz exploration report", ""]
    lines.append(f"Full model: accuracy {figures['full_accuracy']:.4f} (validation split), "
                 f"{_fmt(figures['teacher_params'], '{:,}')} params.")
    if figures.get("objective"):
        target = figures.get("target")
        lines.append(f"Objective: {figures['objective']}"
                     + (f" (target {target:.4f})." if target is not None else "."))
    lines += ["", "| mode | tried | of | fine-tune s | pre-train s | total s | winner "
              "| winner params | size ratio | val acc | test acc | final? |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode, m in figures["modes"].items():
        lines.append(
            f"| {mode} | {m['tried']} | {_fmt(m['num_candidates'], '{}')} "
            f"| {_secs(m['fine_tune_seconds'])} | {_secs(m['pretrain_seconds'])} "
            f"| {_secs(m['total_seconds'])} "
            f"| {_fmt(m['winner_index'], '#{}')}{'' if m['winner_met'] or m['winner_index'] is None else ' (fallback)'} "
            f"| {_fmt(m['winner_params'], '{:,}')} | {_fmt(m['winner_params_ratio'], '{:.1%}')} "
            f"| {_fmt(m['winner_val_accuracy'])} | {_fmt(m['winner_test_accuracy'])} "
            f"| {'yes' if m['complete'] else 'no'} |")
    lines.append("")
    if figures.get("speedup") is not None:
        lines.append(f"**Speedup** of composability (default time / composed time, pre-training "
                     f"included): **{figures['speedup']:.2f}x**")
    if figures.get("speedup_auto") is not None:
        lines.append(f"**Speedup** of auto mode (default time / auto time): "
                     f"**{figures['speedup_auto']:.2f}x**")
    if figures.get("speedup") is None and figures.get("speedup_auto") is None:
        lines.append("Speedup: needs both a default and a composed (or auto) exploration.")
    if figures.get("overhead_fraction") is not None:
        lines.append(f"Fixed cost per default candidate (assembly, tracing, evaluation: all but "
                     f"training steps): {figures['overhead_fraction']:.1%} of its time.")
    auto = figures["modes"].get("auto", {}).get("decision")
    if auto:
        lines += ["", f"Auto mode: {'pre-trained blocks' if auto['pretrain'] else 'default pruning only'}"
                  f" -- {auto['reason']}."]
    for key, title in (("init", "Accuracy right after assembly"),
                       ("final", "Accuracy after fine-tuning")):
        if figures.get(key):
            f = figures[key]
            lines += ["", f"{title} ({f['over']}): median default {_fmt(f['default_median'])}, "
                          f"composed {_fmt(f['composed_median'])}."]
    curve = figures.get("teacher_curve")
    if curve:
        lines += ["", "Teacher training (validation split each epoch): "
                  + ", ".join(f"{p['epoch']}: {p['val_accuracy']:.4f}" for p in curve) + "."]
    sweep = figures.get("alpha_sweep")
    if sweep:
        lines += ["", "## Alpha sweep (replayed from this run's validation curves)", "",
                  "| alpha | target | default tried / s | composed tried / s (+ pre-training) "
                  "| speedup | winner params default / composed |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for line in sweep:
            d, c = line["default"], line["composed"]
            cell = (lambda m: "not answerable" if m is None else
                    f"{m['tried']} / {_secs(m['seconds'])}")
            params = (lambda m: "-" if m is None or m["winner_params"] is None
                      else f"{m['winner_params']:,}")
            lines.append(f"| {line['alpha']:.1%} | {line['target']:.4f} | {cell(d)} | {cell(c)} "
                         f"| {_fmt(line['speedup'], '{:.2f}x')} | {params(d)} / {params(c)} |")
    exported = figures.get("export")
    if exported:
        lines += ["", f"Winner #{exported['winner_index']} exported to {exported['dir']} "
                  f"({', '.join(exported['formats'])}); measured batch-1 latency: "
                  + (", ".join(f"{fmt} {ms:.3f} ms" for fmt, ms in
                               sorted(exported["measured_latency_ms"].items())) or "none")
                  + "."]
        if exported.get("predicted_latency_ms") is not None:
            lines.append(f"Predicted latency in {exported['runtime']} (latency table): "
                         f"{exported['predicted_latency_ms']:.3f} ms, "
                         f"{exported['latency_error']:+.0%} off the measured one.")
    lines += ["", "## Results", ""]
    lines += [f"- {m['message']}" for m in figures["modes"].values()]
    if settings:
        lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in _flatten(settings)]
    lines += ["", "## Plots", ""]
    for key, title in (("accuracy_vs_size", "accuracy vs size"),
                       ("accuracy_distributions", "accuracy distributions"),
                       ("timeline", "exploration time line")):
        lines.append(f"![{title}]({FILES[key]})")
    return "\n".join(lines) + "\n"


def _csv(results, teacher_params):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for mode in _modes(results):
        r = _as_dict(results[mode])
        for row in sorted(r["rows"], key=lambda x: x.get("position", 0)):
            writer.writerow([
                mode, row.get("position"), row["index"], " ".join(f"{x:g}" for x in row["rates"]),
                row["params"], row["flops"],
                "" if not teacher_params else f"{row['params'] / teacher_params:.6f}",
                "" if row.get("init_accuracy") is None else row["init_accuracy"],
                row["final_accuracy"], int(bool(row.get("met"))),
                int(_is_winner(row, r.get("winner"))), f"{row['seconds']:.6f}",
                row.get("worker", ""), row.get("started", ""), row.get("finished", "")])
    return buf.getvalue()


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _figure(**kw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def _plot_accuracy_vs_size(path, full_accuracy, teacher_params, results):
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    scale = (lambda p: p / teacher_params) if teacher_params else (lambda p: p)
    for mode in _modes(results):
        r = _as_dict(results[mode])
        rows = r["rows"]
        color = _COLORS.get(mode)
        ax.scatter([scale(x["params"]) for x in rows], [x["final_accuracy"] for x in rows],
                   s=22, alpha=0.7, color=color, label=f"{mode} ({len(rows)} tried)")
        w = r.get("winner")
        if w is not None:
            ax.scatter([scale(w["params"])], [w["final_accuracy"]], marker="*", s=260,
                       color=color, edgecolors="black", zorder=5, label=f"{mode} winner #{w['index']}")
    ax.axhline(full_accuracy, color="gray", linestyle="--", linewidth=1, label="full model")
    target = next((_as_dict(r).get("target") for r in results.values()), None)
    if target is not None and target != full_accuracy:
        ax.axhline(target, color="red", linestyle=":", linewidth=1, label="target")
    ax.set_xlabel("params / full model params" if teacher_params else "params")
    ax.set_ylabel("final accuracy")
    ax.set_title("Candidates: accuracy after fine-tuning vs size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def _plot_distributions(path, results):
    fig = _figure(figsize=(8, 4), layout="constrained")
    modes = _modes(results)
    for k, (key, title) in enumerate((("init_accuracy", "right after assembly (init)"),
                                      ("final_accuracy", "after fine-tuning (final)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        data, labels = [], []
        for mode in modes:
            vals = [x[key] for x in _as_dict(results[mode])["rows"] if x.get(key) is not None]
            if vals:
                data.append(vals)
                labels.append(f"{mode}\n(n={len(vals)})")
        if data:
            box = ax.boxplot(data, patch_artist=True)
            ax.set_xticks(range(1, len(labels) + 1), labels)
            for patch, label in zip(box["boxes"], labels):
                patch.set_facecolor(_COLORS.get(label.split("\n")[0], "lightgray"))
                patch.set_alpha(0.5)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def _plot_timeline(path, results, pretrain_seconds):
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for mode in _modes(results):
        r = _as_dict(results[mode])
        rows = sorted(r["rows"], key=lambda x: (x.get("finished") or "", x.get("position", 0)))
        start = pretrain_seconds if mode == "composed" else 0.0
        xs, ys, total = [0], [start], start
        for row in rows:
            total += row["seconds"]
            xs.append(len(xs))
            ys.append(total)
        color = _COLORS.get(mode)
        label = mode + (f" (incl. {_secs(start)} s pre-training)" if start else "")
        ax.plot(xs, ys, marker="o", markersize=3, color=color, label=label)
        w = r.get("winner")
        for i, row in enumerate(rows):
            if _is_winner(row, w):
                ax.scatter([i + 1], [ys[i + 1]], marker="*", s=220, color=color,
                           edgecolors="black", zorder=5)
    ax.set_xlabel("candidates finished")
    ax.set_ylabel("cumulative seconds")
    ax.set_title("Exploration time line (winner starred)")
    ax.grid(alpha=0.3)
    if results:
        ax.legend(fontsize=8)
    _save(fig, path)


def _plot_rows(results):
    """{mode: rows} for the plots: auto's rows are shown under their own mode."""
    out = {}
    for mode in _modes(results):
        if mode == "auto" and ("default" in results or "composed" in results):
            continue
        out[mode] = results[mode]
    return out


def write_report(out_dir, full_accuracy, teacher_params, results, settings=None, figures=None,
                 pretrain_seconds=0.0):
    """Write results.json, results.csv, report.md and three PNG plots to `out_dir`.

    Args:
        out_dir: directory (created if needed; other files in it are left alone).
        full_accuracy: the unpruned model's accuracy.
        teacher_params: the unpruned model's parameter count (size ratios).
        results: {mode: ExploreResult / AutoResult (or their to_dict())}.
        settings: JSON-able settings of the run (the report's settings table).
        figures: `figures.summary(...)` of the run (computed here from
            `results` and `pretrain_seconds` when not given).

    Returns:
        {key: path} for the keys of `FILES`.

    Example (see the module docstring for a complete one):
        >>> import tempfile
        >>> p = write_report(tempfile.mkdtemp(), 0.9, 100, {})
        >>> os.path.basename(p["markdown"])
        'report.md'
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    results = {m: _as_dict(r) for m, r in dict(results).items()}
    if figures is None:
        figures = summary(full_accuracy, teacher_params, results,
                          pretrain_seconds=pretrain_seconds)
    pretrain = figures["modes"].get("composed", {}).get("pretrain_seconds", 0.0) or 0.0
    paths = {k: os.path.join(out_dir, name) for k, name in FILES.items()}
    write_json(paths["json"], {"figures": figures, "settings": settings or {},
                               "results": results}, default=str)
    write_text(paths["csv"], _csv(results, teacher_params))
    write_text(paths["markdown"], _markdown(figures, settings))
    plotted = _plot_rows(results)
    _plot_accuracy_vs_size(paths["accuracy_vs_size"], float(full_accuracy), teacher_params,
                           plotted)
    _plot_distributions(paths["accuracy_distributions"], plotted)
    _plot_timeline(paths["timeline"], plotted, pretrain)
    return paths
