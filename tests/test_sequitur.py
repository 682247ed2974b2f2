"""Sequitur: classic examples and the grammar invariants as properties."""

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wootz_keras.planner.sequitur import Grammar, RuleRef, build_grammar


@pytest.fixture(autouse=True)
def _seed():
    """Override conftest's Keras seeding and clear_session: no Keras here,
    and clear_session's full garbage collection dominates these fast tests."""
    yield


def digram_violations(grammar):
    """Digrams occurring twice without overlapping (must be none)."""
    where = collections.defaultdict(list)
    for rid, items in grammar.rules.items():
        for i in range(len(items) - 1):
            where[(items[i], items[i + 1])].append((rid, i))
    bad = set()
    for digram, places in where.items():
        rule, first = places[0]
        # Allowed: one place, or two overlapping ones ("aaa").
        if places[1:] not in ([], [(rule, first + 1)]):
            bad.add(digram)
    return bad


def reference_counts(grammar):
    return collections.Counter(
        item.id for items in grammar.rules.values() for item in items
        if type(item) is RuleRef)


def brute_force_frequencies(grammar):
    """Rule occurrences in the start rule's derivation tree, by walking it."""
    freq = collections.Counter({grammar.start: 1})
    stack = [grammar.start]
    while stack:
        for item in grammar.rules[stack.pop()]:
            if type(item) is RuleRef:
                freq[item.id] += 1
                stack.append(item.id)
    return dict(freq)


def check_invariants(seq):
    grammar = build_grammar(seq)
    assert grammar.expand() == list(seq)
    assert digram_violations(grammar) == set()
    refs = reference_counts(grammar)
    for rid, items in grammar.rules.items():
        if rid != grammar.start:
            assert refs[rid] >= 2, f"rule R{rid} used {refs[rid]} time(s)\n{grammar}"
            assert len(items) >= 2, f"rule R{rid} is too short\n{grammar}"
    return grammar


@pytest.mark.parametrize("text, expected", [
    # The paper's examples (Nevill-Manning & Witten 1997, Fig. 1).
    ("abcdbc", "R0 -> a R1 d R1\nR1 -> b c"),
    ("abcdbcabcd", "R0 -> R1 R2 R1\nR1 -> a R2 d\nR2 -> b c"),
    ("abcdbcabcdbc", "R0 -> R1 R1\nR1 -> a R2 d R2\nR2 -> b c"),
    # Rule reuse, then the shorter rule inlined when it drops to one use.
    ("abcabcabc", "R0 -> R1 R1 R1\nR1 -> a b c"),
    # Overlapping digrams: "aaa" holds "aa" twice, overlapping, so no rule.
    ("aaa", "R0 -> a a a"),
    ("aaaa", "R0 -> R1 R1\nR1 -> a a"),
    ("aaaaa", "R0 -> R1 R1 a\nR1 -> a a"),
    ("abababab", "R0 -> R1 R1\nR1 -> R2 R2\nR2 -> a b"),
    ("abcd", "R0 -> a b c d"),
    ("", "R0 -> "),
])
def test_classic_strings(text, expected):
    grammar = check_invariants(text)
    assert str(grammar) == expected


def test_violation_checker_flags_repeats():
    assert digram_violations(Grammar({0: ["a", "b", "a", "b"]})) == {("a", "b")}
    assert digram_violations(Grammar({0: ["a", "a", "a", "a"]})) == {("a", "a")}
    assert digram_violations(Grammar({0: ["a", "b"], 1: ["a", "b"]})) == {("a", "b")}
    assert digram_violations(Grammar({0: ["a", "a", "a"]})) == set()


def test_any_hashable_symbols():
    seq = [(0, 0.3), (1, 0.5), "end", (0, 0.3), (1, 0.5), 7]
    grammar = check_invariants(seq)
    assert grammar.rules[1] == [(0, 0.3), (1, 0.5)]
    assert grammar.frequencies() == {0: 1, 1: 2}


def test_frequencies_and_topological_order():
    grammar = build_grammar("abcdbcabcd")
    assert grammar.frequencies() == {0: 1, 1: 2, 2: 3}
    assert grammar.children(1) == {2: 1}
    order = grammar.topological_order()
    assert order == list(grammar) == [0, 1, 2]


def test_expand_is_iterative():
    depth = 5000
    rules = {i: [RuleRef(i + 1), "x"] for i in range(depth)}
    rules[depth] = ["a", "b"]
    grammar = Grammar(rules)
    assert grammar.expand() == ["a", "b"] + ["x"] * depth
    assert grammar.expand(depth - 1) == ["a", "b", "x"]


def test_long_periodic_input():
    seq = "abcab" * 2000 + "x" + "abcab" * 1000
    grammar = check_invariants(seq)
    assert len(grammar.rules) < 40


sequences = st.one_of(
    st.lists(st.integers(0, 1), max_size=120),
    st.lists(st.integers(0, 3), max_size=200),
    st.text(alphabet="abc", max_size=200),
    # Runs of one symbol stress the overlapping-digram corner cases.
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(1, 7)), max_size=30).map(
        lambda runs: "".join(c * n for c, n in runs)),
)


@settings(max_examples=400, deadline=None)
@given(sequences)
def test_invariants_hold(seq):
    check_invariants(seq)


@settings(max_examples=200, deadline=None)
@given(sequences)
def test_frequencies_count_derivation_occurrences(seq):
    grammar = build_grammar(seq)
    assert grammar.frequencies() == brute_force_frequencies(grammar)
    order = grammar.topological_order()
    position = {rid: i for i, rid in enumerate(order)}
    assert sorted(order) == sorted(grammar.rules)
    for rid in grammar.rules:
        for child in grammar.children(rid):
            assert position[rid] < position[child]
