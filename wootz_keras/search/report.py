"""Exploration reports: JSON, CSV, a Markdown summary and PNG plots.

`write_report` compares the explorations of one candidate set -- default
pruning and composability (WOOTZ.md step 7): candidates tried, time, the
winner's size, accuracy right after assembly ("init") and after fine-tuning
("final"), and the speedup = default time / composed time, the composed time
including block pre-training (`extra["pretrain_seconds"]`).

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
import statistics

from wootz_keras.search.objectives import objective_from_dict
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


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _is_winner(row, winner):
    return winner is not None and row["index"] == winner["index"]


def summary(full_accuracy, teacher_params, results, extra=None):
    """Per-mode figures and the speedup, as written to results.json / report.md.

    Example:
        >>> summary(0.9, 100, {})["speedup"] is None
        True
    """
    extra = dict(extra or {})
    pretrain = float(extra.get("pretrain_seconds", 0.0) or 0.0)
    modes = {}
    for mode in _modes(results):
        r = _as_dict(results[mode])
        w = r.get("winner")
        pre = pretrain if mode == "composed" else 0.0
        modes[mode] = {
            "tried": r["tried"],
            "num_candidates": r.get("num_candidates"),
            "seconds": r["seconds"],
            "pretrain_seconds": pre,
            "total_seconds": r["seconds"] + pre,
            "complete": r.get("complete"),
            "winner_index": None if w is None else w["index"],
            "winner_params": None if w is None else w["params"],
            "winner_flops": None if w is None else w["flops"],
            "winner_params_ratio": (None if w is None or not teacher_params
                                    else w["params"] / teacher_params),
            "winner_final_accuracy": None if w is None else w["final_accuracy"],
            "init_median": _median(row.get("init_accuracy") for row in r["rows"]),
            "final_median": _median(row.get("final_accuracy") for row in r["rows"]),
            "message": r.get("message", ""),
        }
    speedup = None
    if "default" in modes and "composed" in modes and modes["composed"]["total_seconds"] > 0:
        speedup = modes["default"]["total_seconds"] / modes["composed"]["total_seconds"]
    return {"full_accuracy": float(full_accuracy), "teacher_params": teacher_params,
            "modes": modes, "speedup": speedup}


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


def _cell(v, limit=120):
    text = str(v).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _secs(s):
    return f"{s:.1f}" if s >= 100 else f"{s:.3g}"


def _markdown(full_accuracy, teacher_params, results, extra, summ):
    first = _as_dict(results[_modes(results)[0]]) if results else None
    lines = ["# Wootz exploration report", ""]
    lines.append(f"Full model: accuracy {full_accuracy:.4f}, "
                 f"{_fmt(teacher_params, '{:,}')} params.")
    if first is not None:
        try:
            described = objective_from_dict(first["objective"]).describe()
        except ValueError:
            described = str(first["objective"])
        target = first.get("target")
        lines.append(f"Objective: {described}"
                     + (f" (target {target:.4f})." if target is not None else "."))
    lines += ["", "| mode | tried | candidates | fine-tune s | pre-train s | total s | winner "
              "| winner params | size ratio | winner acc | init median | final median "
              "| final? |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for mode, m in summ["modes"].items():
        lines.append(
            f"| {mode} | {m['tried']} | {_fmt(m['num_candidates'], '{}')} "
            f"| {_secs(m['seconds'])} | {_secs(m['pretrain_seconds'])} "
            f"| {_secs(m['total_seconds'])} "
            f"| {_fmt(m['winner_index'], '#{}')} | {_fmt(m['winner_params'], '{:,}')} "
            f"| {_fmt(m['winner_params_ratio'], '{:.1%}')} "
            f"| {_fmt(m['winner_final_accuracy'])} | {_fmt(m['init_median'])} "
            f"| {_fmt(m['final_median'])} | {'yes' if m['complete'] else 'no'} |")
    lines.append("")
    if summ["speedup"] is not None:
        lines.append(f"**Speedup** (default time / composed time incl. pre-training): "
                     f"**{summ['speedup']:.2f}x**")
    else:
        lines.append("Speedup: needs both a default and a composed exploration.")
    lines += ["", "## Results", ""]
    lines += [f"- {m['message']}" for m in summ["modes"].values()]
    if extra:
        lines += ["", "## Settings", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in _flatten(extra)]
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


def write_report(out_dir, full_accuracy, teacher_params, results, extra=None):
    """Write results.json, results.csv, report.md and three PNG plots to `out_dir`.

    Args:
        out_dir: directory (created if needed; other files in it are left alone).
        full_accuracy: the unpruned model's accuracy.
        teacher_params: the unpruned model's parameter count (size ratios).
        results: {mode: ExploreResult (or its to_dict())}, e.g. "default" and "composed".
        extra: JSON-able settings to record; `pretrain_seconds` is added to
            the composed time for the speedup.

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
    extra = dict(extra or {})
    pretrain = float(extra.get("pretrain_seconds", 0.0) or 0.0)
    paths = {k: os.path.join(out_dir, name) for k, name in FILES.items()}
    summ = summary(full_accuracy, teacher_params, results, extra)
    write_json(paths["json"], {**summ, "extra": extra, "results": results}, default=str)
    write_text(paths["csv"], _csv(results, teacher_params))
    write_text(paths["markdown"], _markdown(float(full_accuracy), teacher_params, results,
                                            extra, summ))
    _plot_accuracy_vs_size(paths["accuracy_vs_size"], float(full_accuracy), teacher_params,
                           results)
    _plot_distributions(paths["accuracy_distributions"], results)
    _plot_timeline(paths["timeline"], results, pretrain)
    return paths
