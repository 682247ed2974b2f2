"""Tuning blocks: student sub-networks, their pre-trained weights, and storage."""

import dataclasses
import os
import re

import keras
import numpy as np

from wootz_keras.pruning.prune import prune_compact
from wootz_keras.utils.io import atomic_path, read_json, write_json


def block_key(start, rates):
    """The identity of a tuning block: first module and its rates."""
    return (int(start), tuple(round(float(r), 4) for r in rates))


def module_rates(modules, start, rates):
    """{producer layer name: rate} for modules start .. start+len(rates)-1."""
    out = {}
    for module, r in zip(modules[start:start + len(rates)], rates):
        for name in module.prunable_layers:
            out[name] = float(r)
    return out


def check_plan_matches(modules, plan):
    """ValueError naming the mismatch when a plan was made for other modules."""
    n = getattr(plan, "num_modules", None)
    if n is not None and n != len(modules):
        raise ValueError(f"the plan covers {n} modules but the teacher has {len(modules)}")
    names = getattr(plan, "module_names", None)
    if names and list(names) != list(modules.names):
        bad = next(i for i, (a, b) in enumerate(zip(names, modules.names)) if a != b)
        raise ValueError(f"plan module {bad} is {names[bad]!r} but the teacher's is "
                         f"{modules.names[bad]!r}: the plan was made for another model")
    for block in plan.blocks:
        span = modules[block.start:block.start + len(block.rates)]
        if len(span) != len(block.rates):
            raise ValueError(f"block {block_name(block.start, block.rates)} runs past the "
                             f"teacher's {len(modules)} modules")
        bad = [m.name for m in span if not m.composable]
        if bad:
            raise ValueError(f"block {block_name(block.start, block.rates)} covers module "
                             f"{bad[0]!r}, whose output shape changes when pruned; it cannot be "
                             "trained teacher-student (use default pruning for it)")


def block_name(start, rates):
    return f"m{start}-{start + len(rates) - 1}@" + ",".join(f"{r:g}" for r in rates)


def build_student(teacher, modules, start, rates):
    """The pruned sub-network for one block, initialised by L1 pruning.

    Its input is the teacher's tensor entering module `start`, its output
    the tensor leaving the block's last module (both keep their shape).
    """
    rates_by_layer = {k: v for k, v in module_rates(modules, start, rates).items() if v > 0}
    net = prune_compact(teacher, rates=rates_by_layer) if rates_by_layer else copy_model(teacher)
    first, last = modules[start], modules[start + len(rates) - 1]
    inputs = net.get_layer(first.input_layer).output if first.input_layer else net.inputs[0]
    outputs = net.get_layer(last.output_layer).output
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", block_name(start, rates))
    return keras.Model(inputs, outputs, name=f"student_{safe}")


def copy_model(model):
    """An independent copy of `model` with the same weights."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


@dataclasses.dataclass
class TrainedBlock:
    """Weights of one pre-trained block, keyed by layer name."""
    start: int
    rates: tuple
    weights: dict
    final_loss: float = None

    @property
    def name(self):
        return block_name(self.start, self.rates)

    @property
    def stop(self):
        return self.start + len(self.rates)


class PretrainedBlocks:
    """A set of pre-trained tuning blocks, saved one file pair per block.

    Example:
        >>> blocks = PretrainedBlocks(fingerprint="abc")
        >>> len(blocks)
        0
    """

    def __init__(self, fingerprint, blocks=(), seconds=0.0, steps=0):
        self.fingerprint = fingerprint
        self.blocks = {block_key(b.start, b.rates): b for b in blocks}
        self.seconds = seconds
        self.steps = steps

    def __len__(self):
        return len(self.blocks)

    def __iter__(self):
        return iter(self.blocks.values())

    def get(self, start, rates):
        return self.blocks.get(block_key(start, rates))

    def add(self, block):
        self.blocks[block_key(block.start, block.rates)] = block

    def cover(self, rates):
        """Non-overlapping blocks for a configuration, longest first from the left."""
        rates = tuple(rates)
        by_start = {}
        for b in self.blocks.values():
            by_start.setdefault(b.start, []).append(b)
        used, i = [], 0
        while i < len(rates):
            fits = [b for b in by_start.get(i, [])
                    if block_key(0, rates[i:b.stop])[1] == block_key(0, b.rates)[1]]
            if fits:
                best = max(fits, key=lambda b: len(b.rates))
                used.append(best)
                i = best.stop
            else:
                i += 1
        return used

    def save(self, directory):
        """Write each block as `<name>.npz` + `<name>.json`, atomically."""
        os.makedirs(directory, exist_ok=True)
        for b in self.blocks.values():
            with atomic_path(os.path.join(directory, f"{b.name}.npz")) as tmp:
                arrays = {f"{layer}/{i}": w for layer, ws in b.weights.items()
                          for i, w in enumerate(ws)}
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
            write_json(os.path.join(directory, f"{b.name}.json"),
                       {"format": "wootz-block/1", "start": b.start, "rates": list(b.rates),
                        "layers": sorted(b.weights), "final_loss": b.final_loss})
        write_json(os.path.join(directory, "blocks.json"),
                   {"format": "wootz-blocks/1", "fingerprint": self.fingerprint,
                    "seconds": self.seconds, "steps": self.steps,
                    "blocks": [b.name for b in self.blocks.values()]})

    @classmethod
    def load(cls, directory, fingerprint=None):
        """Load blocks saved by `save`; a corrupt or foreign file is a ValueError naming it."""
        index = read_json(os.path.join(directory, "blocks.json"), "block index")
        if index.get("format") != "wootz-blocks/1":
            raise ValueError(f"{directory!r} does not hold wootz blocks")
        if fingerprint and index["fingerprint"] != fingerprint:
            raise ValueError(f"blocks in {directory!r} were pre-trained for another teacher "
                             f"(fingerprint {index['fingerprint']} != {fingerprint})")
        out = cls(index["fingerprint"], seconds=index.get("seconds", 0.0),
                  steps=index.get("steps", 0))
        for name in index["blocks"]:
            spec_path = os.path.join(directory, f"{name}.json")
            spec = read_json(spec_path, "block spec")
            out.add(TrainedBlock(spec["start"], tuple(spec["rates"]),
                                 _load_weights(os.path.join(directory, f"{name}.npz"), spec),
                                 spec.get("final_loss")))
        return out


def _load_weights(path, spec):
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile / pickle / OS errors all mean the same here
        raise ValueError(f"block file {path!r} is corrupt or unreadable: {e}") from None
    weights = {}
    for key in sorted(arrays, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        layer = key.rsplit("/", 1)[0]
        weights.setdefault(layer, []).append(arrays[key])
    if sorted(weights) != sorted(spec["layers"]):
        raise ValueError(f"block file {path!r} does not match its spec (layers differ)")
    return weights
