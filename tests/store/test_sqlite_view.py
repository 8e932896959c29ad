"""SQLite predictions by integer id: the view of the patterns table stays exact through learns,
deletions and clears, made here or by another connection to the same file."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash
from katoray.engine.predict import predict, predict_full_scan
from katoray.store.base import IndexedKnowledgeBase, PatternDelta
from katoray.store.memory import MemoryStore
from katoray.store.sqlite import SqliteStore

LETTERS = list("abcdef")
EVENT = st.lists(st.sampled_from(LETTERS), min_size=1, max_size=2)
PATTERN = st.lists(EVENT, min_size=1, max_size=5).filter(lambda events: sum(map(len, events)) >= 2)
STEP = st.one_of(st.tuples(st.just("learn"), st.lists(PATTERN, min_size=1, max_size=12)),
                 st.tuples(st.just("delete"), st.integers(0, 5)),
                 st.tuples(st.just("clear"), st.none()))


def deltas(patterns: list[list[list[str]]]) -> list[PatternDelta]:
    return [PatternDelta(pattern_hash(events), events) for events in patterns]


def holders(kb, symbol: str) -> set[str]:
    index = kb.symbol_index([symbol])
    return {index.names[i] for i in index.postings[0].tolist()}


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=8), stm=st.lists(EVENT, min_size=1, max_size=4),
       threshold=st.sampled_from([0.1, 0.3, 0.6]), other_writer=st.booleans())
def test_sqlite_predictions_follow_every_change(steps, stm, threshold, other_writer):
    """After each step, predictions over SQLite (by id) equal MemoryStore's and the full scan's;
    the steps go through this store or through a second connection to the same file."""
    config = SessionConfig(recall_threshold=threshold, max_predictions=3)
    with tempfile.TemporaryDirectory() as tmp:
        reader = SqliteStore(Path(tmp) / "kb.sqlite", "view_kato")
        writer = SqliteStore(Path(tmp) / "kb.sqlite", "view_kato") if other_writer else reader
        reference = MemoryStore("view_kato")
        try:
            assert isinstance(reader, IndexedKnowledgeBase)
            for kind, arg in steps:
                if kind == "learn":
                    writer.apply(deltas(arg))
                    reference.apply(deltas(arg))
                elif kind == "delete":
                    doomed = [record.name for record in reference.iter_patterns()][arg::3]
                    assert writer.delete_patterns(doomed) == reference.delete_patterns(doomed)
                else:
                    writer.clear()
                    reference.clear()
                got = predict(reader, stm, config)
                assert got == predict(reference, stm, config) == predict_full_scan(reader, stm, config)
                for symbol in LETTERS:
                    assert holders(reader, symbol) == holders(reference, symbol)
        finally:
            for kb in {reader, writer}:
                kb.close()


def test_the_view_is_read_once_then_extended(tmp_path):
    kb = SqliteStore(tmp_path / "kb.sqlite", "view_kato")
    try:
        kb.apply(deltas([[["a"], ["b"]], [["b"], ["c"]]]))
        kb.symbol_index(["a"])
        built = kb._view.view
        assert len(built) == 2
        kb.apply(deltas([[["c"], ["d"]], [["a"], ["b"]]]))            # one new, one re-learned
        assert holders(kb, "c") == {pattern_hash([["b"], ["c"]]), pattern_hash([["c"], ["d"]])}
        assert kb._view.view is built and len(built) == 3             # only the new pattern was read
        kb.delete_patterns([pattern_hash([["a"], ["b"]])])
        assert holders(kb, "a") == set() and holders(kb, "b") == {pattern_hash([["b"], ["c"]])}
        assert kb._view.view is not built and len(kb._view.view) == 2  # a deletion: read again
    finally:
        kb.close()


def test_unknown_and_repeated_symbols(tmp_path):
    kb = SqliteStore(tmp_path / "kb.sqlite", "view_kato")
    try:
        kb.apply(deltas([[["a"], ["a"], ["b"]]]))
        index = kb.symbol_index(["zz", "a", "a"])
        assert index.symbol_ids[0] == -1 and len(index.postings[0]) == 0
        assert index.symbol_ids[1] == index.symbol_ids[2] and index.postings[1].tolist() == [0]
        assert index.lengths.tolist() == [3] and index.single_symbol_events.tolist() == [True]
    finally:
        kb.close()


@settings(max_examples=60, deadline=None)
@given(adds=st.lists(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 4)), max_size=12), max_size=25))
def test_posting_chunks_list_each_symbols_patterns_in_order(adds):
    """Chunks (merged past MAX_CHUNKS) answer what one list per symbol would: ids ascending, once."""
    import numpy as np

    from katoray.store.columns import PostingChunks

    postings, expected, next_id = PostingChunks(), {}, 0
    for pairs in adds:   # each add: patterns with ids above every earlier one, (symbol, pattern offset) pairs
        symbols = np.array([s for s, _ in pairs], np.int64)
        ids = np.array([next_id + offset for _, offset in pairs], np.int64)
        postings.add(symbols, ids)
        for symbol, pattern_id in zip(symbols.tolist(), ids.tolist()):
            expected.setdefault(symbol, set()).add(pattern_id)
        next_id += 5
    for symbol in range(31):
        assert postings.of(symbol).tolist() == sorted(expected.get(symbol, ()))
