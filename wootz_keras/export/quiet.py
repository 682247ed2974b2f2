"""Keep converter noise off the console while exporting.

One export used to print ~20 lines: native TensorFlow / MLIR / XNNPACK
logging, tf2onnx progress, deprecation warnings. `quiet_converters()`
captures all of it while converting and verifying (file descriptor 2, the
`tensorflow`, `tf2onnx` and `absl` loggers, Python warnings); the exporter
keeps the captured error messages for its own one-line errors and drops the
rest. With the `wootz_keras.export` logger at DEBUG
(`logging.getLogger("wootz_keras.export").setLevel(logging.DEBUG)`) nothing
is captured: the converters print live, as they normally do.
"""

import contextlib
import logging
import os
import sys
import tempfile
import warnings

log = logging.getLogger("wootz_keras.export")

NOISY_LOGGERS = ("tensorflow", "tf2onnx", "absl")


class Captured:
    """What a `quiet_converters()` block swallowed: log records, warnings, native output."""

    def __init__(self):
        self.records = []
        self.warnings = []
        self.native = ""

    def errors(self):
        """Messages of the captured ERROR (and worse) records, in order."""
        return [r.getMessage() for r in self.records if r.levelno >= logging.ERROR]

    def lines(self):
        out = [f"{r.name} {r.levelname}: {r.getMessage()}" for r in self.records]
        out += [f"{w.category.__name__}: {w.message}" for w in self.warnings]
        out += [line for line in self.native.splitlines() if line.strip()]
        return out


class _ListHandler(logging.Handler):
    def __init__(self, sink):
        super().__init__(logging.INFO)
        self._sink = sink

    def emit(self, record):
        self._sink.append(record)


@contextlib.contextmanager
def _loggers_captured(sink):
    handler = _ListHandler(sink)
    saved = []
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate, logger.handlers[:]))
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level, propagate, handlers in saved:
            logger.handlers = handlers
            logger.propagate = propagate
            logger.setLevel(level)


@contextlib.contextmanager
def _stderr_fd_captured(captured):
    """Point file descriptor 2 at a temporary file (native C++ logging writes there)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        for stream in (sys.stderr, sys.__stderr__):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stderr, sys.__stderr__):
                try:
                    stream.flush()
                except (AttributeError, OSError, ValueError):
                    pass
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.native = sink.read().decode("utf-8", "replace")


@contextlib.contextmanager
def quiet_converters():
    """Capture converter output while the block runs.

    Yields a `Captured` (log records, warnings, native text), filled when the
    block ends. A no-op when `wootz_keras.export` logs at DEBUG.

    Example:
        >>> with quiet_converters() as captured:
        ...     logging.getLogger("tf2onnx").warning("some converter chatter")
        >>> captured.lines()
        ['tf2onnx WARNING: some converter chatter']
    """
    captured = Captured()
    if log.isEnabledFor(logging.DEBUG):
        yield captured
        return
    with warnings.catch_warnings(record=True) as caught, \
            _loggers_captured(captured.records), _stderr_fd_captured(captured):
        warnings.simplefilter("always")
        try:
            yield captured
        finally:
            captured.warnings = list(caught)
