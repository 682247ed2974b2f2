"""Pre-trained tuning blocks: the weights of each `Block`, and their storage.

A tuning block is the planner's `Block` (first module and one rate per
module); this module only adds what pre-training produced for it: the
weights of the block's layers, keyed by layer name, and its final
teacher-student loss.
"""

import os

import numpy as np

from wootz_keras.planner.tuning_blocks import Block, block_key, cover
from wootz_keras.utils.io import atomic_path, read_document, write_document

BLOCK_FILE_VERSION = 1


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
        span = modules[block.start:block.stop]
        if len(span) != len(block.rates):
            raise ValueError(f"block {block.name} runs past the teacher's {len(modules)} modules")
        bad = [m.name for m in span if not m.composable]
        if bad:
            raise ValueError(f"block {block.name} covers module {bad[0]!r}, whose output shape "
                             "changes when pruned; it cannot be trained teacher-student (use "
                             "default pruning for it)")


class PretrainedBlocks:
    """The pre-trained weights of a set of tuning blocks of one teacher.

    `fingerprint` identifies the teacher's module structure
    (`ModuleList.fingerprint()`); `seconds` and `steps` record the
    pre-training that produced them. Iterating yields the `Block`s.

    Example:
        >>> blocks = PretrainedBlocks(fingerprint="abc")
        >>> blocks.add(Block(0, 1, (0.5,), 3), {"conv": [np.zeros((3, 3, 4, 2))]}, 0.01)
        >>> [b.name for b in blocks.cover((0.3, 0.5, 0.7))]
        ['m1-1@0.5']
        >>> blocks.weights(blocks.get(1, (0.5,)))["conv"][0].shape
        (3, 3, 4, 2)
    """

    def __init__(self, fingerprint, seconds=0.0, steps=0):
        self.fingerprint = fingerprint
        self.seconds = float(seconds)
        self.steps = int(steps)
        self._blocks, self._weights, self._losses = {}, {}, {}

    def __len__(self):
        return len(self._blocks)

    def __iter__(self):
        return iter(self._blocks.values())

    def add(self, block, weights, final_loss=None):
        """Record `block`'s weights ({layer name: [arrays]}) and final loss."""
        self._blocks[block.key] = block
        self._weights[block.key] = dict(weights)
        self._losses[block.key] = None if final_loss is None else float(final_loss)

    def get(self, start, rates):
        """The Block starting at module `start` with `rates`, or None."""
        return self._blocks.get(block_key(start, rates))

    def weights(self, block):
        """{layer name: [arrays]} of a pre-trained block."""
        return self._weights[block.key]

    def final_loss(self, block):
        """The block's teacher-student MSE at the end of pre-training."""
        return self._losses[block.key]

    def cover(self, rates):
        """The pre-trained blocks a configuration uses (the planner's `cover`)."""
        return cover(self._blocks.values(), rates)

    def save(self, directory):
        """Write `<block name>.npz` per block and the index `blocks.json`, each atomically."""
        os.makedirs(directory, exist_ok=True)
        entries = []
        for key, b in self._blocks.items():
            file = f"{b.name}.npz"
            with atomic_path(os.path.join(directory, file)) as tmp:
                arrays = {f"{layer}/{i}": w for layer, ws in self._weights[key].items()
                          for i, w in enumerate(ws)}
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
            entries.append({"id": b.id, "start": b.start, "rates": list(b.rates),
                            "frequency": b.frequency, "final_loss": self._losses[key],
                            "layers": sorted(self._weights[key]), "file": file})
        write_document(os.path.join(directory, "blocks.json"), "blocks", {
            "fingerprint": self.fingerprint, "seconds": self.seconds, "steps": self.steps,
            "blocks": entries}, version=BLOCK_FILE_VERSION)

    @classmethod
    def load(cls, directory, fingerprint=None):
        """Blocks saved by `save`; a corrupt, foreign or mismatched file is a
        ValueError naming it (`fingerprint`: the teacher's, checked when given)."""
        index_path = os.path.join(directory, "blocks.json")
        index = read_document(index_path, "blocks", BLOCK_FILE_VERSION, what="block index")
        if fingerprint and index.get("fingerprint") != fingerprint:
            raise ValueError(f"blocks in {directory!r} were pre-trained for another teacher "
                             f"(fingerprint {index.get('fingerprint')} != {fingerprint})")
        out = cls(index.get("fingerprint"), index.get("seconds", 0.0), index.get("steps", 0))
        try:
            for e in index["blocks"]:
                block = Block(e["id"], e["start"], tuple(e["rates"]), e["frequency"])
                path = os.path.join(directory, e["file"])
                out.add(block, _load_weights(path, e["layers"]), e.get("final_loss"))
        except (KeyError, TypeError) as err:
            raise ValueError(f"block index {index_path!r} is malformed: {err!r}") from None
        return out


def _load_weights(path, layers):
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile / pickle / OS errors all mean the same here
        raise ValueError(f"block file {path!r} is corrupt or unreadable: {e}") from None
    weights = {}
    for key in sorted(arrays, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        weights.setdefault(key.rsplit("/", 1)[0], []).append(arrays[key])
    if sorted(weights) != sorted(layers):
        raise ValueError(f"block file {path!r} does not match its index (layers differ)")
    return weights
