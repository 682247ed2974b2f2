"""Shared helpers of the wootz command tools: errors, flag values, models, data.

The tools stay thin: they parse flags, call these helpers and the library,
and print. Every failure ends the process with ONE line on stderr,
``wootz-<tool>: error: <reason>``, and a non-zero exit status:

- 2 for a usage error: a missing or malformed flag value, detected before
  any work is done (`UsageError`, absl flag-parsing errors, stray arguments);
- 1 for anything that fails while working: a library `ValueError`, a file
  that cannot be read, a missing dataset, any other exception.

Set ``WOOTZ_DEBUG=1`` to get the traceback (printed before the last line).

Heavy imports (TensorFlow, Keras, wootz_keras) happen inside the helpers,
so ``--helpfull`` and flag errors answer without loading TensorFlow.
"""

import ast
import functools
import inspect
import json
import logging
import os
import sys
import traceback

from absl import app, flags

FLAGS = flags.FLAGS

ZOO_NAMES = ("plain_cnn", "resnet_cifar", "tiny_inception", "tiny_mobilenet")
_PROG = ["wootz"]


class UsageError(ValueError):
    """A flag value is missing or malformed (exit status 2)."""


def one_line(message):
    """`message` with all whitespace runs (newlines included) collapsed to one space."""
    return " ".join(str(message).split())


def fail(message, code=1):
    """Print ``<prog>: error: <message>`` as one line on stderr and exit with `code`."""
    sys.stderr.flush()
    sys.stdout.flush()
    print(f"{_PROG[0]}: error: {one_line(message)}", file=sys.stderr, flush=True)
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
    try:
        return main(argv)
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


def _debug_traceback():
    if os.environ.get("WOOTZ_DEBUG"):
        traceback.print_exc()


def run_tool(main, prog, doc=None):
    """Run `main(argv)` under absl with one-line errors (the console-script body).

    `doc` (the tool's docstring) is what --help prints when the __main__
    module is a console-script wrapper without one.
    """
    _PROG[0] = prog
    main_module = sys.modules.get("__main__")
    if doc and main_module is not None and not getattr(main_module, "__doc__", None):
        main_module.__doc__ = doc
    app.run(functools.partial(_guarded, main), flags_parser=_parse_flags)


def quiet_tensorflow():
    """Keep TensorFlow's Python logger to errors (no retracing chatter)."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


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
    value = FLAGS[flag].value
    if value is None or value < minimum:
        raise UsageError(f"--{flag} must be >= {minimum}, got {value}")
    return value


def check_positive_float(flag):
    value = FLAGS[flag].value
    if not value > 0:
        raise UsageError(f"--{flag} must be positive, got {value}")
    return value


def check_rate(value, what):
    if not 0.0 <= value < 1.0:
        raise UsageError(f"{what} must be in [0, 1), got {value:g}")
    return float(value)


def parse_rate_list(text, flag):
    """``"0.3,0.5,0.7"`` -> (0.3, 0.5, 0.7), each in [0, 1)."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise UsageError(f"--{flag} is empty; give rates like 0.3,0.5,0.7")
    out = []
    for item in items:
        try:
            r = float(item)
        except ValueError:
            raise UsageError(f"--{flag}: {item!r} is not a number") from None
        out.append(check_rate(r, f"--{flag}: each rate"))
    return tuple(out)


def parse_layer_rates(text, flag="rates"):
    """``"block1_conv:0.5,block2_conv:0.3"`` -> {layer name: rate}."""
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
        out[name.strip()] = check_rate(r, f"--{flag}: rate of layer {name.strip()!r}")
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


def check_file(flag, what="file"):
    path = require(flag)
    if not os.path.isfile(path):
        raise UsageError(f"--{flag}: {what} not found: {path}")
    return path


# -- models ----------------------------------------------------------------

def _zoo_spec(text):
    """``"resnet_cifar:depth=8,width=8"`` -> ("resnet_cifar", {"depth": 8, "width": 8})."""
    name, _, rest = text.partition(":")
    kwargs = {}
    for item in (s.strip() for s in rest.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"zoo model {text!r}: {item!r} is not key=value")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return name.strip(), kwargs


def is_zoo_spec(text):
    return _zoo_spec(text)[0] in ZOO_NAMES if text else False


