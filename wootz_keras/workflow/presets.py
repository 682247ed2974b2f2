"""Settings of one pipeline run, and the presets `--scale` picks.

Every budget of a run is fixed here, before any result is seen, and is the
same for default pruning and composability: the teacher's training, the
candidate set, block pre-training, the fine-tuning protocol and the
objective.
"""

import dataclasses

from wootz_keras.training import Protocol


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything one pipeline run depends on.

    Data: `train_size` training images (None: all), of which `val_size` are
    carved off (seeded) as the validation split every decision is made on;
    `test_size` test images (None: all) measure winners, medians and the
    accuracy right after assembly. Teacher (when the run trains one): a
    CIFAR-style ResNet of `depth` / `width`, `teacher_epochs` with a cosine
    schedule. Candidates: `num_configs` configurations over `rates`, spread
    over model size; `fill`: single-module blocks for module slots no
    Sequitur block covers (ours, see `plan_tuning_blocks`). `pretrain_steps`
    of multiplexed block pre-training;
    `protocol` fine-tunes every candidate; `objective` picks the winner;
    `mode` of the main exploration ("auto", "composed" or "default");
    `compare_default` also runs default pruning side by side;
    `medians_sample` configs are fine-tuned in both modes without a target
    (to a plateau or the budget) for the final-accuracy medians.
    """
    depth: int = 14
    width: int = 16
    train_size: int = 20_000
    val_size: int = 4_000
    test_size: int = None
    teacher_epochs: int = 8
    teacher_learning_rate: float = 2e-3
    rates: tuple = (0.3, 0.5, 0.7)
    num_configs: int = 32
    uniform_size: bool = True
    fill: bool = True
    seed: int = 0
    pretrain_steps: int = 300
    pretrain_learning_rate: float = 1e-3
    batch_size: int = 64
    protocol: Protocol = Protocol(max_steps=800, eval_every=100, patience=3, screen=1000)
    objective: str = "smallest_params:alpha=0.02"
    mode: str = "auto"
    compare_default: bool = True
    medians_sample: int = 4
    init_size: int = 2_000

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["rates"] = list(self.rates)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        if isinstance(d.get("protocol"), dict):
            d["protocol"] = Protocol.from_dict(d["protocol"])
        if "rates" in d:
            d["rates"] = tuple(d["rates"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown settings {unknown}")
        return cls(**d)

    def replace(self, **changes):
        """A copy with `changes`; protocol fields may be given by name too."""
        proto_fields = {f.name for f in dataclasses.fields(Protocol)}
        proto = {k: changes.pop(k) for k in list(changes) if k in proto_fields}
        if proto:
            changes["protocol"] = dataclasses.replace(changes.get("protocol", self.protocol),
                                                      **proto)
        return dataclasses.replace(self, **changes)


SCALES = {
    # seconds: the test suite's end-to-end run
    "tiny": Settings(depth=8, width=8, train_size=2_400, val_size=400, test_size=500,
                     teacher_epochs=2, num_configs=8, pretrain_steps=30, medians_sample=2,
                     init_size=300, objective="smallest_params:alpha=0.1",
                     protocol=Protocol(max_steps=20, eval_every=10, patience=2, batch_size=32)),
    # 2 CPU cores. The regime the method is for (docs/method.md): a teacher trained to a
    # plateau (8 epochs; 0.918 on the validation split in a pilot run) and a target, 2%
    # below it, that the pilot's smallest default-pruned candidates did not reach within
    # the budget while larger ones did. Fixed before the benchmark run; benchmarks/
    # composability.py publishes the whole alpha sweep.
    "small": Settings(),
    # one GPU
    "full": Settings(depth=20, width=16, train_size=None, val_size=5_000, teacher_epochs=15,
                     num_configs=256, pretrain_steps=1_500, batch_size=128, medians_sample=12,
                     protocol=Protocol(max_steps=2_000, eval_every=100, patience=3,
                                       batch_size=128)),
}
