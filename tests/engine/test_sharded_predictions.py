"""Predictions over a sharded level equal the unsharded knowledge base's: the same predictions,
names, every metric (floats bit for bit), the same order, the same future potentials.

The candidate search runs shard by shard and the ensemble reads the merged view
(``store.sharded.ShardedStore``); each case below is compared with one KB holding every pattern.
Random KBs cover both searches (by id: MemoryStore and SQLite shards; by name: character
matching or a zero threshold), pruning (small ``max_predictions``), every ranking key, and
emotives; a KJV book's GPT-2 chunks give node0 a real shape.
"""
from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.engine.config import RANK_SORT_ALGOS, SessionConfig
from katoray.engine.naming import pattern_hash
from katoray.engine.predict import predict, predict_full_scan
from katoray.store import open_store
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore
from katoray.store.sharded import ShardedStore

LETTERS = list("abcdefgh")
EVENT = st.lists(st.sampled_from(LETTERS), min_size=1, max_size=2).map(sorted)


def _deltas(patterns, counts, emotives) -> list[PatternDelta]:
    return [PatternDelta(pattern_hash(events), events, count, [{"joy": e}] if e else [])
            for events, count, e in zip(patterns, counts, emotives)]


def _pair(deltas: list[PatternDelta], shards: int) -> tuple[MemoryStore, ShardedStore]:
    whole, sharded = MemoryStore("whole"), ShardedStore([MemoryStore(f"s{i}") for i in range(shards)])
    for kb in (whole, sharded):
        kb.apply(deltas)
    return whole, sharded


@settings(max_examples=150, deadline=None)
@given(patterns=st.lists(st.lists(EVENT, min_size=1, max_size=6).filter(lambda e: sum(map(len, e)) >= 2),
                         min_size=1, max_size=70),
       counts=st.lists(st.integers(1, 4), min_size=70, max_size=70),
       emotives=st.lists(st.sampled_from([None, -1.0, 0.5, 2.0]), min_size=70, max_size=70),
       stm=st.lists(EVENT, min_size=1, max_size=5), shards=st.integers(2, 5),
       max_predictions=st.integers(1, 6), threshold=st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.6]),
       token_matching=st.booleans(), rank=st.sampled_from(RANK_SORT_ALGOS))
def test_sharded_equals_unsharded(patterns, counts, emotives, stm, shards, max_predictions, threshold,
                                  token_matching, rank):
    whole, sharded = _pair(_deltas(patterns, counts, emotives), shards)
    config = SessionConfig(recall_threshold=threshold, max_predictions=max_predictions,
                           use_token_matching=token_matching, rank_sort_algo=rank)
    expected = predict(whole, stm, config)
    assert predict(sharded, stm, config) == expected
    assert predict_full_scan(sharded, stm, config) == expected


@settings(max_examples=60, deadline=None)
@given(chains=st.lists(st.lists(st.sampled_from(LETTERS[:5]), min_size=4, max_size=4), min_size=20, max_size=120,
                       unique_by=tuple),
       stm=st.lists(st.sampled_from(LETTERS[:6]), min_size=2, max_size=6), shards=st.integers(2, 4),
       max_predictions=st.integers(1, 3))
def test_ties_at_the_kth_key_across_shards(chains, stm, shards, max_predictions):
    """Node0's shape with few letters: many equal pre-potentials, so the K-th key is a tie that
    the shards' names decide, and most shards prune on their own."""
    whole, sharded = _pair(_deltas([[[s] for s in chain] for chain in chains], [1] * len(chains),
                                   [None] * len(chains)), shards)
    config = SessionConfig(max_predictions=max_predictions)
    assert predict(sharded, [[s] for s in stm], config) == predict(whole, [[s] for s in stm], config)


@pytest.fixture(scope="module")
def kjv_node0(kjv_books_path, gpt2_dir, tmp_path_factory):
    """Node0 of Ruth and Jonah (GPT-2 tokens in chunks of 8) in one SQLite KB and in 3 SQLite shards."""
    from katoray.text.tokenizers import load_tokenizer

    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as lines:
        text = " ".join(book["text"] for book in map(json.loads, lines) if book["abbrev"] in ("Ruth", "Jonah"))
    tokens = load_tokenizer(str(gpt2_dir)).tokenize(text)
    chunks = [tokens[i:i + 8] for i in range(0, len(tokens) - 7, 8)]
    deltas = [PatternDelta(pattern_hash([[t] for t in chunk]), [[t] for t in chunk]) for chunk in chunks]
    url = f"sqlite:///{tmp_path_factory.mktemp('kjv_node0')}"
    whole, sharded = open_store(url, "node0_whole_kato"), ShardedStore([open_store(url, f"node0s{i}_r_kato")
                                                                        for i in range(3)])
    for kb in (whole, sharded):
        kb.apply(deltas, "b1")
    yield tokens, whole, sharded
    whole.close()
    sharded.close()


@pytest.mark.parametrize("config", [SessionConfig(), SessionConfig(max_predictions=5),
                                    SessionConfig(recall_threshold=0.3, max_predictions=10,
                                                  rank_sort_algo="bayesian_posterior")], ids=["default", "k5", "t03"])
def test_kjv_node0_over_sqlite_shards(kjv_node0, config):
    tokens, whole, sharded = kjv_node0
    assert sharded.totals() == whole.totals()
    for start in range(0, 4000, 397):                 # states of 1 to 8 tokens from the text itself
        stm = [[t] for t in tokens[start:start + 1 + start % 8]]
        expected = predict(whole, stm, config)
        assert expected.predictions
        assert predict(sharded, stm, config) == expected
