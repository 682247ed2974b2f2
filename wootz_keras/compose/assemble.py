"""Assemble a pruned network for one configuration (WOOTZ.md step 5)."""

from wootz_keras.compose.blocks import module_rates
from wootz_keras.planner.modules import find_modules
from wootz_keras.pruning.prune import prune_compact


def config_rates(config):
    """The rate tuple of a Config, a plan entry or a plain sequence."""
    return tuple(float(r) for r in getattr(config, "rates", config))


def assemble(teacher, config, blocks=None, modules=None):
    """The compact pruned network for `config`.

    Modules covered by a pre-trained block take its weights; the rest take
    L1-pruned teacher weights. `blocks=None` gives default pruning.

    Example:
        >>> from wootz_keras import zoo
        >>> teacher = zoo.resnet_cifar(depth=8)
        >>> net = assemble(teacher, [0.5, 0.3, 0.7])
        >>> net.count_params() < teacher.count_params()
        True
    """
    modules = modules or find_modules(teacher)
    rates = config_rates(config)
    if len(rates) != len(modules):
        raise ValueError(f"config has {len(rates)} rates but the teacher has {len(modules)} "
                         f"modules ({modules.names[0]} ...)")
    net = prune_compact(teacher, rates=module_rates(modules, 0, rates))
    if blocks is not None:
        for block in blocks.cover(rates):
            for layer_name, weights in block.weights.items():
                layer = net.get_layer(layer_name)
                shapes = [tuple(w.shape) for w in layer.get_weights()]
                if shapes != [tuple(w.shape) for w in weights]:
                    raise ValueError(f"block {block.name} does not fit layer {layer_name!r}: "
                                     f"weights {[tuple(w.shape) for w in weights]} vs {shapes}")
                layer.set_weights(weights)
    return net
