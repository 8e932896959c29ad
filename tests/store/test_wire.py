"""The wire form of deltas (mapper -> node actor): exact round trips, and what it refuses."""
from __future__ import annotations

import pytest

from katoray.engine.naming import pattern_hash
from katoray.store import PatternDelta
from katoray.store.wire import decode_deltas, encode_deltas


def deltas_abc() -> list[PatternDelta]:
    events_ab = [["a"], ["b"]]
    events_bc = [["b"], ["c"]]
    return [PatternDelta(pattern_hash(events_ab), events_ab, 3, [], {"source": ["x.txt"]}),
            PatternDelta(pattern_hash(events_bc), events_bc, 1)]


def test_wire_form_round_trip():
    multi = [["a", "b"], ["c"]]   # several symbols in an event: sent as lists
    deltas = deltas_abc() + [PatternDelta(pattern_hash(multi), multi, 2, [], {"k": ["v1", "v2"]})]
    assert decode_deltas(encode_deltas(deltas)) == deltas
    assert decode_deltas(deltas) == deltas          # plain lists of deltas pass through


def test_wire_form_refuses_emotives():
    delta = PatternDelta(pattern_hash([["a"], ["b"]]), [["a"], ["b"]], 1, [{"joy": 1.0}])
    with pytest.raises(ValueError, match="emotives"):
        encode_deltas([delta])


@pytest.mark.parametrize("symbols, form", [(["a", "b", "c"], "text"), (["é", "Ġthe", "it's"], "text"),
                                           (["x\x1ey", "z"], "joined"), (["x\x1fy", "z"], "lists"),
                                           (["x\ny", "z"], "text")])
def test_level_wire_format_round_trips(symbols, form):
    """Each form round-trips; a symbol holding a separator of a form takes the next one (names,
    joined by newlines in the "text" form, are hex: a newline in a symbol is only a symbol)."""
    import pickle

    from katoray.config import HierarchyConfig
    from katoray.hierarchy.mapping import TokenizedDocument, map_documents

    config = HierarchyConfig("chunking", (2, 2), frozenset({0, 1}), metadata_cap=3)
    docs = [TokenizedDocument(f"d{i}", [[[symbols * 3]]], {"doc_id": f"d{i}", "source": "s"}) for i in range(3)]
    deltas = map_documents(docs, config)
    assert pickle.loads(deltas.levels[0].encode())[0] == form
    for level in deltas.levels:
        assert decode_deltas(level.encode()) == level.to_deltas()


def test_names_holding_the_text_forms_separator_go_as_lists():
    from katoray.store.wire import decode_payload, encode_joined

    for names in (["a\nb", "c"], ["c", "a\nb"]):
        columns = decode_payload(encode_joined(names, ["x\x1fy", "z"], [1, 2], {1: {"k": ["v"]}}))
        assert (columns.names, list(columns.symbols), columns.counts) == (names, [["x", "y"], ["z"]], [1, 2])
    assert decode_payload(encode_joined([], [], [], {})).names == []


@pytest.mark.parametrize("symbols", [["a", "b", "c"], ["x\x1fy", "z"]])
@pytest.mark.parametrize("shards", [1, 2, 5])
def test_a_level_split_by_shard_sends_each_shard_its_own_patterns(symbols, shards):
    """``encode_shards``: part i decodes to the patterns of shard i (name order, metadata kept);
    the parts together are ``encode()``'s patterns; one shard is ``encode()`` itself."""
    from katoray.config import HierarchyConfig
    from katoray.hierarchy.mapping import TokenizedDocument, map_documents
    from katoray.store.sharded import shard_of

    config = HierarchyConfig("chunking", (2, 2), frozenset({0, 1}), metadata_cap=3)
    docs = [TokenizedDocument(f"d{i}", [[[symbols * (3 + i)]]], {"doc_id": f"d{i}"}) for i in range(6)]
    for level in map_documents(docs, config).levels:
        parts = level.encode_shards(shards)
        assert len(parts) == shards
        decoded = [decode_deltas(part) for part in parts]
        for shard, deltas in enumerate(decoded):
            assert all(shard_of(d.name, shards) == shard for d in deltas)
        assert sorted((d for part in decoded for d in part), key=lambda d: d.name) == level.to_deltas()
        if shards == 1:
            assert parts == [level.encode()]


