"""round_to="auto": channel counts chosen from a latency table, and the
predictions built on the same table.

Most tests use a made-up device (`measure=` a function of the channel
counts) so the choices are deterministic; the real runtimes are exercised
with tiny measurement settings, asserting only what timing cannot change.
"""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import wootz_keras as wz
from wootz_keras import zoo
from wootz_keras.compose import Assembler
from wootz_keras.graph import ChannelAnalysis
from wootz_keras.latency import (
    CACHE_ENV,
    ChannelPolicy,
    LatencyPredictor,
    LatencyTable,
    channel_policy,
    choose_count,
    latency_predictor,
    network_points,
)
from wootz_keras.latency.predict import INVOCATION
from wootz_keras.planner import ConfigSpace, find_modules
from wootz_keras.planner.config_space import estimate_size, module_group_rates
from wootz_keras.pruning import estimate_cost, prune_compact
from wootz_keras.pruning.prune import group_keep, kept_units

L = keras.layers
TINY = dict(runs=2, warmup=0, rounds=1)


def tiles(shape, cin, cout):
    """A made-up device: output channels in tiles of 16, input channels linear."""
    return 1e-3 * (1 + cin) * math.ceil(cout / 16)


@pytest.fixture
def table(tmp_path):
    return LatencyTable("onnxruntime", cache=tmp_path, measure=tiles)


@pytest.fixture(scope="module")
def resnet():
    return zoo.resnet_cifar(depth=8, input_shape=(16, 16, 3), width=24)


def conv_filters(model):
    return {l.name: l.filters for l in model.layers if isinstance(l, L.Conv2D)}


# -- the rule --------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=2, max_size=40), st.integers(1, 20),
       st.floats(0.0, 0.2))
def test_choice_is_in_the_window_and_monotone(costs, step, tolerance):
    cost = dict(enumerate(costs, start=1))
    size = len(costs)
    chosen = []
    for k in range(1, size + 1):
        window = {c: cost[c] for c in range(k, min(size, k + step) + 1)}
        c = choose_count(window, tolerance)
        assert k <= c <= min(size, k + step)
        assert cost[c] <= min(window.values()) * (1 + tolerance) + 1e-12
        chosen.append(c)
    assert chosen == sorted(chosen)          # a lower rate never keeps fewer units


def test_choice_examples():
    assert choose_count({5: 1.0, 6: 1.0, 7: 2.0}) == 6
    assert choose_count({5: 0.0, 6: 0.0}) == 5            # nothing modelled: the rate's count
    with pytest.raises(ValueError):
        choose_count({})


# -- the policy on real models -------------------------------------------------

def test_policy_keeps_the_free_channels(tmp_path, resnet):
    def both_tiled(shape, cin, cout):       # a device where both sides come in tiles of 16
        return 1e-3 * math.ceil(cin / 16) * math.ceil(cout / 16)
    a = ChannelAnalysis(resnet)
    policy = ChannelPolicy(LatencyTable("onnxruntime", cache=tmp_path, measure=both_tiled))
    rates = {g.id: 0.5 for g in a.groups if g.prunable}        # 24 -> 12, 48 -> 24, 96 -> 48
    kept = policy.kept_counts(a, rates)
    for gid, r in rates.items():
        group = a.groups[gid]
        k = kept_units(group, r)
        assert k <= kept[gid] <= min(group.size, k + policy.step)
        assert kept[gid] % 16 == 0 or kept[gid] == group.size    # tiles of 16 are free here
    rows = policy.explain(a, rates)
    assert [r["kept"] for r in rows] == [kept[g] for g in rates]
    assert all(r["kept_ms"] <= r["requested_ms"] * (1 + policy.tolerance) for r in rows)


def test_policy_is_monotone_in_the_rate(table, resnet):
    a = ChannelAnalysis(resnet)
    policy = ChannelPolicy(table, step=8)
    for g in (g for g in a.groups if g.prunable):
        kept = [policy.kept_count(a, g.id, r) for r in np.linspace(0, 0.95, 20)]
        assert kept == sorted(kept, reverse=True), (g.producers, kept)
        assert kept[0] == g.size


def test_a_group_choice_does_not_depend_on_other_groups(table, resnet):
    a = ChannelAnalysis(resnet)
    policy = ChannelPolicy(table)
    gids = [g.id for g in a.groups if g.prunable]
    alone = policy.kept_counts(a, {gids[0]: 0.6})
    together = policy.kept_counts(a, {g: 0.6 if g == gids[0] else 0.3 for g in gids})
    assert alone[gids[0]] == together[gids[0]]


def test_pruned_models_have_the_chosen_counts(table, resnet):
    a = ChannelAnalysis(resnet)
    policy = ChannelPolicy(table)
    rates = {g.id: 0.6 for g in a.groups if g.prunable}
    kept = policy.kept_counts(a, rates)
    net = prune_compact(a, group_rates=rates, round_to=policy)
    filters = conv_filters(net)
    for gid, k in kept.items():
        for name in a.groups[gid].producers:
            assert filters[name] == k
    assert estimate_cost(a, group_rates=rates, round_to=policy) == \
        (net.count_params(), wz.count_flops(net))
    masked = wz.strip_pruning(wz.prune_filters(resnet, rate=0.6, round_to=policy))
    assert conv_filters(masked) == filters
    plain = prune_compact(a, group_rates=rates)
    assert net.count_params() >= plain.count_params()      # never fewer channels


