"""Composability: assembly, multiplexed block pre-training, block storage (docs/method.md 4-5).

Everything runs on real Fashion-MNIST images with a tiny CIFAR-style
ResNet-8 (width 8, three residual modules) so the file stays fast on CPU.
"""

import os

import keras
import numpy as np
import pytest

from wootz_keras import data, prune_filters, strip_pruning, zoo
from wootz_keras.compose import Assembler, PretrainedBlocks, assemble, pretrain_blocks
from wootz_keras.training import Protocol, accuracy
from wootz_keras.workflow.runner import explore
from wootz_keras.planner import ConfigSpace, find_modules, plan_tuning_blocks

# Seven configurations that share three tuning blocks (m0-1@0.7,0.7,
# m1-2@0.7,0.7 and m1-2@0.5,0.7): every one of them is covered by a block.
CONFIGS = [[0.7, 0.7, 0.3], [0.7, 0.7, 0.5], [0.3, 0.7, 0.7], [0.5, 0.7, 0.7],
           [0.7, 0.7, 0.7], [0.5, 0.5, 0.7], [0.3, 0.5, 0.7]]
PRETRAIN_STEPS = 120


@pytest.fixture(scope="module")
def fashion():
    """2,000 real training images and 500 held-out test images."""
    train = data.load_fashion_mnist("train", limit=2000, seed=0)
    val = data.load_fashion_mnist("test", limit=500, seed=1)
    return train, val


@pytest.fixture(scope="module")
def teacher(fashion):
    """ResNet-8 (width 8) trained briefly (2 epochs on 2k real images)."""
    keras.utils.set_random_seed(0)
    (x, y), _ = fashion
    model = zoo.resnet_cifar(depth=8, width=8)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def modules(teacher):
    return find_modules(teacher)


@pytest.fixture(scope="module")
def plan(modules):
    return plan_tuning_blocks(CONFIGS, module_names=modules.names)


@pytest.fixture(scope="module")
def blocks(teacher, plan, modules, fashion):
    keras.utils.set_random_seed(0)
    (x, y), _ = fashion
    return pretrain_blocks(teacher, plan, data.as_dataset(x, y, 64), steps=PRETRAIN_STEPS,
                           learning_rate=2e-3, modules=modules, verbose=0)


def _layer_rates(modules, rates):
    """{conv layer: rate}, built here independently of the compose package."""
    return {name: float(r) for m, r in zip(modules, rates) for name in m.prunable_layers}


def _weights(model):
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _student_mse(teacher, modules, start, rates, images, weights=None):
    """Inference-mode MSE of one student block against the teacher's activations."""
    first, last = modules[start], modules[start + len(rates) - 1]
    src = teacher.get_layer(first.input_layer).output if first.input_layer else teacher.inputs[0]
    taps = keras.Model(teacher.inputs, [src, teacher.get_layer(last.output_layer).output])
    act_in, act_out = taps.predict(images, verbose=0)
    student = Assembler(teacher, modules).student(start, rates)
    if weights is not None:
        for layer in student.layers:
            if layer.weights:
                layer.set_weights(weights[layer.name])
    pred = student.predict(act_in, verbose=0)
    return float(np.mean((pred - act_out) ** 2))


# -- assembly without blocks = default L1 pruning -------------------------

def test_the_plan_covers_every_config(plan, modules):
    assert plan.num_modules == len(modules) == 3
    assert len(plan.blocks) >= 2
    assert all(plan.uses(i) for i in range(len(CONFIGS)))


@pytest.mark.parametrize("rates", [[0.5, 0.3, 0.7], [0.0, 0.5, 0.3], [0.7, 0.7, 0.7]])
def test_assemble_without_blocks_is_l1_pruning(teacher, modules, fashion, rates):
    _, (xv, _) = fashion
    images = xv[:64]
    net = assemble(teacher, rates, modules=modules)
    reference = strip_pruning(prune_filters(teacher, rates=_layer_rates(modules, rates)))
    np.testing.assert_allclose(net.predict(images, verbose=0),
                               reference.predict(images, verbose=0), atol=1e-6)
    params, _ = ConfigSpace(modules, rates=(0.3, 0.5, 0.7)).estimate(rates)
    assert net.count_params() == params
    assert net.count_params() < teacher.count_params()
    # the teacher itself is never modified by assembly
    assert teacher.get_layer(modules[0].prunable_layers[0]).get_weights()[0].shape[-1] == 8


def test_assemble_unpruned_config_is_the_teacher(teacher, modules, fashion):
    _, (xv, _) = fashion
    net = assemble(teacher, [0.0, 0.0, 0.0], modules=modules)
    assert net.count_params() == teacher.count_params()
    np.testing.assert_allclose(net.predict(xv[:32], verbose=0),
                               teacher.predict(xv[:32], verbose=0), atol=1e-6)


# -- multiplexed pre-training ----------------------------------------------

def test_pretrain_trains_every_block_of_the_plan(blocks, plan, modules):
    assert len(blocks) == len(plan.blocks)
    assert blocks.steps == PRETRAIN_STEPS and blocks.seconds > 0
    assert blocks.fingerprint == modules.fingerprint()
    for b in plan.blocks:
        trained = blocks.get(b.start, b.rates)
        assert trained is not None, b.name
        loss = blocks.final_loss(trained)
        assert np.isfinite(loss) and loss >= 0


def test_pretrain_reduces_every_block_mse(blocks, plan, teacher, modules, fashion):
    _, (xv, _) = fashion
    images = xv[:256]          # held-out images: never seen in pre-training
    for b in plan.blocks:
        before = _student_mse(teacher, modules, b.start, b.rates, images)
        after = _student_mse(teacher, modules, b.start, b.rates, images,
                             blocks.weights(blocks.get(b.start, b.rates)))
        assert after < 0.7 * before, (b.name, before, after)


