"""Progress for long work that reads well in a terminal and in a log file.

On a terminal one line is redrawn in place; anywhere else (a pipe, CI, a log
file) whole lines are printed, at most one per `every` updates and always
the last one, so logs never fill with carriage returns or ANSI codes. No
Keras import: the search layer uses it too.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress(3, "explore default", unit="candidate", stream=out)
    >>> for i in range(3):
    ...     bar.update(i + 1, final=0.5 + i / 10)
    >>> bar.close()
    >>> print(out.getvalue().strip().splitlines()[-1])
    explore default: 3/3 candidates  final 0.7000
"""

import sys
import time


def is_terminal(stream=None):
    """True when `stream` (default stdout) is an interactive terminal."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def _value(v):
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


class Progress:
    """A counter from 0 to `total` with named values, printed line by line.

    every: in a log, print one line per `every` updates (and the last);
    interval: on a terminal, redraw at most every `interval` seconds.
    `verbose=False` prints nothing.
    """

    def __init__(self, total, title, unit="step", every=None, stream=None, verbose=True,
                 interval=0.2):
        self.total = int(total)
        self.title = title
        self.unit = unit
        self.stream = stream or sys.stdout
        self.verbose = bool(verbose)
        self.tty = is_terminal(self.stream)
        self.every = max(1, int(every if every is not None else max(1, self.total // 10)))
        self.interval = interval
        self._last_print = 0.0
        self._last_count = None
        self._count = 0
        self._values = {}
        self._started = time.perf_counter()
        self._open = False

    def _line(self):
        unit = self.unit + ("s" if self.total != 1 and not self.unit.endswith("s") else "")
        text = f"{self.title}: {self._count}/{self.total} {unit}"
        if self._values:
            text += "  " + "  ".join(f"{k} {_value(v)}" for k, v in self._values.items())
        return text

    def update(self, count, **values):
        """Move to `count`; `values` are shown beside it (latest value of each name)."""
        self._count = int(count)
        self._values.update(values)
        if not self.verbose:
            return
        done = self._count >= self.total
        if self.tty:
            now = time.perf_counter()
            if done or now - self._last_print >= self.interval:
                self.stream.write("\r" + self._line() + "\033[K")
                self.stream.flush()
                self._last_print = now
                self._open = True
        elif done or self._count % self.every == 0:
            self._print_line()

    def _print_line(self):
        if self._last_count == self._count:
            return
        self.stream.write(self._line() + "\n")
        self.stream.flush()
        self._last_count = self._count

    def close(self):
        """End the line (a terminal) or print the last state once (a log)."""
        if not self.verbose:
            return
        if self.tty:
            if self._open:
                self.stream.write("\r" + self._line() + "\033[K\n")
                self.stream.flush()
                self._open = False
        else:
            self._print_line()

    @property
    def seconds(self):
        return time.perf_counter() - self._started
