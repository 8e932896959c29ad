"""The id view (``symbol_index``) of MemoryStore and SQLite says what their records say, and
MemoryStore's stays valid under writes."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.engine.naming import pattern_hash
from katoray.store.base import DeltaColumns, IndexedKnowledgeBase, PatternDelta, symbol_index
from katoray.store.memory import MemoryStore
from katoray.store.sqlite import SqliteStore

SYMBOLS = ["a", "b", "c", "Ġthe", "é", ""]


def delta(*events: list[str], count: int = 1) -> PatternDelta:
    events_list = [list(e) for e in events]
    return PatternDelta(pattern_hash(events_list), events_list, count)


def assert_index_matches_records(kb: MemoryStore, symbols=SYMBOLS) -> None:
    index = symbol_index(kb, symbols)
    symbol_of = {i: s for s, i in zip(symbols, index.symbol_ids) if i >= 0}
    records = {r.name: r for r in kb.iter_patterns()}
    for symbol, ids in zip(symbols, index.postings):
        assert sorted(index.names[i] for i in ids.tolist()) == sorted(kb.patterns_with_any([symbol]))
        assert list(ids) == sorted(set(ids.tolist()))  # ascending, one entry per pattern
    live = [i for i, name in enumerate(index.names) if name is not None]
    assert sorted(index.names[i] for i in live) == sorted(records)
    for i in live:
        record = records[index.names[i]]
        flat = [s for e in record.pattern_data for s in e]
        row = index.flat[index.offsets[i]:index.offsets[i] + index.lengths[i]].tolist()
        assert [symbol_of.get(symbol_id, "?") for symbol_id in row] == [s if s in symbols else "?" for s in flat]
        assert index.lengths[i] == record.length
        assert index.single_symbol_events[i] == all(len(e) == 1 for e in record.pattern_data)
    lengths, single = index.lengths, index.single_symbol_events  # every row, deleted ones too
    assert index.length_range == ((int(lengths.min()), int(lengths.max())) if len(lengths) else (0, 0))
    assert index.event_kinds == (not single.all(), bool(single.any()))
    by_key = sorted(live, key=lambda i: int(index.name_keys[i]))
    for a, b in zip(by_key, by_key[1:]):  # a smaller key is a smaller name
        assert index.name_keys[a] == index.name_keys[b] or index.names[a] < index.names[b]


EVENTS = st.lists(st.lists(st.sampled_from(SYMBOLS + ["z"]), max_size=3), min_size=1, max_size=4)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(EVENTS, st.integers(1, 3)), max_size=8), min_size=1, max_size=4),
       deleted=st.sets(st.integers(0, 31), max_size=8), look_between=st.booleans())
def test_index_matches_records_after_learns_and_deletes(backend, batches, deleted, look_between):
    with tempfile.TemporaryDirectory() as tmp:
        kb = MemoryStore("index_kato") if backend == "memory" else SqliteStore(Path(tmp) / "kb.sqlite", "index_kato")
        try:
            learned = []
            for batch in batches:
                deltas = [delta(*events, count=count) for events, count in batch]
                kb.apply(deltas)
                learned += [d.name for d in deltas]
                if look_between:   # SQLite: a view read now is then kept in step, not read again
                    assert_index_matches_records(kb)
            kb.delete_patterns([learned[i] for i in deleted if i < len(learned)])
            assert_index_matches_records(kb)
        finally:
            kb.close()


def test_empty_events_are_neither_single_symbol_nor_a_first_symbol():
    kb = MemoryStore("empty_events_kato")
    kb.apply([delta([], ["a", "b"]), delta(["a"], [], ["b"]), delta(["a"], ["b"]), delta([]), delta()])
    assert set(kb.patterns_starting_with("a")) == {delta(["a"], [], ["b"]).name, delta(["a"], ["b"]).name}
    index = symbol_index(kb, ["a"])
    single = {index.names[i]: bool(index.single_symbol_events[i]) for i in range(len(index.names))}
    assert single == {delta([], ["a", "b"]).name: False, delta(["a"], [], ["b"]).name: False,
                      delta(["a"], ["b"]).name: True, delta([]).name: False, delta().name: True}
    assert_index_matches_records(kb)


def test_columns_and_deltas_build_the_same_index():
    rows = [(["a", "b", "a"], 2), (["c"], 1), (["Ġthe", "é", "a"], 1), (["a", "b", "a"], 1)]
    by_columns, by_deltas = MemoryStore("columns_kato"), MemoryStore("deltas_kato")
    columns = DeltaColumns([pattern_hash([[s] for s in r]) for r, _ in rows], [r for r, _ in rows], [c for _, c in rows])
    by_columns.apply_columns(columns)
    by_deltas.apply(columns.to_deltas())
    assert_index_matches_records(by_columns)
    a, b = symbol_index(by_columns, SYMBOLS), symbol_index(by_deltas, SYMBOLS)
    assert [list(p) for p in a.postings] == [list(p) for p in b.postings]
    assert list(a.flat) == list(b.flat) and list(a.name_keys) == list(b.name_keys)


def test_a_view_stays_valid_while_the_store_grows_and_deletes():
    kb = MemoryStore("growing_kato")
    kb.apply([delta(["a"], ["b"]), delta(["b"], ["c"])])
    before = symbol_index(kb, ["a", "b"])
    snapshot = ([list(p) for p in before.postings], list(before.flat), list(before.lengths), list(before.name_keys))
    kb.apply([delta(["a"], [s]) for s in "defghijklmnopqrstuvwxyz"] * 2)  # buffers reallocate
    kb.delete_patterns([delta(["a"], ["b"]).name])
    assert ([list(p) for p in before.postings], list(before.flat), list(before.lengths),
            list(before.name_keys)) == snapshot
    assert_index_matches_records(kb, SYMBOLS + list("defghijklmnopqrstuvwxyz"))


def test_only_indexed_backends_answer_symbol_index(tmp_path):
    from katoray.store import open_store
    from katoray.store.mongo import MongoStore

    assert isinstance(MemoryStore("m_kato"), IndexedKnowledgeBase)
    sqlite = open_store(f"sqlite:///{tmp_path}/kb", "sqlite_kato")
    try:
        assert isinstance(sqlite, IndexedKnowledgeBase) and symbol_index(sqlite, ["a"]).symbol_ids == [-1]
    finally:
        sqlite.close()
    assert not hasattr(MongoStore, "symbol_index")   # MongoDB KBs search by name
