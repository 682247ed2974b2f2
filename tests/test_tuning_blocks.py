"""Tuning-block selection on config sets whose right blocks are known."""

import dataclasses
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wootz_keras.planner.tuning_blocks import Block, Plan, plan_tuning_blocks


@pytest.fixture(autouse=True)
def _seed():
    """Override conftest's Keras seeding and clear_session: no Keras here,
    and clear_session's full garbage collection dominates these fast tests."""
    yield


@dataclasses.dataclass(frozen=True)
class Config:
    rates: tuple


def unique_rates(config, modules):
    """Rates no other config has at the same module (no accidental sharing)."""
    return [round(0.01 + 0.001 * (50 * config + m), 4) for m in range(modules)]


RUN = (0.3, 0.5, 0.7, 0.7, 0.5, 0.3, 0.3, 0.5)     # modules 4..11


def configs_sharing_run(sharing, others, modules=16, start=4):
    configs = []
    for i in range(sharing + others):
        rates = unique_rates(i, modules)
        if i < sharing:
            rates[start:start + len(RUN)] = RUN
        configs.append(rates)
    return configs


def check_uses(plan, config, blocks):
    """Blocks in module order, non-overlapping, matching the config's rates."""
    stop = 0
    for b in blocks:
        assert b.start >= stop
        assert tuple(config[b.start:b.stop]) == b.rates
        stop = b.stop


def test_shared_run_is_one_block():
    configs = configs_sharing_run(sharing=5, others=3)
    plan = plan_tuning_blocks(configs)
    assert plan.blocks == [Block(id=0, start=4, rates=RUN, frequency=5)]
    assert plan.blocks[0].name == "m4-11@0.3,0.5,0.7,0.7,0.5,0.3,0.3,0.5"
    assert [len(plan.uses(i)) for i in range(8)] == [1] * 5 + [0] * 3
    assert plan.coverage.fraction == pytest.approx(5 * 8 / (8 * 16))
    assert plan.coverage.expected_reuse == 5
    assert plan.groups == [[0]]


def test_run_of_one_config_is_never_a_block():
    configs = configs_sharing_run(sharing=1, others=4)
    plan = plan_tuning_blocks(configs)
    assert plan.blocks == []
    assert all(plan.uses(i) == [] for i in range(len(configs)))
    assert plan.groups == []


def test_two_shared_runs_in_one_config():
    configs = configs_sharing_run(sharing=3, others=1, start=0)
    for c in configs[:2]:
        c[10:14] = [0.5, 0.5, 0.3, 0.3]
    plan = plan_tuning_blocks(configs)
    assert [(b.start, b.stop, b.frequency) for b in plan.blocks] == [(0, 8, 3), (10, 14, 2)]
    assert [[b.id for b in plan.uses(i)] for i in range(4)] == [[0, 1], [0, 1], [0], []]


def test_sub_run_shared_more_often_wins_over_longer_run():
    # Configs 0-1 share modules 0..7; config 2 shares only modules 0..3.
    # Grammar: X -> m0..m3 (frequency 3), W -> X m4..m7 (frequency 2).
    # W's frequency is not X's, so W is a dead end and X the only block.
    configs = configs_sharing_run(sharing=2, others=2, start=0)
    configs[2][0:4] = RUN[:4]
    plan = plan_tuning_blocks(configs)
    assert plan.blocks == [Block(id=0, start=0, rates=RUN[:4], frequency=3)]


def test_accepts_objects_with_rates_and_rounds():
    configs = configs_sharing_run(sharing=2, others=1)
    objects = [Config(tuple(c)) for c in configs]
    objects[1] = Config(tuple(r + 1e-9 for r in configs[1]))    # float noise
    assert plan_tuning_blocks(objects).blocks == plan_tuning_blocks(configs).blocks
    plan = plan_tuning_blocks(objects)
    assert plan.uses(objects[1]) == plan.uses(1) == plan.blocks
    assert plan.num_modules == 16


def test_uses_for_a_config_not_in_the_plan():
    configs = configs_sharing_run(sharing=3, others=1)
    plan = plan_tuning_blocks(configs)
    new = unique_rates(9, 16)
    new[4:12] = RUN
    assert plan.uses(new) == plan.blocks
    assert plan.uses(unique_rates(9, 16)) == []


def test_groups_respect_memory_budget():
    rng = random.Random(0)
    configs = [[rng.choice((0.3, 0.5, 0.7)) for _ in range(8)] for _ in range(200)]
    plan = plan_tuning_blocks(configs, memory_budget=10, block_cost=len)
    assert sorted(b for g in plan.groups for b in g) == list(range(len(plan.blocks)))
    assert all(sum(len(plan.blocks[b]) for b in g) <= 10 for g in plan.groups)
    assert len(plan.groups) > 1
    assert plan_tuning_blocks(configs).groups == [list(range(len(plan.blocks)))]


