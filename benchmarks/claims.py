"""Time to claim and record a candidate with many workers, on both journal backends.

--workers processes share one journal (an SQLite file, and a PostgreSQL
database: --postgres_url, or a throwaway server started from the installed
binaries as in the tests, with PostgreSQL's default durability) and run the
exploration loop's journal work for --candidates positions: claim one
position, "evaluate" it (sleep
--evaluate_ms; 0 is the worst case: every worker hammers the journal at
once), record it under its claim. Each worker times every claim and every
record; the table gives the median and 95th percentile over all workers,
the whole claim + record cycle, the throughput, and the cycle as a fraction
of one candidate's training (--candidate_seconds; ~10 s for a 60-step
candidate on 2 CPU cores, docs/design.md). It also checks that every position
was recorded exactly once.

    python benchmarks/claims.py --workers=8 --candidates=400 --evaluate_ms=0,50
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
if "wootz_keras" not in sys.modules:
    # The journal needs no TensorFlow: skip the package __init__ (8 workers
    # importing TensorFlow would measure TensorFlow, not the journal).
    import types
    _pkg = types.ModuleType("wootz_keras")
    _pkg.__path__ = [os.path.join(ROOT, "wootz_keras")]
    sys.modules["wootz_keras"] = _pkg

from wootz_keras.search.journal import Journal  # noqa: E402
from wootz_keras.search.leases import worker_id  # noqa: E402
from wootz_keras.search.objectives import Candidate  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("workers", 8, "Worker processes sharing the journal.")
flags.DEFINE_integer("candidates", 400, "Positions to claim and record in all.")
flags.DEFINE_list("evaluate_ms", ["0", "50"], "Simulated evaluate() time per candidate (ms).")
flags.DEFINE_list("backends", ["sqlite", "postgresql"], "Journal backends to measure.")
flags.DEFINE_string("postgres_url", None, "A PostgreSQL server URL whose user may CREATE "
                    "DATABASE (default: a throwaway server on loopback).")
flags.DEFINE_float("candidate_seconds", 10.0, "One candidate's training time, for the ratio.")
flags.DEFINE_float("lease", 60.0, "Lease of each claim (s).")
# internal: one worker process
flags.DEFINE_string("role_worker", None, "(internal) run one worker on this journal.")
flags.DEFINE_string("out", None, "(internal) where a worker writes its timings.")
flags.DEFINE_string("go", None, "(internal) file whose appearance starts the workers.")
flags.DEFINE_float("sleep_ms", 0.0, "(internal) evaluate time of a worker.")

HEADER = {"full_accuracy": 0.9, "benchmark": "claims"}


def candidates(n):
    return [Candidate(i, (0.5,), 1000 + i, 2000 + i) for i in range(n)]


def worker(target, out, go, sleep_s, n):
    me = worker_id("bench")
    cands = candidates(n)
    with Journal(target) as j:
        j.begin("default", HEADER, order=list(range(n)))
        open(out + ".ready", "w").close()
        while not os.path.exists(go):  # start together: the worst contention
            time.sleep(0.001)
        claim_s, record_s, cycle_s = [], [], []
        while True:
            t0 = time.perf_counter()
            claims = j.claim("default", me, n=1, lease=FLAGS.lease)
            t1 = time.perf_counter()
            if not claims:
                break
            [c] = claims
            if sleep_s:
                time.sleep(sleep_s)
            t2 = time.perf_counter()
            ok = j.record("default", cands[c.index], claim=c, final_accuracy=0.5, seconds=sleep_s,
                          met=False)
            t3 = time.perf_counter()
            assert ok, f"lost a claim at position {c.position}"
            claim_s.append(t1 - t0)
            record_s.append(t3 - t2)
            cycle_s.append((t1 - t0) + (t3 - t2))
    with open(out, "w") as f:
        json.dump({"claim": claim_s, "record": record_s, "cycle": cycle_s}, f)


def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def run_backend(target, sleep_ms, tmp):
    n = FLAGS.candidates
    with Journal(target) as j:  # create the schema and the work list once, before timing
        j.begin("default", HEADER, order=list(range(n)))
    go = os.path.join(tmp, f"go-{sleep_ms}-{abs(hash(target))}")
    procs, outs = [], []
    for k in range(FLAGS.workers):
        out = os.path.join(tmp, f"w{k}-{sleep_ms}-{abs(hash(target))}.json")
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, __file__, f"--role_worker={target}", f"--out={out}",
             f"--go={go}", f"--sleep_ms={sleep_ms}", f"--candidates={n}",
             f"--lease={FLAGS.lease}"]))
    while not all(os.path.exists(o + ".ready") for o in outs):
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("a worker failed before starting")
        time.sleep(0.01)
    start_at = time.time()
    open(go, "w").close()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode})")
    wall_end = time.time()
    timings = {"claim": [], "record": [], "cycle": []}
    per_worker = []
    for out in outs:
        with open(out) as f:
            t = json.load(f)
        per_worker.append(len(t["cycle"]))
        for k in timings:
            timings[k] += t[k]
    with Journal(target) as j:
        rows = j.finished("default")
        done = j.done_count("default")
        assert j.integrity_check() == "ok"
    assert len(rows) == n == done == sum(per_worker), (len(rows), n, done, per_worker)
    return timings, wall_end - start_at, per_worker


def main(argv):
    del argv
    if FLAGS.role_worker:
        worker(FLAGS.role_worker, FLAGS.out, FLAGS.go, FLAGS.sleep_ms / 1000.0,
               FLAGS.candidates)
        return
    tmp = tempfile.mkdtemp(prefix="wootz-claims-")
    srv = None
    if "postgresql" in FLAGS.backends and not FLAGS.postgres_url:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        import pg_server
        srv = pg_server.Server(durable=True)  # default fsync / synchronous_commit
    print(f"{FLAGS.workers} workers, {FLAGS.candidates} positions; latencies in ms "
          f"(median / p95 over all claims and records)")
    print(f"{'backend':<11} {'eval_ms':>7} {'claim_med':>9} {'claim_p95':>9} {'rec_med':>8} "
          f"{'rec_p95':>8} {'cycle_med':>9} {'cycle_p95':>9} {'cand/s':>7} {'min..max/worker':>15} "
          f"{'p95/candidate':>13}")
    for backend in FLAGS.backends:
        for ms in (float(x) for x in FLAGS.evaluate_ms):
            if backend == "sqlite":
                target = os.path.join(tmp, f"bench-{ms:g}.sqlite")
            elif srv is not None:
                target = srv.create_database("wootz_bench")
            else:
                import psycopg
                name = f"wootz_bench_{os.getpid()}_{int(ms)}"
                with psycopg.connect(FLAGS.postgres_url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                target = FLAGS.postgres_url.rsplit("/", 1)[0] + "/" + name
            t, wall, per_worker = run_backend(target, ms, tmp)
            med = {k: 1000 * statistics.median(v) for k, v in t.items()}
            hi = {k: 1000 * p95(v) for k, v in t.items()}
            print(f"{backend:<11} {ms:>7g} {med['claim']:>9.2f} {hi['claim']:>9.2f} "
                  f"{med['record']:>8.2f} {hi['record']:>8.2f} {med['cycle']:>9.2f} "
                  f"{hi['cycle']:>9.2f} {FLAGS.candidates / wall:>7.0f} "
                  f"{min(per_worker):>7}..{max(per_worker):<7} "
                  f"{hi['cycle'] / 1000 / FLAGS.candidate_seconds:>13.1e}")
    print(f"p95/candidate: the p95 claim + record cycle over one {FLAGS.candidate_seconds:g} s "
          "candidate's training")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
