"""Atomic file writes: a crash never leaves a half-written result behind."""

import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; move it into place on success.

    Works for files and directories. On error the temporary is removed and
    `path` is left as it was.

    Example:
        >>> with atomic_path("/tmp/wz_example.txt") as tmp:
        ...     _ = open(tmp, "w").write("hello")
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    tmp_dir = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    tmp = os.path.join(tmp_dir, base)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"nothing was written to {tmp}")
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path, obj, **kwargs):
    """Write `obj` as JSON to `path` atomically.

    Example:
        >>> write_json("/tmp/wz_example.json", {"a": 1})
    """
    kwargs.setdefault("indent", 2)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, **kwargs)
            f.write("\n")


def write_text(path, text):
    """Write `text` to `path` atomically.

    Example:
        >>> write_text("/tmp/wz_example.md", "# report\\n")
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def read_json(path, what="file"):
    """Read JSON from `path`; a missing or corrupt file is a ValueError naming it.

    Example:
        >>> write_json("/tmp/wz_example_read.json", {"a": 1})
        >>> read_json("/tmp/wz_example_read.json")
        {'a': 1}
    """
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{what} {path!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path!r} is not valid JSON: {e}") from None


def write_document(path, kind, body, version=1):
    """Write a wootz_keras JSON document atomically: `body` plus its format
    ("wootz_keras.<kind>") and version, the one convention for every file
    the library saves (plans, configurations, blocks, run records).

    Example:
        >>> write_document("/tmp/wz_doc.json", "example", {"a": 1})
        >>> read_document("/tmp/wz_doc.json", "example")["a"]
        1
    """
    write_json(path, {"format": f"wootz_keras.{kind}", "version": int(version), **body})


def read_document(path, kind, version=1, what=None):
    """Read a document written by `write_document`; a missing, corrupt or
    foreign file, or a newer version, is a ValueError naming it.

    Example:
        >>> write_json("/tmp/wz_other.json", {"format": "something"})
        >>> read_document("/tmp/wz_other.json", "plan")
        Traceback (most recent call last):
        ...
        ValueError: plan '/tmp/wz_other.json' is not a wootz_keras.plan file
    """
    what = what or kind
    data = read_json(path, what)
    if not isinstance(data, dict) or data.get("format") != f"wootz_keras.{kind}":
        raise ValueError(f"{what} {path!r} is not a wootz_keras.{kind} file")
    found = data.get("version")
    if not isinstance(found, int) or found > version:
        raise ValueError(f"{what} {path!r} has version {found!r}, this reader knows version "
                         f"{version}")
    return data
