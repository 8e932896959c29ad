"""``ensemble`` builds whole predictions only for those it returns; the result equals building every
prediction of every kept candidate, applying every metric and ranking them all, as KATO does."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.engine import metrics
from katoray.engine.candidates import search_by_name
from katoray.engine.config import RANK_SORT_ALGOS, SessionConfig
from katoray.engine.emotives import average_emotives
from katoray.engine.ensemble import ensemble
from katoray.engine.matching import extract, index_state
from katoray.engine.naming import pattern_hash
from katoray.engine.prediction import build_candidate
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore

SYMBOLS = st.sampled_from(list("abcdefg"))
EVENT = st.lists(SYMBOLS, min_size=1, max_size=3).map(sorted)
EVENTS = st.lists(EVENT, min_size=1, max_size=6).filter(lambda evs: sum(map(len, evs)) >= 2)
EMOTIVES = st.lists(st.fixed_dictionaries({}, optional={"joy": st.sampled_from([0.1, 0.5, 0.9])}), max_size=2)
LEARNS = st.lists(st.tuples(EVENTS, st.integers(1, 3), EMOTIVES), min_size=1, max_size=30)


def _extract(flat, state, config, positions):
    return extract(flat, state, config.recall_threshold, positions), []


def _every_prediction(kb, stm, state, config, kept, pruned) -> tuple[list[dict], list[dict]]:
    """The ensemble computed the long way: every field of every kept candidate, then the ranking."""
    records = kb.get_patterns([s.name for s in kept])
    positions = index_state(state)
    predictions = []
    for s in kept:
        record = records[s.name]
        flat = [x for event in record.pattern_data for x in event]
        extraction = extract(flat, state, config.recall_threshold, positions)
        p = build_candidate(s.name, record.pattern_data, len(flat), extraction, s.similarity, stm, len(state))
        p["anomalies"] = []
        p["frequency"] = record.frequency or 1
        p["emotives"] = average_emotives(record.emotives)
        if pruned:
            p["_pre_potential"] = s.pre
        predictions.append(p)
    totals = kb.totals()
    scores = metrics.present_scores(predictions, state, totals, kb.symbol_pmf)
    for i, p in enumerate(predictions):
        p.update(metrics.symbol_metrics(scores, i, p["frequency"], totals))
    future_potentials = metrics.predictive_information(predictions)
    metrics.bayesian(predictions)
    for p in predictions:
        p["potential"] = metrics.potential(p)
    key = config.rank_sort_algo
    return sorted(predictions, key=lambda p: (-p[key], p["name"]))[:config.max_predictions], future_potentials


@settings(max_examples=60, deadline=None)
@given(learns=LEARNS, stm=st.lists(EVENT, min_size=1, max_size=4), max_predictions=st.integers(1, 5),
       threshold=st.sampled_from([0.0, 0.1, 0.3]), rank_sort_algo=st.sampled_from(RANK_SORT_ALGOS))
def test_returned_predictions_equal_every_prediction_ranked(learns, stm, max_predictions, threshold, rank_sort_algo):
    kb = MemoryStore("ensemble_kato")
    kb.apply([PatternDelta(pattern_hash(events), events, count, emotives) for events, count, emotives in learns])
    state = [s for event in stm for s in event]
    config = SessionConfig(recall_threshold=threshold, max_predictions=max_predictions, rank_sort_algo=rank_sort_algo)
    kept, pruned = search_by_name(kb, state, config, 3 * max_predictions)
    predictions, future_potentials = ensemble(kb, stm, state, config, kept, pruned, _extract)
    expected = _every_prediction(kb, stm, state, config, kept, pruned)
    assert (predictions, future_potentials) == expected
    assert [list(p) for p in predictions] == [list(p) for p in expected[0]]  # KATO's key order too


def test_futures_group_as_katos_sha1_keys():
    """KATO keys a future by sha1(json.dumps([sorted(event) ...])): equal keys exactly when the
    sorted-event tuples are equal."""
    import hashlib
    import json

    futures = [[["b", "a"]], [["a", "b"]], [["a"], ["b"]], [["a", "b"], []], [["ü"]], [["\\u00fc"]], [["a,b"]]]
    for a in futures:
        for b in futures:
            sha = [hashlib.sha1(json.dumps([sorted(e) for e in f], sort_keys=True).encode()).hexdigest() for f in (a, b)]
            assert (metrics.future_group(a) == metrics.future_group(b)) == (sha[0] == sha[1])
