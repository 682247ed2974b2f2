"""Worker identity and the heartbeat that keeps a worker's claims leased.

A worker is one exploring process: `worker_id()` names it uniquely (host,
pid, a random tag; a label such as its TF_CONFIG index in front). While the
worker evaluates the candidates it claimed, a `Heartbeat` thread renews
their leases every lease/3 seconds on its own database connection. If the
heartbeat stalls (or the whole process does) for longer than the lease,
another worker may take the positions over; the stalled worker then finds
out when it records (the journal's compare-and-set refuses) and discards
its result.

Example:
    >>> wid = worker_id(3)
    >>> wid.startswith("3@") and wid.count(":") == 2
    True
"""

import os
import secrets
import socket
import threading


def worker_id(label=None):
    """A unique id for this worker: '[label@]host:pid:random'."""
    base = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    return base if label is None or str(label) == "" else f"{label}@{base}"


class Heartbeat:
    """Renew the claims a worker holds, every `lease / 3` s, on a second connection.

    `hold(claims)` before evaluating them, `drop()` before recording them,
    `stop()` at the end. Renewal errors (a database that is briefly away)
    are counted and retried with a new connection at the next beat; the
    claims stay valid until another worker takes them over.
    """

    def __init__(self, journal, lease):
        self.journal = journal
        self.lease = float(lease)
        self.interval = self.lease / 3.0
        self.errors = 0
        self.last_error = None
        self._held = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def hold(self, claims):
        with self._lock:
            self._held = list(claims)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wootz-lease-heartbeat",
                                            daemon=True)
            self._thread.start()

    def drop(self):
        with self._lock:
            self._held = []

    def _run(self):
        conn = None
        try:
            while not self._stop.wait(self.interval):
                with self._lock:
                    held = list(self._held)
                if not held:
                    continue
                try:
                    if conn is None:
                        conn = self.journal.clone()
                    conn.renew(held, self.lease)
                except Exception as e:  # noqa: BLE001 - never let the heartbeat die
                    self.errors += 1
                    self.last_error = str(e)
                    if conn is not None:
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()

    def stop(self):
        self._stop.set()
        self.drop()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval))
            self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
