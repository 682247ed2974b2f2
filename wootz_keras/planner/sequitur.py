"""Sequitur: linear-time grammar inference (Nevill-Manning & Witten, 1997).

Sequitur reads a sequence one symbol at a time and keeps a context-free
grammar that derives exactly the sequence read so far, under two invariants:

- *digram uniqueness*: no pair of adjacent symbols occurs twice in the
  grammar (overlapping occurrences such as the two "aa" in "aaa" excepted);
- *rule utility*: every rule other than the start rule is used at least twice.

The grammar is built with the classic data structures: each rule body is a
circular doubly-linked list closed by a guard node, a hash index maps each
digram to one of its occurrences, and rules keep reference counts. Work that
a change creates (new digrams to check) goes on an explicit stack instead of
recursion, so arbitrarily long inputs are safe.

Example:
    >>> print(build_grammar("abcdbcabcd"))
    R0 -> R1 R2 R1
    R1 -> a R2 d
    R2 -> b c
"""

import collections
import contextlib
import dataclasses
import functools
import gc
import itertools

__all__ = ["Grammar", "RuleRef", "build_grammar", "gc_paused"]


@dataclasses.dataclass(frozen=True)
class RuleRef:
    """A reference to rule `id` inside another rule's items.

    Example:
        >>> RuleRef(2)
        R2
    """

    id: int

    def __repr__(self):
        return f"R{self.id}"


class Grammar:
    """A straight-line grammar: rule id -> items (terminals or `RuleRef`s).

    Rule ids run from 0 (`start`) up; rules are numbered in the order they
    are first met reading the grammar breadth first from the start rule.

    Example:
        >>> g = build_grammar("abab")
        >>> g.rules
        {0: [R1, R1], 1: ['a', 'b']}
        >>> "".join(g.expand())
        'abab'
        >>> g.frequencies()
        {0: 1, 1: 2}
    """

    def __init__(self, rules, start=0):
        self.rules = rules
        self.start = start

    def __len__(self):
        return len(self.rules)

    def __iter__(self):
        """Rule ids, parents before children (topological order)."""
        return iter(self.topological_order())

    def __str__(self):
        return "\n".join(
            f"R{rid} -> " + " ".join(map(str, self.rules[rid])) for rid in sorted(self.rules))

    def children(self, rule_id):
        """Child rule id -> number of references to it in `rule_id`'s items.

        Example:
            >>> build_grammar("abcdbcabcd").children(0)
            Counter({1: 2, 2: 1})
        """
        return collections.Counter(self._children[rule_id])

    @functools.cached_property
    def _children(self):
        return {rid: collections.Counter(item.id for item in items if type(item) is RuleRef)
                for rid, items in self.rules.items()}

    def expand(self, rule_id=None):
        """The terminals `rule_id` (default: the start rule) derives.

        Iterative, so deep grammars never hit the recursion limit.

        Example:
            >>> build_grammar("aaaa").expand(1)
            ['a', 'a']
        """
        rules = self.rules
        out = []
        stack = [iter(rules[self.start if rule_id is None else rule_id])]
        while stack:
            for item in stack[-1]:
                if type(item) is RuleRef:
                    stack.append(iter(rules[item.id]))
                    break
                out.append(item)
            else:
                stack.pop()
        return out

    def topological_order(self):
        """Rule ids with every rule before the rules it references.

        Example:
            >>> build_grammar("abcdbcabcd").topological_order()
            [0, 1, 2]
        """
        children = self._children
        indegree = collections.Counter(c for kids in children.values() for c in kids)
        order = [self.start]
        for rid in order:
            for child in children[rid]:
                indegree[child] -= 1
                if not indegree[child]:
                    order.append(child)
        return order

    def frequencies(self):
        """Rule id -> occurrences of the rule in the start rule's expansion.

        One pass in topological order: a child occurs as often as each parent
        occurs, times its references in that parent.

        Example:
            >>> build_grammar("abcdbcabcd").frequencies()
            {0: 1, 1: 2, 2: 3}
        """
        freq = dict.fromkeys(self.rules, 0)
        freq[self.start] = 1
        for rid in self.topological_order():
            for child, count in self._children[rid].items():
                freq[child] += freq[rid] * count
        return freq


# Digram (u, v) has key (u << _SHIFT) + v: unique while |v| < 2**31, and an
# int hashes and compares faster than a tuple.
_SHIFT = 32


class _Sym:
    """A node of a rule body: a terminal or a rule reference.

    Terminals have `val` >= 0 (an interned code), references to rule r have
    `val` == -r. A deleted node has `next` None.
    """

    __slots__ = ("prev", "next", "val")


class _Guard(_Sym):
    """The node closing a rule body's circular list: `val` None, its `rule` id."""

    __slots__ = ("rule",)


