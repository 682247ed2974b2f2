"""What every wootz command tool shares: one error style, quiet logs, flag checks.

Each tool (tools/*.py) defines its absl flags and a `main(argv)` that calls
the library, then `run_tool(main, "wootz-<tool>", __doc__)`. Every failure
ends the process with ONE line on stderr, ``wootz-<tool>: error: <reason>``,
and a non-zero exit status:

- 2 for a usage error: a missing or malformed flag value, detected before
  any work is done (`UsageError`, absl flag-parsing errors, stray arguments);
- 1 for anything that fails while working (a library `ValueError`, a file
  that cannot be read, a missing dataset, any other exception).

TensorFlow's and the converters' start-up and progress chatter is kept off
the console unless ``--verbose`` is given (``WOOTZ_DEBUG=1`` also prints the
traceback of a failure).

Example:
    >>> table(["model", "params"], [["resnet8", "78,426"]])
    'model    params\\n-------  ------\\nresnet8  78,426'
"""

import functools
import json
import os
import sys
import traceback

from absl import app, flags

from wootz_keras.utils import native_logs

FLAGS = flags.FLAGS
flags.DEFINE_bool("verbose", False, "Show TensorFlow's and the converters' own log output.")

_PROG = ["wootz"]

class UsageError(ValueError):
    """A flag value is missing or malformed (exit status 2)."""


def one_line(message):
    """`message` with all whitespace runs (newlines included) collapsed to one space.

    Example:
        >>> one_line("a\\n  b")
        'a b'
    """
    return " ".join(str(message).split())


def fail(message, code=1):
    """Print ``<prog>: error: <message>`` as one line on stderr and exit with `code`."""
    sys.stdout.flush()
    print(f"{_PROG[0]}: error: {one_line(message)}", file=sys.stderr, flush=True)
    native_logs.stop()
    sys.exit(code)


