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


@pytest.mark.parametrize("symbols", [["a", "b", "c"], ["x\x1fy", "z"], ["é", "Ġthe", "it's"]])
def test_level_wire_format_round_trips(symbols):
    from katoray.config import HierarchyConfig
    from katoray.hierarchy.mapping import TokenizedDocument, map_documents

    config = HierarchyConfig("chunking", (2, 2), frozenset({0, 1}), metadata_cap=3)
    docs = [TokenizedDocument(f"d{i}", [[[symbols * 3]]], {"doc_id": f"d{i}", "source": "s"}) for i in range(3)]
    deltas = map_documents(docs, config)
    for level in deltas.levels:
        assert decode_deltas(level.encode()) == level.to_deltas()