def test_assembled_net_carries_block_weights_and_l1_weights_elsewhere(blocks, teacher,
                                                                      modules):
    rates = CONFIGS[0]                    # uses m0-1@0.7,0.7; module 2 is L1-pruned
    used = blocks.cover(rates)
    assert [(b.start, tuple(b.rates)) for b in used] == [(0, (0.7, 0.7))]
    composed = _weights(assemble(teacher, rates, blocks, modules))
    default = _weights(assemble(teacher, rates, None, modules))
    from_blocks = {name: w for b in used for name, w in blocks.weights(b).items()}
    assert set(from_blocks) <= set(composed)
    assert {modules[0].prunable_layers[0], modules[1].prunable_layers[0]} <= set(from_blocks)
    assert modules[2].prunable_layers[0] not in from_blocks
    changed = 0
    for name, ws in composed.items():
        expected = from_blocks.get(name, default[name])
        assert len(ws) == len(expected), name
        for w, e in zip(ws, expected):
            np.testing.assert_array_equal(w, e, err_msg=name)
        if name in from_blocks:
            changed += any(not np.array_equal(w, d) for w, d in zip(ws, default[name]))
    assert changed >= 2      # pre-training moved the block weights off the L1 ones


def test_init_plus_beats_init(blocks, teacher, modules, fashion):
    _, val = fashion
    full = accuracy(teacher, val)
    init = [accuracy(assemble(teacher, c, None, modules), val) for c in CONFIGS]
    init_plus = [accuracy(assemble(teacher, c, blocks, modules), val) for c in CONFIGS]
    print(f"full {full:.3f}; median init {np.median(init):.3f} -> init+ "
          f"{np.median(init_plus):.3f}")
    assert full > 0.5                   # the teacher did learn something
    assert np.median(init_plus) > np.median(init) + 0.05, (init, init_plus)


# -- storage ----------------------------------------------------------------

def test_blocks_save_load_round_trip(blocks, teacher, modules, fashion, tmp_path):
    _, (xv, _) = fashion
    blocks.save(str(tmp_path))
    loaded = PretrainedBlocks.load(str(tmp_path), fingerprint=modules.fingerprint())
    assert len(loaded) == len(blocks)
    assert loaded.fingerprint == blocks.fingerprint and loaded.steps == blocks.steps
    for b in blocks:
        c = loaded.get(b.start, b.rates)
        assert c == b
        assert loaded.final_loss(c) == pytest.approx(blocks.final_loss(b))
        assert sorted(loaded.weights(c)) == sorted(blocks.weights(b))
        for name in blocks.weights(b):
            for w, v in zip(blocks.weights(b)[name], loaded.weights(c)[name]):
                np.testing.assert_array_equal(w, v)
    rates = CONFIGS[2]
    np.testing.assert_array_equal(
        assemble(teacher, rates, blocks, modules).predict(xv[:32], verbose=0),
        assemble(teacher, rates, loaded, modules).predict(xv[:32], verbose=0))
    with pytest.raises(ValueError, match="another teacher"):
        PretrainedBlocks.load(str(tmp_path), fingerprint="0123456789ab")


# -- bad input ----------------------------------------------------------------

def test_plan_with_wrong_number_of_modules_is_refused(teacher, modules, fashion):
    (x, y), _ = fashion
    plan = plan_tuning_blocks([[0.5, 0.5, 0.3, 0.3], [0.5, 0.5, 0.7, 0.7]])
    with pytest.raises(ValueError, match=r"4 modules.*3"):
        pretrain_blocks(teacher, plan, data.as_dataset(x[:64], y[:64], 32), steps=1,
                        modules=modules, verbose=0)


def test_plan_with_wrong_module_names_is_refused(teacher, modules, fashion):
    (x, y), _ = fashion
    names = ["residual0:other_add"] + modules.names[1:]
    plan = plan_tuning_blocks(CONFIGS, module_names=names)
    with pytest.raises(ValueError, match="residual0:other_add") as err:
        pretrain_blocks(teacher, plan, data.as_dataset(x[:64], y[:64], 32), steps=1,
                        modules=modules, verbose=0)
    assert modules.names[0] in str(err.value)


def test_config_of_wrong_length_is_refused(teacher, modules):
    with pytest.raises(ValueError, match="2 rates.*3 modules"):
        assemble(teacher, [0.5, 0.5], modules=modules)


def test_corrupt_block_file_is_a_value_error_naming_it(blocks, tmp_path):
    blocks.save(str(tmp_path))
    victim = sorted(p for p in os.listdir(tmp_path) if p.endswith(".npz"))[0]
    path = os.path.join(str(tmp_path), victim)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ValueError, match="corrupt") as err:
        PretrainedBlocks.load(str(tmp_path))
    assert victim in str(err.value)


def test_explore_with_an_unreachable_objective_has_no_winner(teacher, modules, fashion,
                                                             tmp_path):
    (x, y), (xv, yv) = fashion
    # the target is 1.5 x the full accuracy: no network can reach it
    result = explore(teacher, CONFIGS[:2], (x[:256], y[:256]), (xv[:128], yv[:128]),
                     objective="smallest_params:alpha=-0.5", modules=modules,
                     journal=str(tmp_path / "j.sqlite"),
                     protocol=Protocol(max_steps=2, eval_every=2, batch_size=32), progress=False)
    assert result.winner is None
    assert result.complete and result.tried == 2
    assert "no candidate met" in result.message