def _parse_flags(argv):
    """absl's flag parsing, but a bad flag is one line and exit status 2."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        fail(f"{e} (see --helpfull)", 2)


def _guarded(main, argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])} (flags look like --name=value)", 2)
    if FLAGS.verbose:
        native_logs.stop()
    else:
        native_logs.quiet()
    try:
        code = main(argv)
    except UsageError as e:
        _debug_traceback()
        fail(e, 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except (ValueError, OSError) as e:  # library errors, unreadable files, missing datasets
        _debug_traceback()
        fail(e, 1)
    except Exception as e:  # noqa: BLE001 - anything else still gets a one-line reason
        _debug_traceback()
        fail(f"{type(e).__name__}: {e}", 1)
    native_logs.stop()
    return code


def _debug_traceback():
    if os.environ.get("WOOTZ_DEBUG"):
        traceback.print_exc()


def run_tool(main, prog, doc=None):
    """Run `main(argv)` under absl with one-line errors (a console script's body).

    `doc` (the tool's docstring) is what --help prints when the __main__
    module is a console-script wrapper without one.
    """
    _PROG[0] = prog
    main_module = sys.modules.get("__main__")
    if doc and main_module is not None and not getattr(main_module, "__doc__", None):
        main_module.__doc__ = doc
    app.run(functools.partial(_guarded, main), flags_parser=_parse_flags)


def progress_verbose():
    """Keras `verbose` for progress: live bars on a terminal, one line per epoch in logs."""
    return 1 if getattr(sys.stdout, "isatty", lambda: False)() else 2


# -- flag values -----------------------------------------------------------

def require(flag):
    """The value of a required string flag, or a UsageError naming it."""
    value = FLAGS[flag].value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UsageError(f"--{flag} is required")
    return value


def check_at_least(flag, minimum):
    """The flag's value, or a UsageError unless it is >= `minimum`."""
    value = FLAGS[flag].value
    if value is None or value < minimum:
        raise UsageError(f"--{flag} must be >= {minimum}, got {value}")
    return value


def check_positive_float(flag):
    """The flag's value, or a UsageError unless it is > 0."""
    value = FLAGS[flag].value
    if not value > 0:
        raise UsageError(f"--{flag} must be positive, got {value}")
    return value


def check_file(flag, what="file"):
    """The path in a required flag, or a UsageError unless the file exists."""
    path = require(flag)
    if not os.path.isfile(path):
        raise UsageError(f"--{flag}: {what} not found: {path}")
    return path


def check_new_dir(flag, marker=None):
    """A folder flag that is new, or already holds `marker` (a file name)."""
    path = require(flag)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--{flag}: {path!r} exists and is not a folder")
    if marker and os.path.isdir(path) and os.listdir(path) and \
            not os.path.exists(os.path.join(path, marker)):
        raise UsageError(f"--{flag}: {path!r} holds other files (no {marker}); choose a new "
                         "folder")
    return path


def parse_rate_list(text, flag):
    """``"0.3,0.5,0.7"`` -> (0.3, 0.5, 0.7), each in [0, 1).

    Example:
        >>> parse_rate_list("0.3, 0.5", "rates")
        (0.3, 0.5)
    """
    from wootz_keras.utils.rates import check_rate
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise UsageError(f"--{flag} is empty; give rates like 0.3,0.5,0.7")
    out = []
    for item in items:
        try:
            out.append(check_rate(float(item), f"--{flag}: each rate"))
        except ValueError as e:
            raise UsageError(f"--{flag}: {item!r} is not a rate in [0, 1)"
                             if "could not convert" in str(e) else str(e)) from None
    return tuple(out)


def parse_layer_rates(text, flag="rates"):
    """``"block1_conv:0.5,block2_conv:0.3"`` -> {layer name: rate}.

    Example:
        >>> parse_layer_rates("conv1:0.5")
        {'conv1': 0.5}
    """
    from wootz_keras.utils.rates import check_rate
    out = {}
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        name, sep, value = item.rpartition(":")
        if not sep or not name.strip():
            raise UsageError(f"--{flag}: {item!r} is not layer:rate")
        try:
            r = float(value)
        except ValueError:
            raise UsageError(f"--{flag}: rate {value!r} of layer {name!r} is not a number"
                             ) from None
        try:
            out[name.strip()] = check_rate(r, f"--{flag}: rate of layer {name.strip()!r}")
        except ValueError as e:
            raise UsageError(str(e)) from None
    if not out:
        raise UsageError(f"--{flag} is empty; give layer:rate pairs like block1_conv:0.5")
    return out


def read_modules_json(value, flag="modules_json"):
    """Explicit modules: a JSON list of lists of layer names, inline or in a file."""
    if value is None:
        return None
    text = value.strip()
    if not text.startswith("["):
        if not os.path.isfile(text):
            raise UsageError(f"--{flag}: {value!r} is neither a JSON list nor an existing file")
        with open(text) as f:
            text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--{flag}: not valid JSON: {e}") from None
    if not (isinstance(data, list) and data and all(
            isinstance(m, list) and all(isinstance(n, str) for n in m) for m in data)):
        raise UsageError(f"--{flag}: expected a non-empty JSON list of lists of layer names, "
                         f"e.g. [[\"conv1\", \"bn1\"], [\"conv2\"]]")
    return data


def parse_objective(text, flag="objective"):
    """The objective of a flag, or a UsageError naming it."""
    from wootz_keras.search.objectives import parse_objective as parse
    try:
        return parse(text)
    except ValueError as e:
        raise UsageError(f"--{flag}: {e}") from None


# -- data and models ---------------------------------------------------------

DATA_HELP = ("fashion_mnist (built in), a folder of class sub-folders of images, an .npz file "
             "with x_train, y_train (and optionally x_test, y_test), or a folder written by "
             "tf.data.Dataset.save of (x, y) elements. Images are fed as Keras loads them "
             "(folders give float 0-255, fashion_mnist 0-1): preprocessing belongs in the "
             "model, e.g. a keras.layers.Rescaling(1/255) first layer. Without a test split, "
             "--test_fraction of the data (seeded) becomes one.")


def define_data_flags():
    """--data, --image_size, --test_fraction, --loss, --metric (tools that train)."""
    flags.DEFINE_string("data", "fashion_mnist", DATA_HELP)
    flags.DEFINE_string("image_size", None, "Resize images to HxW (e.g. 32x32); default: the "
                        "model's input size.")
    flags.DEFINE_float("test_fraction", 0.2, "Share of the data taken as the test split when "
                       "it has none (seeded).")
    flags.DEFINE_string("loss", None, "Loss for fine-tuning when the model is not compiled "
                        "with one (any Keras loss name); default sparse or categorical "
                        "cross-entropy.")
    flags.DEFINE_string("metric", None, "Metric the objective's 'accuracy' means when the model "
                        "is not compiled with one (any Keras metric name, higher is better, "
                        "e.g. accuracy, top_k_categorical_accuracy); default accuracy.")


def check_data_flags():
    """Cheap checks of the data flags (no TensorFlow): (spec, image size or None)."""
    spec = require("data")
    if spec != "fashion_mnist" and not os.path.exists(spec):
        raise UsageError(f"--data: {spec!r} is neither fashion_mnist nor an existing file or "
                         "folder")
    size = None
    if FLAGS.image_size:
        try:
            h, w = (int(v) for v in FLAGS.image_size.lower().replace(",", "x").split("x"))
            if h < 1 or w < 1:
                raise ValueError
        except ValueError:
            raise UsageError(f"--image_size: {FLAGS.image_size!r} is not HxW, e.g. 32x32") from None
        size = (h, w)
    if not 0.0 < FLAGS.test_fraction < 1.0:
        raise UsageError(f"--test_fraction must be in (0, 1), got {FLAGS.test_fraction}")
    return spec, size


def check_model_flag(flag="model", allow_zoo=True):
    """UsageError unless the flag names a zoo CNN or an existing .keras / .h5 file."""
    from wootz_keras.zoo.models import NAMES, is_spec
    text = require(flag)
    if allow_zoo and is_spec(text):
        return text
    if not os.path.isfile(text):
        zoo = f"a zoo model ({', '.join(NAMES)}) or " if allow_zoo else ""
        raise UsageError(f"--{flag}: {text!r} is not {zoo}an existing .keras or .h5 file")
    return text


def load_model_flag(flag="model", allow_zoo=True, **zoo_defaults):
    """(model, from_zoo) for a model flag (see `check_model_flag`)."""
    from wootz_keras import zoo
    from wootz_keras.data import load_model
    text = check_model_flag(flag, allow_zoo)
    if allow_zoo and zoo.is_spec(text):
        try:
            return zoo.from_spec(text, **zoo_defaults), True
        except ValueError as e:
            raise UsageError(f"--{flag}: {e}") from None
    return load_model(text, what=f"--{flag}"), False


# -- printing --------------------------------------------------------------

def table(headers, rows, align=None):
    """Rows as a plain-text table; `align` is a string of 'l'/'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def fmt(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(row, widths, align)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)