def build_zoo_model(text, flag="model"):
    """A fresh (untrained) zoo CNN from ``name[:key=value,...]``."""
    from wootz_keras import zoo
    name, kwargs = _zoo_spec(text)
    fn = getattr(zoo, name)
    allowed = [p for p in inspect.signature(fn).parameters if p != "input_shape"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise UsageError(f"--{flag}: zoo model {name} takes no {', '.join(unknown)}; "
                         f"it takes {', '.join(allowed)}")
    try:
        return fn(**kwargs)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--{flag}: cannot build {text!r}: {e}") from None


def check_model_spec(text, flag="model", allow_zoo=True):
    """UsageError unless `text` is a zoo name or an existing file (cheap: no TensorFlow)."""
    if not text:
        raise UsageError(f"--{flag} is required")
    if allow_zoo and is_zoo_spec(text):
        return text
    if not os.path.exists(text) and (text.endswith(".keras") or os.sep in text):
        raise UsageError(f"--{flag}: file not found: {text}")
    if not os.path.exists(text):
        zoo = f"neither a zoo model ({', '.join(ZOO_NAMES)}) nor " if allow_zoo else ""
        raise UsageError(f"--{flag}: {text!r} is {zoo}an existing .keras file")
    if os.path.isdir(text):
        raise UsageError(f"--{flag}: {text!r} is a directory; give a .keras file")
    return text


def load_model(text, flag="model", allow_zoo=True):
    """(model, from_zoo): a zoo name (``name[:key=value,...]``) or a .keras file."""
    check_model_spec(text, flag, allow_zoo)
    if allow_zoo and is_zoo_spec(text):
        return build_zoo_model(text, flag), True
    quiet_tensorflow()
    import keras
    import wootz_keras  # noqa: F401  registers the pruning wrappers
    try:
        model = keras.models.load_model(text, compile=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is bad input
        raise ValueError(f"--{flag}: cannot load {text}: {type(e).__name__}: {e}") from None
    return model, False


def ends_in_softmax(model):
    """True when the model outputs probabilities (a softmax last layer)."""
    import keras
    layer = model.layers[-1] if model.layers else None
    if isinstance(layer, keras.layers.Softmax):
        return True
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


def compile_classifier(model, learning_rate):
    """Adam + sparse categorical cross-entropy (from logits unless softmax) + accuracy."""
    import keras
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model))
    model.compile(keras.optimizers.Adam(learning_rate), loss, metrics=["accuracy"])
    return model


def save_model_atomic(model, path):
    """Save `model` to `path` (.keras) so a crash never leaves half a file."""
    from wootz_keras.utils.io import atomic_path
    with atomic_path(path) as tmp:
        model.save(tmp)


# -- data ------------------------------------------------------------------

def fashion_mnist_for(model, split, limit, seed=0, check_classes=True):
    """Real Fashion-MNIST (images, labels), resized / channel-tiled to `model`'s input."""
    import numpy as np
    from wootz_keras.data import load_fashion_mnist
    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; the tools feed "
                         "one image input")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or any(d is None for d in shape):
        raise ValueError(f"model {model.name!r} takes input {(None, *shape)}; the tools need "
                         "images (None, H, W, C) of a known size")
    if check_classes:
        classes = model.outputs[0].shape[-1]
        if classes != 10:
            raise ValueError(f"model {model.name!r} has {classes} outputs but Fashion-MNIST has "
                             "10 classes")
    x, y = load_fashion_mnist(split, limit=limit, seed=seed)
    h, w, c = (int(d) for d in shape)
    if x.shape[1:3] != (h, w):
        import tensorflow as tf
        x = tf.image.resize(x, (h, w)).numpy()
    if c != x.shape[-1]:
        x = np.repeat(x, c, axis=-1)
    return x.astype(np.float32), y


# -- planner / distribution -----------------------------------------------

def find_model_modules(model, modules_json=None):
    """The model's modules (found, or the explicit ones of --modules_json)."""
    from wootz_keras.planner import find_modules
    return find_modules(model, modules=read_modules_json(modules_json))


def explain_module_mismatch(error, names, modules_json):
    """Add a hint to a plan/model mismatch when explicit modules are involved."""
    message = str(error)
    custom = any(str(n).startswith("custom") for n in (names or ()))
    if custom and not modules_json:
        message += ("; the plan was made with explicit modules: pass the same "
                    "--modules_json as to wootz-plan")
    elif not custom and modules_json and names:
        message += "; the plan was made without --modules_json: drop it"
    return message


def make_strategy(name):
    """A tf.distribute strategy by name: default, mirrored or multiworker (TF_CONFIG)."""
    import tensorflow as tf
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise UsageError("--strategy=multiworker reads the cluster from TF_CONFIG, which is "
                             "not set")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UsageError(f"--strategy: unknown strategy {name!r}")


def is_chief():
    """Whether this process writes shared outputs (the chief, or worker 0 without one)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        cfg = json.loads(raw)
        task = cfg.get("task", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
        if "chief" in cfg.get("cluster", {}):
            return kind == "chief"
        return kind == "worker" and index == 0
    except (ValueError, TypeError, AttributeError) as e:
        raise UsageError(f"TF_CONFIG is not valid cluster JSON: {e}") from None


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
