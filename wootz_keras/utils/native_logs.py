"""Keep TensorFlow's native (C++) log lines off a command's console.

TensorFlow and XLA write start-up and progress lines (``I0000 ...]
oneDNN custom operations are on``, CUDA probes on machines without a GPU,
absl's "before absl::InitializeLog()" notice) straight to file descriptor 2,
past Python's logging and past TF_CPP_MIN_LOG_LEVEL. For the command tools a
filter on descriptor 2 drops those lines and forwards everything else
(errors, warnings, progress); `--verbose` keeps them. Library users are not
affected unless they call `quiet()` themselves.
"""

import logging
import os
import re
import sys
import threading

#: Native log lines: glog/absl (``I0000 00:00:17..``, ``W1201 ...``), TF's
#: dated format, absl's pre-initialisation notice, the CPU-feature banner,
#: and Python-side ``WARNING:tensorflow:`` chatter (retracing notices).
NATIVE_LOG = re.compile(rb"^([IWEF]\d{4} \d\d:\d\d:\d\d|"
                        rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |"
                        rb"WARNING: All log messages before absl::InitializeLog|"
                        rb"To enable the following instructions:|"
                        rb"WARNING:tensorflow:|WARNING:absl:)")


class _Filter:
    _active = None

    def __init__(self):
        self.saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self.thread = threading.Thread(target=self._pump, name="wootz-native-logs", daemon=True)
        self.thread.start()

    def _pump(self):
        pending = b""
        while True:
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not NATIVE_LOG.match(line):
                    os.write(self.saved, line + b"\n")
        if pending and not NATIVE_LOG.match(pending):
            os.write(self.saved, pending)


def quiet():
    """Filter native log lines from descriptor 2 for the rest of the process
    (or until `stop`), and keep TensorFlow's Python loggers to errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if _Filter._active is None:
        _Filter._active = _Filter()
    for name in ("tensorflow", "tf2onnx", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def stop():
    """Restore descriptor 2 (flushing what the filter holds)."""
    f = _Filter._active
    if f is None:
        return
    _Filter._active = None
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(f.saved, 2)         # closes the pipe's write end: the pump sees EOF
    f.thread.join(timeout=5)
    os.close(f.saved)


def is_command():
    """Whether this process is a wootz command tool (console script or tools/*.py)."""
    argv0 = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    tools = os.path.realpath(os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
    return os.path.basename(argv0).startswith("wootz-") or os.path.dirname(argv0) == tools


def quiet_for_commands():
    """`quiet()` for a wootz command tool run without --verbose, before
    TensorFlow is imported (called first thing by the package)."""
    if is_command() and "--verbose" not in sys.argv and "--verbose=true" not in sys.argv:
        quiet()