def test_grouped_layers_keep_whole_blocks(table):
    inputs = keras.Input((8, 8, 4))
    x = L.Conv2D(40, 3, padding="same", name="c1")(inputs)
    x = L.Conv2D(40, 3, padding="same", groups=2, name="g")(x)
    outputs = L.Dense(3)(L.GlobalAveragePooling2D()(x))
    a = ChannelAnalysis(keras.Model(inputs, outputs))
    policy = ChannelPolicy(table)
    group = a.group_of("c1")
    assert group.blocks is not None
    for r in (0.3, 0.55, 0.8):
        k = policy.kept_count(a, group.id, r)
        assert k % 2 == 0 and kept_units(group, r) <= k <= kept_units(group, r) + policy.step
    assert prune_compact(a, rate=0.55, round_to=policy).get_layer("c1").filters == \
        policy.kept_count(a, group.id, 0.55)


def test_assembler_and_planner_use_the_same_counts(table, resnet):
    modules = find_modules(resnet)
    policy = ChannelPolicy(table)
    assembler = Assembler(resnet, modules, round_to=policy)
    rates = (0.6, 0.4, 0.7)
    net = assembler.assemble(rates)
    assert estimate_size(modules, rates, round_to=policy) == \
        (net.count_params(), wz.count_flops(net))
    space = ConfigSpace(modules, rates=(0.4, 0.6), round_to=policy)
    assert space.config(rates).params == net.count_params()
    student = assembler.student(1, rates[1:2])
    for layer in student.layers:
        if isinstance(layer, L.Conv2D):
            assert layer.filters == net.get_layer(layer.name).filters, layer.name
    assert net.count_params() >= Assembler(resnet, modules).assemble(rates).count_params()


def test_auto_resolves_through_the_runtime(monkeypatch, tmp_path):
    """round_to="auto" measures a real table (tiny settings) in the cache folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    model = zoo.plain_cnn(input_shape=(8, 8, 1), width=4)
    import wootz_keras.latency as latency
    monkeypatch.setattr(latency, "channel_policy",
                        lambda runtime, threads=1: channel_policy(runtime, threads, **TINY))
    a = ChannelAnalysis(model)
    small = prune_compact(a, rate=0.5, round_to="auto", runtime="onnxruntime")
    kept = group_keep(a, {g.id: 0.5 for g in a.groups if g.prunable}, "auto", "onnxruntime")
    assert conv_filters(small) == {name: kept[a.group_of(name).id] for name in conv_filters(small)}
    files = list((tmp_path / "latency").iterdir())
    assert len(files) == 1 and files[0].name.startswith("onnxruntime-")
    assert estimate_cost(a, rate=0.5, round_to="auto", runtime="onnxruntime")[0] == \
        small.count_params()


def test_bad_rounding_arguments(resnet, table):
    for kwargs, fragment in ((dict(round_to="auto"), "needs runtime"),
                             (dict(round_to="fast"), "round_to must be"),
                             (dict(round_to=4, runtime="tflite"), "only used with round_to='auto'"),
                             (dict(round_to="auto", runtime="tensorrt"), "runtime must be one of"),
                             (dict(round_to=0), "round_to must be")):
        with pytest.raises(ValueError, match=fragment):
            prune_compact(resnet, rate=0.5, **kwargs)
    import tensorflow_model_optimization as tfmot
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, 10)
    with pytest.raises(ValueError, match="one-shot"):
        wz.prune_filters(resnet, rate=0.5, schedule=schedule, round_to=ChannelPolicy(table))

    class Greedy:
        def kept_counts(self, analysis, group_rates):
            return {g: analysis.groups[g].size + 1 for g in group_rates}
    with pytest.raises(ValueError, match="kept .* units of the group of 'stem_conv'"):
        prune_compact(resnet, rate=0.5, round_to=Greedy())
    with pytest.raises(ValueError, match="step"):
        ChannelPolicy(table, step=0)


# -- predictions -----------------------------------------------------------------

def test_prediction_is_the_sum_over_the_layers(table, resnet):
    a = ChannelAnalysis(resnet)
    predictor = LatencyPredictor(table)
    full = predictor.predict(a, rate=0.0)
    invocation = tiles(*INVOCATION)
    assert full == pytest.approx(invocation + sum(tiles(*p) - invocation
                                                  for p in network_points(a)))
    assert predictor.predict(a, rate=0.7) < predictor.predict(a, rate=0.3) < full
    for round_to in (1, "auto", predictor.policy):
        rates = {g.id: 0.6 for g in a.groups if g.prunable}
        net = prune_compact(a, group_rates=rates, round_to=predictor._round_to(round_to))
        assert predictor.predict(a, group_rates=rates, round_to=round_to) == \
            pytest.approx(predictor.predict_model(net))


def test_predictor_from_the_runtime(tmp_path, resnet):
    predictor = latency_predictor("onnxruntime", cache=tmp_path, **TINY)
    a = ChannelAnalysis(resnet)
    ms = predictor.predict(a, rate=0.5, round_to="auto")
    assert np.isfinite(ms) and ms > 0
    measured = predictor.table.measured
    assert predictor.predict(a, rate=0.5, round_to="auto") == ms     # a cache hit
    assert predictor.table.measured == measured
