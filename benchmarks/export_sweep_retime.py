"""Time the deferred rows of an interrupted export sweep from the files it kept.

The sweep keeps the full and pruned model.tflite / model.onnx of every row whose
latency it deferred (in /tmp/wz_sweep_<model>_*/); this times them with the sweep's
own time_one (same settings, exclusive CPU lock) and rewrites the JSON.
    python benchmarks/export_sweep_retime.py IN.json OUT.json
"""
import glob, json, os, sys, time
sys.argv, args = sys.argv[:1], sys.argv[1:]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE); sys.path.insert(0, os.path.dirname(HERE))
import export_sweep as es
from absl import flags
flags.FLAGS(["retime"])
F = flags.FLAGS
models = es.catalogue(True)
d = json.load(open(args[0]))
for row in d["rows"]:
    if row.get("latency") or not row.get("formats"):
        continue
    works = [w for w in glob.glob(f"/tmp/wz_sweep_{row['model']}_*")
             if os.path.exists(os.path.join(w, "pruned", "model.tflite"))]
    if not works:
        print(f"{row['model']}: no kept files", flush=True)
        continue
    _, _, preprocess = models[row["model"]]
    t = time.perf_counter()
    with es.cpu_lock(exclusive=True):
        row["latency_wait_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        es.time_one(row, works[0], preprocess, F.threads, F.latency_rounds, F.latency_seconds,
                    F.max_latency_runs)
    row["latency_s"] = round(time.perf_counter() - t, 1)
    print(row["model"], row["latency"], flush=True)
json.dump(d, open(args[1], "w"), indent=1)