class _Builder:
    """The mutable Sequitur state; `feed` codes, then `export` once."""

    def __init__(self):
        self.index = {}     # digram key -> first node of one live occurrence
        self.guards = []    # rule id -> guard node, None once the rule is inlined
        self.refs = []      # rule id -> number of references
        self.pending = []   # first nodes of digrams to check
        self._new_rule()

    def _new_rule(self):
        guard = _Guard()
        guard.val = None
        guard.rule = len(self.guards)
        guard.prev = guard.next = guard
        self.guards.append(guard)
        self.refs.append(0)
        return guard

    def feed(self, codes):
        """Append terminal codes (ints >= 0) to the start rule."""
        guard = self.guards[0]
        index = self.index
        for v in codes:
            last = guard.prev
            s = _Sym()
            s.val = v
            s.prev = last
            s.next = guard
            last.next = s
            guard.prev = s
            lv = last.val
            if lv is None:
                continue
            key = (lv << _SHIFT) + v
            e = index.get(key)
            if e is None:
                index[key] = last
                continue
            if e.next is not last:      # e.next is last: "aaa", overlapping, keep
                self._match(last, e, key)
                self._settle()

    def _settle(self):
        """Check pending digrams until digram uniqueness holds again."""
        pending = self.pending
        index = self.index
        while pending:
            a = pending.pop()
            b = a.next
            if b is None:
                continue
            av = a.val
            bv = b.val
            if av is None or bv is None:
                continue
            key = (av << _SHIFT) + bv
            e = index.get(key)
            if e is None:
                index[key] = a
            elif e is not a and e.next is not a and b is not e:
                self._match(a, e, key)

    def _match(self, a, e, key):
        """Replace two non-overlapping occurrences `a`, `e` of digram `key`."""
        ep = e.prev
        if ep.val is None and ep.rule and e.next.next.val is None:
            guard = ep                  # e is a whole rule (never the start): reuse it
            self._substitute(a, guard.rule)
        else:
            guard = self._new_rule()
            x = _Sym()
            y = _Sym()
            x.val = a.val
            y.val = a.next.val
            guard.next = x
            x.prev = guard
            x.next = y
            y.prev = x
            y.next = guard
            guard.prev = y
            for v in (x.val, y.val):
                if v < 0:
                    self.refs[-v] += 1
            self.index[key] = x
            self._substitute(e, guard.rule)
            self._substitute(a, guard.rule)
        # Only references inside the (re)used rule can have dropped to one use.
        first = guard.next
        second = first.next
        for sym in (first, second):
            if sym.val < 0 and self.refs[-sym.val] == 1:
                self._inline(sym)

    def _substitute(self, s, rule):
        """Replace digram `s`, `s.next` by a reference to `rule`."""
        refs = self.refs
        index = self.index
        pending = self.pending
        t = s.next
        p = s.prev
        n = t.next
        v = s.val
        w = t.val
        pv = p.val
        nv = n.val
        if pv is not None:
            key = (pv << _SHIFT) + v
            if index.get(key) is p:
                del index[key]
        key = (v << _SHIFT) + w
        if index.get(key) is s:
            del index[key]
        if nv is not None:
            key = (w << _SHIFT) + nv
            if index.get(key) is t:
                del index[key]
        if v < 0:
            refs[-v] -= 1
        if w < 0:
            refs[-w] -= 1
        r = _Sym()
        r.val = -rule
        r.prev = p
        r.next = n
        p.next = r
        n.prev = r
        refs[rule] += 1
        s.next = t.next = None
        if pv is not None:
            pending.append(p)
            if pv == v and p.prev.val == v:     # "vvv" lost its indexed half
                pending.append(p.prev)
        pending.append(r)
        if nv == w and n.next.val == w:
            pending.append(n)

    def _inline(self, u):
        """Replace `u`, the last reference to its rule, by the rule's body."""
        rule = -u.val
        guard = self.guards[rule]
        first = guard.next
        last = guard.prev
        p = u.prev
        n = u.next
        index = self.index
        if p.val is not None:
            key = (p.val << _SHIFT) + u.val
            if index.get(key) is p:
                del index[key]
        if n.val is not None:
            key = (u.val << _SHIFT) + n.val
            if index.get(key) is u:
                del index[key]
        p.next = first
        first.prev = p
        last.next = n
        n.prev = last
        u.next = guard.next = None
        self.guards[rule] = None
        self.refs[rule] = 0
        self.pending.append(p)
        self.pending.append(last)

    def export(self, terminals):
        """The `Grammar`, codes decoded with `terminals`; consumes the builder.

        Unlinks the nodes on the way, so no reference cycle outlives the build.
        """
        guards = self.guards
        new_id = {0: 0}
        order = [0]
        refs = [RuleRef(0)]
        rules = {}
        for i, old in enumerate(order):
            guard = guards[old]
            items = []
            s = guard.next
            while s is not guard:
                v = s.val
                if v >= 0:
                    items.append(terminals[v])
                else:
                    nid = new_id.get(-v)
                    if nid is None:
                        nid = new_id[-v] = len(order)
                        order.append(-v)
                        refs.append(RuleRef(nid))
                    items.append(refs[nid])
                s.prev = None
                s = s.next
            guard.prev = guard.next = None
            rules[i] = items
        self.index.clear()
        return Grammar(rules)


def build_grammar(symbols):
    """Infer the Sequitur grammar of a sequence of hashable symbols.

    Runs in time linear in `len(symbols)`. The returned grammar's start rule
    expands back to exactly `list(symbols)`.

    Example:
        >>> g = build_grammar("abcabcabc")
        >>> print(g)
        R0 -> R1 R1 R1
        R1 -> a b c
        >>> g.expand() == list("abcabcabc")
        True
    """
    codes = {}      # symbol -> code; codes are distinct, not contiguous
    builder = _Builder()
    with gc_paused():
        builder.feed(map(codes.setdefault, symbols, itertools.count()))
        return builder.export({code: symbol for symbol, code in codes.items()})


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector inside the block.

    Building a grammar allocates millions of small linked objects; letting
    the collector rescan them while they grow makes the build several times
    slower and no longer linear. Reference counting still frees memory.

    Example:
        >>> with gc_paused():
        ...     g = build_grammar("abab")
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
