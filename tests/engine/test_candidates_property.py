"""``predict`` (index + bounds) equals ``predict_full_scan`` (every pattern) on random KBs and STMs."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash
from katoray.engine.predict import predict, predict_full_scan
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore

SYMBOLS = st.sampled_from(["a", "b", "c", "d", "e", "f", "g"])
EVENT = st.lists(SYMBOLS, min_size=1, max_size=3).map(sorted)
EVENTS = st.lists(EVENT, min_size=1, max_size=6).filter(lambda evs: sum(map(len, evs)) >= 2)
EMOTIVES = st.lists(st.fixed_dictionaries({}, optional={"joy": st.sampled_from([0.1, 0.5, 0.9]),
                                                         "fear": st.sampled_from([-1.0, 0.25])}),
                    max_size=3).map(lambda dicts: [d for d in dicts if d])
LEARNS = st.lists(st.tuples(EVENTS, st.integers(1, 3), EMOTIVES), min_size=1, max_size=25)
STM = st.lists(EVENT, min_size=1, max_size=4)
CONFIGS = st.builds(
    SessionConfig,
    recall_threshold=st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0]),
    max_predictions=st.integers(1, 6),
    rank_sort_algo=st.sampled_from(["potential", "similarity", "frequency", "confluence",
                                    "bayesian_posterior", "fragmentation"]),
    use_token_matching=st.sampled_from([True, True, True, False]),
)


def _kb(learns) -> MemoryStore:
    kb = MemoryStore("prop_kato")
    kb.apply([PatternDelta(pattern_hash(events), events, count, emotives)
              for events, count, emotives in learns])
    return kb


@settings(max_examples=50, deadline=None)
@given(learns=LEARNS, stm=STM, config=CONFIGS)
def test_predict_equals_full_scan(learns, stm, config):
    kb = _kb(learns)
    fast = predict(kb, stm, config)
    reference = predict_full_scan(kb, stm, config)
    assert fast == reference
    # a second call (shapes now cached) gives the same again
    assert predict(kb, stm, config) == reference


@settings(max_examples=25, deadline=None)
@given(learns=LEARNS, stm=STM)
def test_pruning_is_exercised_and_exact(learns, stm):
    """max_predictions 1 keeps 3 candidates for the ensemble: pruning happens often."""
    kb = _kb(learns)
    config = SessionConfig(recall_threshold=0.0, max_predictions=1)
    fast = predict(kb, stm, config)
    assert fast == predict_full_scan(kb, stm, config)
    assert len(fast.predictions) <= 1


def _kjv_kb(kjv_books_path, gpt2_dir, n_patterns: int):
    """Genesis as node0 learns it: 8-token chunks at offsets 0..7 (one token per event)."""
    import gzip
    import json

    from transformers import AutoTokenizer

    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as lines:
        genesis = json.loads(next(lines))["text"]
    tokens = AutoTokenizer.from_pretrained(str(gpt2_dir)).tokenize(genesis[:60_000])
    kb, deltas = MemoryStore("kjv_prop_kato"), {}
    for offset in range(8):
        for start in range(offset, len(tokens) - 8, 8):
            events = [[t] for t in tokens[start:start + 8]]
            deltas.setdefault(pattern_hash(events), PatternDelta(pattern_hash(events), events))
            if len(deltas) == n_patterns:
                kb.apply(list(deltas.values()))
                return kb, tokens
    kb.apply(list(deltas.values()))
    return kb, tokens


def test_real_text_with_pruning_and_early_termination(kjv_books_path, gpt2_dir):
    """Thousands of real patterns, STMs from the same text: heavy ties, pruning, skipped symbols."""
    kb, tokens = _kjv_kb(kjv_books_path, gpt2_dir, 3000)
    for start in range(101, 4000, 577):
        stm = [[t] for t in tokens[start:start + 8]]
        for config in (SessionConfig(), SessionConfig(max_predictions=5, rank_sort_algo="similarity"),
                       SessionConfig(recall_threshold=0.3, max_predictions=20)):
            fast = predict(kb, stm, config)
            assert fast == predict_full_scan(kb, stm, config)
            assert 0 < len(fast.predictions) <= config.max_predictions


def test_symbols_beyond_the_code_points_fall_back_to_tuples(monkeypatch):
    """Once a KB has used every code point, shapes keep their symbol tuples and stay exact."""
    import katoray.engine.candidates as candidates_module

    monkeypatch.setattr(candidates_module, "MAX_CODES", 5)
    kb = _kb([([["a"], ["b"], ["c"]], 1, []), ([["d"], ["e"], ["f"]], 2, []), ([["a"], ["e"], ["g"]], 1, []),
              ([["g", "h"], ["a"]], 1, []), ([["b"], ["h"]], 3, [])])
    for stm in ([["a"], ["e"]], [["h"], ["a"], ["b"]], [["z"], ["g"]]):
        for config in (SessionConfig(max_predictions=1), SessionConfig(recall_threshold=0.0)):
            assert predict(kb, stm, config) == predict_full_scan(kb, stm, config)
