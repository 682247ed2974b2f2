"""A measured latency table, cached on disk.

One JSON file per (runtime, runtime version, threads, CPU model) under the
user's cache folder: ``$WOOTZ_CACHE/latency/`` when WOOTZ_CACHE is set, else
``$XDG_CACHE_HOME/wootz_keras/latency/`` or ``~/.cache/wootz_keras/latency/``.
It maps (shape class, input channels, output channels) to the batch-1
latency of that one layer. Entries are measured the first time they are
asked for and kept: a table is measured once per machine and runtime, then
only read. Files are written atomically, merged with what another process
may have written meanwhile. Measure on an otherwise idle machine: a table
filled under load describes the load.
"""

import logging
import os

from wootz_keras.latency.measure import check_settings, layer_latencies_ms
from wootz_keras.latency.runtimes import check_runtime, check_threads, cpu_model, runtime_version, \
    slug
from wootz_keras.utils.io import read_document, write_document

log = logging.getLogger("wootz_keras.latency")

CACHE_ENV = "WOOTZ_CACHE"
MEASURE_BATCH = 48       # one-layer models timed together (interleaved rounds)
KIND = "latency_table"


def cache_dir(folder=None):
    """Where latency tables live: `folder`, else $WOOTZ_CACHE/latency, else the
    user cache folder's wootz_keras/latency.

    Example:
        >>> cache_dir("/tmp/wz_cache")
        '/tmp/wz_cache'
    """
    if folder is not None:
        return os.fspath(folder)
    root = os.environ.get(CACHE_ENV)
    if root:
        return os.path.join(root, "latency")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "wootz_keras", "latency")


def _entry_key(shape, cin, cout):
    return f"{shape.key}|{int(cin)}|{int(cout)}"


class LatencyTable:
    """Measured per-layer latency in one runtime, filled on demand and cached.

    runtime: "tflite" or "onnxruntime" (RuntimeUnavailable, naming the
    package to install, when it cannot be imported); threads: the runtime's
    thread count; cache: the folder holding the JSON file (see `cache_dir`);
    runs / warmup / rounds: measurement settings of new entries (see
    `measure.time_ms`); measure: optional callable (shape, cin, cout) -> ms
    replacing the built-in measurement (a remote device; tests), best with
    its own cache folder. Entries already in the file are used as they are,
    whatever settings measured them (the file records the settings of the
    process that last wrote it).

    Example:
        >>> import tempfile
        >>> from wootz_keras.latency.shapes import LayerShape
        >>> table = LatencyTable("onnxruntime", cache=tempfile.mkdtemp(), runs=2, warmup=0, rounds=1)
        >>> s = LayerShape("conv", (3, 3), (1, 1), (1, 1), "same", (8, 8))
        >>> table.ms(s, 4, 8) > 0, table.measured
        (True, 1)
        >>> LatencyTable("onnxruntime", cache=table.folder).ms(s, 4, 8) == table.ms(s, 4, 8)
        True
    """

    def __init__(self, runtime, threads=1, cache=None, runs=30, warmup=5, rounds=3,
                 measure=None):
        self.runtime = check_runtime(runtime)
        self.runtime_version = runtime_version(self.runtime)
        self.threads = check_threads(threads)
        self.settings = dict(zip(("runs", "warmup", "rounds"), check_settings(runs, warmup, rounds)))
        if measure is not None and not callable(measure):
            raise ValueError(f"measure must be a callable (shape, cin, cout) -> ms, got {measure!r}")
        self._measure_fn = measure
        self.cpu = cpu_model()
        self.folder = cache_dir(cache)
        name = f"{self.runtime}-{slug(self.runtime_version)}-t{self.threads}-{slug(self.cpu)}.json"
        self.path = os.path.join(self.folder, name)
        self.entries = self._read()
        self.measured = 0       # entries this object measured
        self.hits = 0           # look-ups answered from the table

    def _read(self):
        if not os.path.exists(self.path):
            return {}
        data = read_document(self.path, KIND, what="latency table")
        if data.get("runtime_version") != self.runtime_version or \
                data.get("threads") != self.threads:
            raise ValueError(f"latency table {self.path!r} was measured with "
                             f"{data.get('runtime_version')!r}, {data.get('threads')!r} threads; "
                             "delete it or use another cache folder")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise ValueError(f"latency table {self.path!r} is malformed: no entries")
        return {str(k): float(v) for k, v in entries.items()}

    def save(self):
        """Write the table (merged with entries another process saved meanwhile)."""
        merged = dict(self._read())
        merged.update(self.entries)
        self.entries = merged
        write_document(self.path, KIND, {
            "runtime": self.runtime, "runtime_version": self.runtime_version,
            "threads": self.threads, "cpu": self.cpu, "settings": self.settings,
            "entries": dict(sorted(merged.items()))})

    def __contains__(self, point):
        return _entry_key(*point) in self.entries

    def _measure(self, points):
        """Measure `points` ((shape, cin, cout), distinct, not in the table)."""
        points = [(shape, *shape.check_counts(cin, cout)) for shape, cin, cout in points]
        if self._measure_fn is not None:
            values = [float(self._measure_fn(*p)) for p in points]
        else:
            values = layer_latencies_ms(self.runtime, points, self.threads, **self.settings)
        for (shape, cin, cout), ms in zip(points, values):
            if not ms > 0:
                raise ValueError(f"measured latency of {shape.key} ({cin} -> {cout}) is {ms!r}")
        self.measured += len(points)
        return values

    def lookup(self, points):
        """Latency (ms) of each (shape, cin, cout) in `points`; missing entries are
        measured (in batches of 48, saving after each), then kept."""
        points = list(points)
        missing = {}
        for p in points:
            key = _entry_key(*p)
            if key not in self.entries:
                missing.setdefault(key, p)
        missing = list(missing.values())
        if missing:
            log.info("latency table %s: measuring %d layer shapes", self.path, len(missing))
        for i in range(0, len(missing), MEASURE_BATCH):
            chunk = missing[i:i + MEASURE_BATCH]
            for p, ms in zip(chunk, self._measure(chunk)):
                self.entries[_entry_key(*p)] = ms
            self.save()
            log.info("latency table: %d/%d measured", min(i + MEASURE_BATCH, len(missing)),
                     len(missing))
        self.hits += len(points) - len(missing)
        return [self.entries[_entry_key(*p)] for p in points]

    def ms(self, shape, cin, cout):
        """Latency (ms) of one layer of `shape` with `cin` -> `cout` channels."""
        return self.lookup([(shape, cin, cout)])[0]

    def describe(self):
        return (f"{self.runtime_version}, {self.threads} thread(s), {self.cpu}: "
                f"{len(self.entries)} entries in {self.path}")
