"""``kato+http://``: a KATO server's node as a knowledge base, over real HTTP.

Against ``katoray serve`` batches go through the bulk route, exactly once. The replay path (what
a KATO server gets: each learn as an observe-sequence) uses only KATO's own session API, which
``katoray serve`` answers as KATO does; it is checked here against that API.
"""
from __future__ import annotations

import pytest

from katoray.api.server.run import ServeSettings, start_server
from katoray.engine.naming import pattern_hash
from katoray.errors import StoreError, StoreUnreachableError
from katoray.store import open_store
from katoray.store.base import PatternDelta
from katoray.store.kato_http import KatoHttpStore, replay_observations
from katoray.store.memory import MemoryStore


def delta(*events, count=1, emotives=(), metadata=None) -> PatternDelta:
    events = [list(e) for e in events]
    return PatternDelta(pattern_hash(events), events, count, list(emotives), metadata or {})


DELTAS = [delta(["a"], ["b"], count=3, emotives=[{"joy": 1.0}], metadata={"book": ["x", "y"]}),
          delta(["a", "c"], ["d"], emotives=[{"joy": 0.5}, {"fear": 0.2}, {"joy": 0.1}]),
          delta(["q"], ["r"], ["s"], count=2)]


@pytest.fixture(scope="module")
def server():
    with start_server(ServeSettings(port=0, store="memory://kato-http-test")) as running:
        yield running


def _served(node: str):
    return open_store("memory://kato-http-test", f"{node}_kato")


def _same_as_memory(kb, reference: MemoryStore) -> None:
    for name in (d.name for d in DELTAS):
        assert kb.get_pattern(name) == reference.get_pattern(name)
    assert kb.totals() == reference.totals()
    assert kb.symbol_affinity() == reference.symbol_affinity()


def test_katoray_serve_applies_each_batch_exactly_once(server):
    kb = open_store("kato+" + server.url, "bulk_kato")
    assert kb.is_katoray and not kb.is_applied("b1")
    assert kb.apply(DELTAS, "b1") is True
    assert kb.apply(DELTAS, "b1") is False and kb.is_applied("b1")
    reference = MemoryStore()
    reference.apply(DELTAS)
    _same_as_memory(kb, reference)
    _same_as_memory(_served("bulk"), reference)
    assert kb.count() == 3


def test_replayed_learns_give_the_built_in_engine_s_knowledge_base(server):
    kb = KatoHttpStore("kato+" + server.url, "replay_kato", bulk=False)
    kb.apply(DELTAS, "b1")
    reference = MemoryStore()
    reference.apply(DELTAS)
    _same_as_memory(_served("replay"), reference)
    assert kb.count() == 3   # what this store sent (KATO has no route that counts patterns)
    kb.apply(DELTAS[2:], "b1")   # KATO keeps no batch record: at least once
    assert _served("replay").get_pattern(DELTAS[2].name).frequency == 4


def test_metadata_values_travel_one_per_observation():
    observations = replay_observations(delta(["a"], ["b"], metadata={"k": ["1", "2"], "j": ["x"]}), first=True)
    assert observations[:2] == [{"strings": [], "metadata": {"k": "1", "j": "x"}},
                                {"strings": [], "metadata": {"k": "2"}}]
    assert replay_observations(delta(["a"], ["b"], metadata={"k": ["1"]}), first=False) == [
        {"strings": ["a"]}, {"strings": ["b"]}]


def test_the_server_records_the_run_that_owns_a_node(server):
    kb = open_store("kato+" + server.url, "owned_kato")
    assert kb.claim_owner("run-a") == "run-a" and kb.claim_owner("run-b") == "run-a"
    assert KatoHttpStore("kato+" + server.url, "owned_kato", bulk=False).claim_owner("run-b") == "run-b"  # KATO: none


def test_what_a_server_cannot_answer_is_refused_by_name(server):
    kb = open_store("kato+" + server.url, "refusals_kato")
    with pytest.raises(StoreError, match="patterns_with_any is not available"):
        kb.patterns_with_any(["a"])
    with pytest.raises(StoreUnreachableError, match="unreachable"):
        open_store("kato+http://127.0.0.1:9", "n_kato")
