"""Merge the rows of export sweep processes (same settings, disjoint models) into one table.
    python benchmarks/export_sweep_merge.py OUT_DIR ELAPSED_S IN.json [IN.json ...]
"""
import json, os, sys
out_dir, elapsed, inputs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
sys.argv = sys.argv[:1]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE); sys.path.insert(0, os.path.dirname(HERE))
import export_sweep as es
from absl import flags
flags.FLAGS(["merge"])
order = list(es.catalogue(True))
docs = [json.load(open(p)) for p in inputs]
assert all(d["config"] == docs[0]["config"] for d in docs), "settings differ"
rows = {}
for d in docs:
    for r in d["rows"]:
        if r["model"] not in rows or (r.get("latency") and not rows[r["model"]].get("latency")):
            rows[r["model"]] = r
rows = [rows[n] for n in order if n in rows]
missing = [n for n in order if n not in {r["model"] for r in rows}]
summary = dict(models_ok=sum(r["status"] == "ok" for r in rows), models=len(rows),
               complete=not missing)
from wootz_keras.utils.io import write_json, write_text
write_json(os.path.join(out_dir, "export_sweep.json"),
           dict(config=docs[0]["config"], versions=docs[0]["versions"], elapsed_s=elapsed,
                summary=summary, rows=rows, processes=len(docs), missing=missing))
write_text(os.path.join(out_dir, "export_sweep.md"),
           es.markdown(rows, docs[0]["config"], elapsed, docs[0]["versions"]))
print(summary, "missing:", missing)
