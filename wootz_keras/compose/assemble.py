"""Pruned networks of one teacher: candidates (docs/method.md step 5) and students.

An `Assembler` is made once per teacher: it holds the teacher's modules and
their channel analysis, so every candidate and every student block after
the first costs only the filter selection and the rebuild.
"""

import re

import keras

from wootz_keras.planner.config_space import module_group_rates
from wootz_keras.planner.modules import find_modules
from wootz_keras.pruning.prune import prune_compact, resolve_round_to
from wootz_keras.utils.rates import check_rates


def copy_model(model):
    """An independent copy of `model` with the same weights."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


class Assembler:
    """Builds the pruned networks of one teacher.

    round_to / runtime: channel rounding of every network it builds, as for
    `prune_compact` (an int, or "auto" with runtime="tflite" | "onnxruntime":
    the counts the runtime runs fastest, from its measured latency table;
    a group's count depends on its own rate only, so pre-trained blocks fit
    every candidate they cover).

    Example:
        >>> from wootz_keras import zoo
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> assembler = Assembler(teacher)
        >>> net = assembler.assemble([0.5, 0.3, 0.7])
        >>> net.count_params() < teacher.count_params()
        True
        >>> assembler.student(1, (0.5, 0.5)).name
        'student_m1-2_0.5_0.5'
    """

    def __init__(self, teacher, modules=None, round_to=1, runtime=None):
        self.teacher = teacher
        self.modules = modules if modules is not None else find_modules(teacher)
        # resolved once ("auto" -> the runtime's channel policy, its table
        # loaded once): every candidate and student keeps the same counts
        self.round_to = resolve_round_to(round_to, runtime)

    def group_rates(self, start, rates):
        """{dependency group id: rate} for modules start .. start + len(rates) - 1."""
        return module_group_rates(self.modules, rates, start)

    def check_config(self, config):
        """The rate tuple of a Config / plan entry / sequence, checked against the modules."""
        rates = check_rates(getattr(config, "rates", config), "config")
        if len(rates) != len(self.modules):
            raise ValueError(f"config has {len(rates)} rates but the teacher has "
                             f"{len(self.modules)} modules ({self.modules.names[0]} ...)")
        return rates

    def _pruned(self, group_rates):
        group_rates = {g: r for g, r in group_rates.items() if r > 0}
        if not group_rates:
            return copy_model(self.teacher)
        # the teacher's analysis (and its L1 scores, cached on it) serve every candidate
        return prune_compact(self.modules.analysis, group_rates=group_rates,
                             round_to=self.round_to)

    def assemble(self, config, blocks=None):
        """The compact pruned network for `config`: modules covered by a
        pre-trained block take its weights, the rest L1-pruned teacher
        weights (`blocks=None`: default pruning)."""
        rates = self.check_config(config)
        net = self._pruned(self.group_rates(0, rates))
        if blocks is not None:
            for block in blocks.cover(rates):
                for layer_name, weights in blocks.weights(block).items():
                    layer = net.get_layer(layer_name)
                    shapes = [tuple(w.shape) for w in layer.get_weights()]
                    if shapes != [tuple(w.shape) for w in weights]:
                        raise ValueError(f"block {block.name} does not fit layer {layer_name!r}: "
                                         f"weights {[tuple(w.shape) for w in weights]} vs {shapes}")
                    layer.set_weights(weights)
        return net

    def student(self, start, rates):
        """The pruned sub-network of one block, initialised by L1 pruning: its
        input is the teacher's tensor entering module `start`, its output the
        tensor leaving the block's last module (both keep their shape)."""
        net = self._pruned(self.group_rates(start, rates))
        first, last = self.modules[start], self.modules[start + len(rates) - 1]
        inputs = net.get_layer(first.input_layer).output if first.input_layer else net.inputs[0]
        outputs = net.get_layer(last.output_layer).output
        name = f"m{start}-{start + len(rates) - 1}_" + "_".join(f"{r:g}" for r in rates)
        return keras.Model(inputs, outputs, name="student_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name))


def assemble(teacher, config, blocks=None, modules=None, round_to=1, runtime=None):
    """The compact pruned network for `config` (see `Assembler.assemble`;
    round_to / runtime as for `Assembler`).

    For many candidates of one teacher, make one `Assembler` instead.

    Example:
        >>> from wootz_keras import zoo
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> net = assemble(teacher, [0.5, 0.3, 0.7])
        >>> net.count_params() < teacher.count_params()
        True
    """
    return Assembler(teacher, modules, round_to, runtime).assemble(config, blocks)
