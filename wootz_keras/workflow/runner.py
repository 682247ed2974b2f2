"""`explore`: assemble, fine-tune and measure candidate networks under an
objective, journaled and sharded (WOOTZ.md steps 6-7)."""

import json
import os

import keras
import numpy as np

from wootz_keras.compose.assemble import assemble, config_rates
from wootz_keras.search.objectives import Candidate
from wootz_keras.search.exploration import explore_candidates, wait_for_others
from wootz_keras.planner.config_space import ConfigSpace
from wootz_keras.planner.modules import find_modules
from wootz_keras.training import accuracy, finetune


def worker_from_tf_config():
    """(worker index, number of workers) from TF_CONFIG, (0, 1) without it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0, 1
    try:
        cfg = json.loads(raw)
        workers = cfg["cluster"].get("worker", []) + cfg["cluster"].get("chief", [])
        task = cfg["task"]
        index = task["index"] + (len(cfg["cluster"].get("chief", []))
                                 if task["type"] == "worker" else 0)
        return int(index), max(1, len(workers))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"TF_CONFIG is not valid cluster JSON: {e}") from None


def make_candidates(teacher, configs, modules=None):
    """Candidates (index, rates, estimated params / FLOPs) for configs."""
    modules = modules or find_modules(teacher)
    space = ConfigSpace(modules, rates=(0.5,))
    out = []
    for i, config in enumerate(configs):
        rates = config_rates(config)
        if len(rates) != len(modules):
            raise ValueError(f"config {i} has {len(rates)} rates but the teacher has "
                             f"{len(modules)} modules")
        params, flops = space.estimate(rates)
        out.append(Candidate(i, rates, params, flops))
    return out


def explore(teacher, configs, train, val, objective="smallest_params:alpha=0.01", blocks=None,
            journal="explore.sqlite", finetune_steps=100, learning_rate=1e-3, batch_size=64,
            full_accuracy=None, worker_index=None, num_workers=None, modules=None,
            progress=True, wait=True, seed=0):
    """Explore `configs` under `objective`: the first candidate (in the
    objective's order) that meets it wins.

    blocks: PretrainedBlocks for composability ("composed" mode), None for
    default L1 pruning ("default" mode). Every finished candidate is written
    to the SQLite `journal`, so a killed run resumes where it stopped; with
    several workers (TF_CONFIG or worker_index/num_workers) worker i takes
    ordered positions i, i+p, ... and all return the winner one worker would.

    Example:
        >>> from wootz_keras import zoo, data
        >>> import tempfile, os
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> train = data.load_fashion_mnist("train", limit=256)
        >>> val = data.load_fashion_mnist("test", limit=128)
        >>> result = explore(teacher, [[0.5, 0.5, 0.5]], train, val, finetune_steps=2,
        ...                  journal=os.path.join(tempfile.mkdtemp(), "j.sqlite"), progress=False)
    """
    modules = modules or find_modules(teacher)
    candidates = make_candidates(teacher, configs, modules)
    if full_accuracy is None:
        full_accuracy = accuracy(teacher, val)
    if worker_index is None or num_workers is None:
        worker_index, num_workers = worker_from_tf_config()
    mode = "default" if blocks is None else "composed"
    settings = {"finetune_steps": finetune_steps, "learning_rate": learning_rate,
                "batch_size": batch_size, "seed": seed, "val_size": len(val[1])}

    def evaluate(candidate):
        net = assemble(teacher, candidate.rates, blocks, modules)
        init = accuracy(net, val)
        finetune(net, train, finetune_steps, learning_rate, batch_size, seed + candidate.index)
        return {"init_accuracy": init, "final_accuracy": accuracy(net, val)}

    result = explore_candidates(candidates, evaluate, objective, full_accuracy, journal, mode,
                                worker_index=worker_index, num_workers=num_workers,
                                progress=progress, settings=settings)
    if wait and not result.complete and num_workers > 1:
        result = wait_for_others(candidates, objective, full_accuracy, journal, mode)
    return result


def init_accuracies(teacher, configs, val, blocks=None, modules=None):
    """Accuracy right after assembly (no fine-tuning) for every config."""
    modules = modules or find_modules(teacher)
    bar = keras.utils.Progbar(len(configs), verbose=1)
    out = []
    for i, c in enumerate(configs):
        out.append(accuracy(assemble(teacher, c, blocks, modules), val))
        bar.update(i + 1)
    return out
