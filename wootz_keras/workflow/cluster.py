"""Who this process is in a TF_CONFIG cluster: the one place that reads it."""

import json
import os


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
        cfg["cluster"], cfg["task"]         # noqa: B018 - presence check
        return cfg
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"TF_CONFIG is not valid cluster JSON: {e}") from None


def worker_from_tf_config():
    """(worker index, number of workers) from TF_CONFIG, (0, 1) without it.

    Example:
        >>> import os
        >>> os.environ.pop("TF_CONFIG", None) and None
        >>> worker_from_tf_config()
        (0, 1)
    """
    cfg = _tf_config()
    if cfg is None:
        return 0, 1
    try:
        chiefs = cfg["cluster"].get("chief", [])
        workers = cfg["cluster"].get("worker", []) + chiefs
        task = cfg["task"]
        index = int(task["index"]) + (len(chiefs) if task["type"] == "worker" else 0)
        return index, max(1, len(workers))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not valid cluster JSON: {e}") from None


def is_chief():
    """Whether this process writes shared outputs (the chief, or worker 0 without one).

    Example:
        >>> import os
        >>> os.environ.pop("TF_CONFIG", None) and None
        >>> is_chief()
        True
    """
    cfg = _tf_config()
    if cfg is None:
        return True
    task = cfg.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in cfg.get("cluster", {}):
        return kind == "chief"
    return kind == "worker" and index == 0


def make_strategy(name):
    """A tf.distribute strategy by name: "default", "mirrored" or
    "multiworker" (the cluster from TF_CONFIG). Create it before any other
    TensorFlow work (MultiWorkerMirroredStrategy requires it)."""
    import tensorflow as tf
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("strategy 'multiworker' reads the cluster from TF_CONFIG, which is "
                             "not set")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored or multiworker")
