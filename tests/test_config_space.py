"""Configuration space: sampling, size estimates, JSON round trip, errors."""

import numpy as np
import pytest

import wootz_keras as wz
from wootz_keras import zoo
from wootz_keras.compose import assemble


@pytest.fixture(scope="module")
def teacher():
    return zoo.resnet_cifar(depth=14, width=8)


@pytest.fixture(scope="module")
def space(teacher):
    return wz.ConfigSpace(wz.find_modules(teacher), rates=(0.0, 0.3, 0.5, 0.7))


def test_estimates_match_built_networks(teacher, space):
    for config in space.sample(4, seed=3):
        net = assemble(teacher, config, modules=space.modules)
        assert config.params == net.count_params()
        assert config.flops == wz.count_flops(net)


def test_zero_rate_is_the_full_model(teacher, space):
    full = space.config([0.0] * len(space.modules))
    assert full.params == teacher.count_params()


def test_sampling_is_seeded_and_distinct(space):
    a, b = space.sample(20, seed=1), space.sample(20, seed=1)
    assert [c.rates for c in a] == [c.rates for c in b]
    assert len({c.rates for c in a}) == 20
    assert [c.rates for c in space.sample(20, seed=2)] != [c.rates for c in a]


def test_uniform_size_sampling_spreads_sizes(space):
    sizes = np.array(sorted(c.params for c in space.sample(12, seed=0, uniform_size=True)))
    plain = np.array(sorted(c.params for c in space.sample(12, seed=0)))
    # spread over the size range: the gaps are more even than plain sampling's
    assert np.std(np.diff(sizes)) < np.std(np.diff(plain))
    assert sizes[-1] - sizes[0] >= plain[-1] - plain[0] * 0.9


def test_enumerate_small_space():
    space = wz.ConfigSpace(wz.find_modules(zoo.resnet_cifar(depth=8, width=8)), rates=(0.3, 0.5))
    assert len(space.enumerate()) == space.size == 8


def test_json_round_trip_and_foreign_file(tmp_path, space):
    configs = space.sample(5, seed=0)
    path = tmp_path / "configs.json"
    space.save(path, configs)
    assert [c.rates for c in space.load(path)] == [c.rates for c in configs]
    other = wz.ConfigSpace(wz.find_modules(zoo.resnet_cifar(depth=8, width=8)))
    with pytest.raises(ValueError, match="other modules"):
        other.load(path)


def test_bad_input(space):
    with pytest.raises(ValueError, match=r"rates\[1\] must be a number in \[0, 1\), got 1.0"):
        wz.ConfigSpace(space.modules, rates=(0.3, 1.0))
    with pytest.raises(ValueError, match="has 2 rates but the model has 6 modules"):
        space.config([0.3, 0.5])
    with pytest.raises(ValueError, match=r"config\[0\] must be a number in \[0, 1\), got -0.1"):
        space.config([-0.1] * 6)
    with pytest.raises(ValueError, match="positive"):
        space.sample(0)