def test_joined_symbols_read_as_lists():
    from katoray.store.wire import JoinedSymbols

    symbols = JoinedSymbols(["a\x1fb", "c", "\x1fd"])
    assert len(symbols) == 3 and symbols[0] == ["a", "b"] and symbols[2] == ["", "d"]
    assert list(symbols) == [["a", "b"], ["c"], ["", "d"]] and symbols[1:] == [["c"], ["", "d"]]


def test_equal_metadata_travels_as_one_object(tmp_path):
    """A level's patterns from one document share its metadata: the wire carries one object for
    equal metadata (written once), and a store still gives each pattern its own."""
    from katoray.config import HierarchyConfig
    from katoray.hierarchy.mapping import TokenizedDocument, map_documents
    from katoray.store.memory import MemoryStore
    from katoray.store.sqlite import SqliteStore
    from katoray.store.wire import apply_payload, decode_payload

    config = HierarchyConfig("chunking", (2, 2), frozenset({0, 1}), metadata_cap=3)
    docs = [TokenizedDocument(f"d{i}", [[[list("abcdefgh")[i:] * 2]]], {"title": f"t{i % 2}"}) for i in range(4)]
    level = map_documents(docs, config).levels[0]
    columns = decode_payload(level.encode())
    objects = {id(meta) for meta in columns.metadata.values()}
    distinct = {repr(meta) for meta in columns.metadata.values()}
    assert len(columns.metadata) == len(columns.names) > len(distinct) == len(objects) >= 2
    sqlite, memory = SqliteStore(tmp_path / "kb.sqlite", "node0_kato"), MemoryStore()
    for kb in (sqlite, memory):
        apply_payload(kb, level.encode(), "b0", persistence=5, metadata_cap=3)
    assert [r.to_dict() for r in sqlite.iter_patterns()] == [r.to_dict() for r in memory.iter_patterns()]
    assert {repr(r.metadata) for r in sqlite.iter_patterns()} == distinct
    sqlite.close()


def test_relearned_patterns_merge_their_metadata_as_memory_does(tmp_path):
    """Batches whose patterns were learned before, from documents with the same, other or more
    metadata than stored (capped at 2 values): SQLite's merges (memoised per stored text and
    metadata object, nothing written when nothing changes) leave what MemoryStore's leave."""
    from katoray.config import HierarchyConfig
    from katoray.hierarchy.mapping import TokenizedDocument, map_documents
    from katoray.store.memory import MemoryStore
    from katoray.store.sqlite import SqliteStore
    from katoray.store.wire import apply_payload

    config = HierarchyConfig("chunking", (2, 2), frozenset({0, 1}), metadata_cap=2)

    def payload(titles: list[str]) -> bytes:
        # Pattern "ab" is in every document, "cd" and "ef" in t0's and t1's, "cx" and "yz" in the
        # others': stored metadata differs from pattern to pattern.
        docs = [TokenizedDocument(f"d{i}", [[[list("abc" + ("def" if title < "t2" else "xyz")) * 2]]],
                                  {"title": title, "part": str(i % 2)}) for i, title in enumerate(titles)]
        return map_documents(docs, config).levels[0].encode()

    sqlite, memory = SqliteStore(tmp_path / "kb.sqlite", "node0_kato"), MemoryStore()
    batches = [["t1", "t1"], ["t1"], ["t2", "t1"], ["t0"], ["t3", "t4"], ["t1"]]
    for i, titles in enumerate(batches):
        for kb in (sqlite, memory):
            apply_payload(kb, payload(titles), f"b{i}", persistence=5, metadata_cap=2)
        assert [r.to_dict() for r in sqlite.iter_patterns()] == [r.to_dict() for r in memory.iter_patterns()]
    assert {tuple(r.metadata["title"]) for r in sqlite.iter_patterns()} == {("t0", "t1"), ("t2", "t3")}
    sqlite.close()