def test_json_round_trip(tmp_path):
    rng = random.Random(1)
    configs = [[rng.choice((0.3, 0.5, 0.7)) for _ in range(6)] for _ in range(50)]
    names = [f"block{i}" for i in range(6)]
    plan = plan_tuning_blocks(configs, module_names=names, memory_budget=6, block_cost=len)
    path = tmp_path / "plan.json"
    plan.to_json(path)
    data = json.loads(path.read_text())
    assert data["format"] == "wootz_keras.plan" and data["version"] == 1
    loaded = Plan.from_json(path)
    assert loaded.blocks == plan.blocks
    assert loaded.configs == plan.configs
    assert loaded.groups == plan.groups
    assert loaded.module_names == tuple(names)
    assert loaded.coverage == plan.coverage
    assert all(loaded.uses(i) == plan.uses(i) for i in range(50))


def test_from_json_rejects_other_files(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a wootz_keras.plan file"):
        Plan.from_json(path)
    path.write_text('{"format": "wootz_keras.plan", "version": 99}')
    with pytest.raises(ValueError, match="version 99"):
        Plan.from_json(path)
    with pytest.raises(ValueError, match="does not exist"):
        Plan.from_json(tmp_path / "missing.json")


@pytest.mark.parametrize("configs, kwargs, message", [
    ([[0.3, 0.5, 0.7], [0.3, 0.5, 1.0]], {}, r"config 1, module 2 must be a number in \[0, 1\), got 1\.0"),
    ([[0.3, -0.1, 0.7], [0.3, 0.5, 0.7]], {}, r"config 0, module 1 must be a number in \[0, 1\), got -0\.1"),
    ([[0.3, 0.5], [float("nan"), 0.5]], {}, r"config 1, module 0 must be a number in \[0, 1\), got nan"),
    ([[0.3, 0.5], [0.3, "x"]], {}, r"config 1, module 1 must be a number in \[0, 1\), got 'x'"),
    ([[0.3, 0.5], "ab"], {}, r"config 1 is not a sequence of rates"),
    ([], {}, r"at least 2 configurations, got 0"),
    ([[0.3, 0.5]], {}, r"at least 2 configurations, got 1"),
    ([[], []], {}, r"config 0 has no rates"),
    ([[0.3, 0.5, 0.7], [0.3, 0.5, 0.7], [0.3, 0.5]], {},
     r"config 2 has 2 modules, expected 3"),
    ([[0.3, 0.5], [0.3, 0.5]], {"module_names": ["a"]},
     r"module_names has 1 names for 2 modules"),
    ([[0.3, 0.5], [0.3, 0.5]], {"memory_budget": 4}, r"memory_budget and block_cost"),
    ([[0.3, 0.5], [0.3, 0.5]], {"memory_budget": 1, "block_cost": len},
     r"block m0-1@0\.3,0\.5 costs 2"),
])
def test_bad_input_names_the_culprit(configs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_tuning_blocks(configs, **kwargs)


def test_bad_uses_argument():
    plan = plan_tuning_blocks([[0.3, 0.5], [0.3, 0.5]])
    with pytest.raises(ValueError, match="config index 2 is out of range"):
        plan.uses(2)
    with pytest.raises(ValueError, match="config has 3 modules, expected 2"):
        plan.uses([0.3, 0.5, 0.7])
    with pytest.raises(ValueError, match=r"config, module 0 must be a number in \[0, 1\), got 1\.5"):
        plan.uses([1.5, 0.5])


config_sets = st.integers(1, 8).flatmap(lambda m: st.lists(
    st.lists(st.sampled_from((0.0, 0.3, 0.5, 0.7)), min_size=m, max_size=m),
    min_size=2, max_size=40))


@settings(max_examples=150, deadline=None)
@given(config_sets)
def test_plan_is_consistent(configs):
    plan = plan_tuning_blocks(configs)
    uses = [plan.uses(i) for i in range(len(configs))]
    for block in plan.blocks:
        assert block.frequency >= 2 and len(block) >= 2
        assert block.frequency == sum(u.count(block) for u in uses)
    assert [b.id for b in plan.blocks] == list(range(len(plan.blocks)))
    for config, blocks in zip(configs, uses):
        check_uses(plan, config, blocks)
        assert plan.uses(config) == plan.uses(configs.index(config))
    new = [0.3] * plan.num_modules
    check_uses(plan, new, plan.uses(new))
