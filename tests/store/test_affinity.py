"""Symbol affinity (KATO's per-symbol emotive sums), the same on every backend.

KATO's rule (``knowledge_base._update_symbol_affinity``): each learn with emotives adds their
per-key average to every distinct symbol of the pattern. Worked: A{joy .8}, B{joy .4} learned ->
A and B joy 0.6 (spec §8.2 item 27); then [A,B]@joy 1.0 and [B,C]@joy 2.0 -> A 1.6, B 3.6, C 2.0.
"""
from __future__ import annotations

from katoray.engine.naming import pattern_hash
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore


def learn(*events: list[str], emotives=(), count: int = 1) -> PatternDelta:
    events_list = [list(e) for e in events]
    return PatternDelta(pattern_hash(events_list), events_list, count, list(emotives))


def test_each_learn_adds_its_average_emotives_to_each_distinct_symbol(kb):
    kb.apply([learn(["A"], ["B"], emotives=[{"joy": 0.8}, {"joy": 0.4}])])
    assert kb.symbol_affinity() == {"A": {"joy": 0.8 * 0.5 + 0.4 * 0.5}, "B": {"joy": 0.8 * 0.5 + 0.4 * 0.5}}
    kb.apply([learn(["A"], ["B"], emotives=[{"joy": 1.0}]), learn(["B", "B"], ["C"], emotives=[{"joy": 2.0}]),
              learn(["C"], ["D"])], "second")
    kb.apply([learn(["A"], ["B"], emotives=[{"joy": 1.0}])], "second")   # a batch applied twice counts once
    found = kb.symbol_affinity()
    assert found == {"A": {"joy": (0.8 + 0.4) / 2 + 1.0}, "B": {"joy": (0.8 + 0.4) / 2 + (1.0 + 2.0)},
                     "C": {"joy": 2.0}}
    assert kb.symbol_affinity(["C", "D", "nowhere"]) == {"C": {"joy": 2.0}}


def test_backends_sum_in_the_same_order_and_forget_with_the_symbol(kb):
    deltas = [learn(["x"], ["y"], emotives=[{"a": 0.1}, {"b": 0.7}]), learn(["z"], ["y"], emotives=[{"a": 0.2}]),
              learn(["x"], ["y"], emotives=[{"a": 0.3}, {"a": 0.3}]), learn(["q"], ["z"], emotives=[{"b": 1e-17}])]
    reference = MemoryStore()
    for store in (kb, reference):
        store.apply(deltas)
        store.apply(deltas[1:])
    assert kb.symbol_affinity() == reference.symbol_affinity()   # floats equal bit for bit
    kb.delete_patterns([pattern_hash([["q"], ["z"]])])
    assert "q" not in kb.symbol_affinity() and "z" in kb.symbol_affinity()   # z is still held by [z, y]
    kb.clear()
    assert kb.symbol_affinity() == {}
