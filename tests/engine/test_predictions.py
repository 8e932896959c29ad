"""KATO's predictions on the engine: the spec's worked examples (§4.5, §4.7–4.10) and §8.2 13–24."""
from __future__ import annotations

from math import log2, log10

import pytest

from katoray.engine import metrics
from katoray.engine.config import SessionConfig
from katoray.engine.naming import pattern_hash
from katoray.engine.predict import PredictionResult, predict, predict_full_scan
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore

DEFAULT = SessionConfig()


def make_kb(*learns) -> MemoryStore:
    """A KB from ``(events, count, emotives)`` learns (``events`` alone means one plain learn)."""
    kb = MemoryStore("test_predictions_kato")
    for learn in learns:
        events, count, emotives = learn if isinstance(learn, tuple) else (learn, 1, [])
        kb.apply([PatternDelta(pattern_hash(events), events, count, list(emotives))])
    return kb


def run(kb, stm, config=DEFAULT) -> PredictionResult:
    """``predict``, checked against the full-scan reference on every call."""
    result = predict(kb, stm, config)
    assert result == predict_full_scan(kb, stm, config)
    return result


def only(kb, stm, config=DEFAULT) -> dict:
    predictions = run(kb, stm, config).predictions
    assert len(predictions) == 1
    return predictions[0]


# -- §4.5 verified table ----------------------------------------------------------------------

@pytest.mark.parametrize("learned, stm, sim, past, present, future, missing, extras", [
    ([["beginning"], ["middle"], ["end"]], [["middle"], ["end"]], 0.8,
     [["beginning"]], [["middle"], ["end"]], [], [[], []], [[], []]),
    ([["a", "b"], ["c", "d"]], [["a", "x"], ["c", "y"]], 0.5,
     [], [["a", "b"], ["c", "d"]], [], [["b"], ["d"]], [["x"], ["y"]]),
    ([["a", "b"], ["c"], ["d"]], [["a"], ["c"]], 0.6666666666666665,
     [], [["a", "b"], ["c"]], [["d"]], [["b"], []], [[], []]),
    ([["a", "b"], ["c"]], [["a"], ["b"]], 0.8,
     [], [["a", "b"]], [["c"]], [[]], [[], []]),
])
def test_temporal_segmentation_table(learned, stm, sim, past, present, future, missing, extras):
    p = only(make_kb(learned), stm)
    assert (p["similarity"], p["past"], p["present"], p["future"], p["missing"], p["extras"]) == \
        (sim, past, present, future, missing, extras)


def test_threshold_zero_keeps_a_pattern_sharing_nothing():
    config = SessionConfig(recall_threshold=0.0)
    p = only(make_kb([["q"], ["r"], ["s"]]), [["x"], ["y"]], config)
    assert (p["similarity"], p["past"], p["present"], p["future"]) == (0.0, [], [["q"], ["r"], ["s"]], [])
    assert (p["missing"], p["extras"], p["matches"]) == ([["q"], ["r"], ["s"]], [["x"], ["y"]], [])
    assert (p["fragmentation"], p["potential"], p["snr"]) == (-1.0, 0.0, -1.0)


def test_past_tail_fix_up_moves_the_event_holding_the_first_match():
    # flat past is ['a'] (the block starts at 'b'), but 'b' sits in the first event with 'a'
    p = only(make_kb([["a", "b"], ["c"], ["d"]]), [["b"], ["c"]])
    assert (p["past"], p["present"], p["future"]) == ([], [["a", "b"], ["c"]], [["d"]])
    assert p["confidence"] == 2 / 3


# -- §4.7 worked example, field by field --------------------------------------------------------

def test_worked_full_path_example():
    events = [["a", "b"], ["c"], ["d"]]
    learn = (events, 1, [{"joy": 0.9}, {"joy": 0.5}])  # the session's accumulator, learned twice
    result = run(make_kb(learn, learn), [["a"], ["c"]])
    [p] = result.predictions
    assert p["name"] == "d31a36e9ce0eb82e3ec5e48ff40e4861474db5a1"
    assert p["frequency"] == 2
    assert p["similarity"] == 0.6666666666666665
    assert p["matches"] == ["a", "c"] and p["fragmentation"] == 1.0
    assert (p["past"], p["present"], p["future"]) == ([], [["a", "b"], ["c"]], [["d"]])
    assert (p["missing"], p["extras"]) == ([["b"], []], [[], []])
    assert (p["evidence"], p["confidence"], p["snr"]) == (0.5, 2 / 3, 1.0)
    assert p["itfdf_similarity"] == 0.8164965809277259
    assert p["entropy"] == log2(3) == 1.584962500721156
    assert p["normalized_entropy"] == 0.792481250360578  # log4(3)
    assert p["global_normalized_entropy"] == 0.0
    assert p["confluence"] == 0.0
    assert p["tfidf_score"] == 0.3333333333333333  # tf 1/3, idf log2(1/1) + 1
    assert p["predictive_information"] == 0.6666666666666665
    assert (p["bayesian_prior"], p["bayesian_likelihood"], p["bayesian_posterior"]) == (1.0, 0.6666666666666665, 1.0)
    assert p["potential"] == 2.4831632475943923
    assert p["emotives"] == {"joy": 0.7}
    assert p["sequence"] == events and "pattern_data" not in p and "metadata" not in p
    assert result.future_potentials == [{"future": [["d"]], "aggregate_potential": 1.0, "supporting_patterns": 1,
                                         "total_weighted_frequency": 2 * 0.6666666666666665}]


# -- §4.8 payload -------------------------------------------------------------------------------

def test_prediction_payload_matches_kato():
    events = [["a", "b"], ["c"]]
    result = run(make_kb((events, 1, [{"joy": 0.5}])), [["a"], ["b"]])
    assert result.predictions == [{
        "type": "prototypical", "name": pattern_hash(events), "frequency": 1, "emotives": {"joy": 0.5},
        "matches": ["a", "b"], "past": [], "present": [["a", "b"]], "missing": [[]], "extras": [[], []],
        "anomalies": [], "potential": 3.666666666666666, "evidence": 0.6666666666666666, "similarity": 0.8,
        "fragmentation": 0.0, "snr": 1.0, "confluence": 0.0, "predictive_information": 0.8,
        "sequence": [["a", "b"], ["c"]], "future": [["c"]], "confidence": 1.0,
        "weighted_similarity": None, "weighted_evidence": None, "weighted_confidence": None, "weighted_snr": None,
        "entropy": 1.0, "normalized_entropy": 0.6309297535714574, "global_normalized_entropy": 0.0,
        "itfdf_similarity": 0.9999999999999998, "tfidf_score": 0.5, "pattern_probability": 1.0,
        "weighted_strength": 0.8, "bayesian_posterior": 1.0, "bayesian_prior": 1.0, "bayesian_likelihood": 0.8}]
    assert list(result.predictions[0])[:4] == ["type", "name", "frequency", "emotives"]  # KATO's key order
    assert result.future_potentials == [{"future": [["c"]], "aggregate_potential": 1.0, "supporting_patterns": 1,
                                         "total_weighted_frequency": 0.8}]


# -- §4.9 single-symbol path ----------------------------------------------------------------------

def test_single_symbol_fast_path():
    events = [["a", "b"], ["c"], ["d"]]
    kb = make_kb(events)
    result = run(kb, [["a"]])
    assert result.future_potentials == []
    assert result.predictions == [{
        "name": pattern_hash(events), "pattern_data": events, "length": 4, "frequency": 1, "emotives": {},
        "matches": ["a"], "missing": [], "present": ["a"], "past": [], "future": ["b", "c", "d"], "extras": [],
        "similarity": 0.4, "evidence": 0.25, "confidence": 1.0, "snr": 1.0, "fragmentation": 0,
        "anomalies": [], "weighted_similarity": None, "weighted_evidence": None,
        "weighted_confidence": None, "weighted_snr": None, "potential": 2.25}]
    assert run(kb, [["c"]]).predictions == []                       # 'c' is not the first token
    assert run(kb, [["a"]], SessionConfig(recall_threshold=1.0)).predictions  # threshold ignored


def test_single_symbol_path_sorts_by_potential_and_cuts():
    kb = make_kb([["a"], ["b"]], [["a"], ["b"], ["c"], ["d"]], [["a"], ["x"], ["y"]], [["b"], ["a"]])
    predictions = run(kb, [["a"]], SessionConfig(max_predictions=2)).predictions
    assert [p["pattern_data"] for p in predictions] == [[["a"], ["b"]], [["a"], ["x"], ["y"]]]
    assert [p["potential"] for p in predictions] == [2.5, (1 / 3 + 1.0) * 1.0 + 1.0]


# -- LCS vs blocks, recall threshold, character mode ------------------------------------------------

def test_lcs_similarity_with_block_structure_diverges():
    p = only(make_kb([[s] for s in "bbcabc"]), [[s] for s in "cccb"])
    assert p["similarity"] == 0.4 and p["matches"] == ["b"]
    assert p["evidence"] == 1 / 6 and p["snr"] == -0.2 and p["fragmentation"] == 0.0


def test_recall_threshold_semantics():
    kb = make_kb([["red"], ["green"], ["blue"]], [["one"], ["two"]])
    exact = only(kb, [["red"], ["green"], ["blue"]], SessionConfig(recall_threshold=1.0))
    assert exact["similarity"] == 1.0
    unrelated = [["zzz"], ["yyy"]]
    zero = run(kb, unrelated, SessionConfig(recall_threshold=0.0)).predictions
    assert len(zero) == 2 and all(p["similarity"] == 0.0 and p["matches"] == [] for p in zero)
    assert run(kb, unrelated, SessionConfig(recall_threshold=0.1)).predictions == []
    # the gate is >=: similarity 0.5 passes threshold 0.5
    assert only(make_kb([["a", "b"], ["c", "d"]]), [["a", "x"], ["c", "y"]],
                SessionConfig(recall_threshold=0.5))["similarity"] == 0.5


def test_character_mode_scores_joined_strings_and_keeps_token_structure():
    config = SessionConfig(use_token_matching=False)
    p = only(make_kb([["hello"], ["world"]]), [["hello"], ["word"]], config)
    assert p["similarity"] == 0.9523809523809522
    assert p["matches"] == ["hello"] and p["future"] == [["world"]]


# -- ensemble metrics quirks ----------------------------------------------------------------------

def test_confluence_probability_can_exceed_one():
    # total_pattern_frequencies counts unique patterns, so P(e|h) = 3/2
    kb = make_kb(([["a"], ["b"]], 3, []), [["c"], ["d"]])
    p = only(kb, [["a"], ["b"]])
    assert p["confluence"] == 3 / 2 * (1 - 10 ** (log10(0.5) + log10(0.5)))
    assert p["confluence"] > 1


def test_tfidf_rebuilds_the_pattern_count_from_the_float_probability():
    # 15 of 22 patterns hold 'z': int((15/22)·22) is 14, and KATO's idf uses 14
    kb = make_kb(*[[["z"], [f"s{i}"]] for i in range(15)], *[[[f"t{i}"], [f"u{i}"]] for i in range(7)])
    assert int(15 / 22 * 22) == 14
    p = next(p for p in run(kb, [["z"], ["s0"]]).predictions if p["present"] == [["z"], ["s0"]])
    idf_z, idf_s0 = log2(22 / 14) + 1, log2(22 / 1) + 1
    assert p["tfidf_score"] == (0.5 * idf_z + 0.5 * idf_s0) / 2


def test_entropy_and_tfidf_use_the_present_only():
    p = only(make_kb([["a"], ["b"], ["c"], ["d"]]), [["a"], ["b"]])
    assert p["present"] == [["a"], ["b"]] and p["entropy"] == 1.0


def test_metrics_without_unique_patterns_are_zero():
    assert metrics.tfidf_score(["a", "b"], {"a": 0.5}, 0) == 0.0
    assert metrics.symbol_probabilities([{"matches": ["a"], "missing": [["b"]]}], {"a": 3}, 0) == {"a": 0.0, "b": 0}


def test_predictive_information_groups_equal_futures():
    kb = make_kb([["a"], ["b"], ["z"]], [["q"], ["b"], ["z"]])
    result = run(kb, [["a"], ["b"]])
    [group] = result.future_potentials
    sims = sorted(p["similarity"] for p in result.predictions)
    assert group["future"] == [["z"]] and group["supporting_patterns"] == 2
    assert group["total_weighted_frequency"] == pytest.approx(sum(sims))
    for p in result.predictions:
        assert p["predictive_information"] == p["weighted_strength"] / 1.0


def test_distinct_futures_give_every_prediction_the_same_predictive_information():
    kb = make_kb([["a"], ["b"], ["x"]], [["a"], ["c"], ["y"]], [["b"], ["c"], ["w"]])
    predictions = run(kb, [["a"], ["b"], ["c"]]).predictions
    total_weighted = sum(p["frequency"] * p["similarity"] for p in predictions)
    for p in predictions:
        assert p["predictive_information"] == pytest.approx(total_weighted / 3)


# -- ranking, cut, determinism ----------------------------------------------------------------------

def test_rank_sort_algo_is_honoured_per_session():
    kb = make_kb([["a"], ["b"]], ([["a"], ["b"], ["c"], ["d"], ["e"]], 5, []))
    by_potential = run(kb, [["a"], ["b"]]).predictions
    by_frequency = run(kb, [["a"], ["b"]], SessionConfig(rank_sort_algo="frequency")).predictions
    assert [p["frequency"] for p in by_potential] == [1, 5]
    assert [p["frequency"] for p in by_frequency] == [5, 1]


def test_max_predictions_cuts_after_the_ensemble():
    kb = make_kb(*[[["a"], ["b"], [f"f{i}"]] for i in range(5)])
    result = run(kb, [["a"], ["b"]], SessionConfig(max_predictions=2))
    assert len(result.predictions) == 2
    assert sum(p["bayesian_prior"] for p in result.predictions) == pytest.approx(2 / 5)
    assert result.future_potentials and len(result.future_potentials) == 5


def test_ties_are_ordered_by_name():
    kb = make_kb(*[[["a"], ["b"], [f"f{i}"]] for i in range(6)])
    predictions = run(kb, [["a"], ["b"]]).predictions
    assert len({p["potential"] for p in predictions}) == 1
    assert [p["name"] for p in predictions] == sorted(p["name"] for p in predictions)


def test_pruning_keeps_the_first_candidates_by_pre_potential_then_name():
    # 4 equal candidates, max_predictions 1: the ensemble holds 3, chosen by name
    kb = make_kb(*[[["a"], ["b"], [f"f{i}"]] for i in range(4)])
    names = sorted(pattern_hash([["a"], ["b"], [f"f{i}"]]) for i in range(4))
    result = run(kb, [["a"], ["b"]], SessionConfig(max_predictions=1))
    [p] = result.predictions
    assert p["name"] == names[0]
    assert p["_pre_potential"] == (2 / 3 + 1.0) * 1.0 + 1.0  # KATO leaves it on pruned ensembles
    assert p["bayesian_prior"] == 1 / 3
    assert sorted(g["future"][0][0] for g in result.future_potentials) == \
        sorted(e[2][0] for e in [[["a"], ["b"], [f"f{i}"]] for i in range(4)]
               if pattern_hash(e) in names[:3])
    assert "_pre_potential" not in run(kb, [["a"], ["b"]]).predictions[0]


def test_single_symbol_character_mode():
    from rapidfuzz import fuzz

    p = run(make_kb([["ab"], ["c"]]), [["ab"]], SessionConfig(use_token_matching=False)).predictions[0]
    assert p["similarity"] == fuzz.ratio("ab c", "ab") / 100


def test_a_stored_frequency_of_zero_is_read_as_one():
    events = [["a"], ["b"], ["c"]]
    kb = MemoryStore("zero_kato")
    kb.apply([PatternDelta(pattern_hash(events), events, count=0)])
    assert only(kb, [["a"], ["b"]])["frequency"] == 1
    assert run(kb, [["a"]]).predictions[0]["frequency"] == 1


def test_empty_stm_gives_nothing():
    kb = make_kb([["a"], ["b"]])
    assert run(kb, []) == PredictionResult([], [])
    assert run(kb, [[]]) == PredictionResult([], [])


# -- §8.2 items 13–24 -----------------------------------------------------------------------------

def test_past_present_future_13():
    p = only(make_kb([["beginning"], ["middle"], ["end"]]), [["middle"], ["end"]])
    assert (p["past"], p["present"], p["future"]) == ([["beginning"]], [["middle"], ["end"]], [])


def test_missing_14():
    p = only(make_kb([["hello", "world"], ["bar", "foo"]]), [["hello"], ["foo"]])
    assert p["missing"] == [["world"], ["bar"]]


def test_missing_and_extras_15():
    p = only(make_kb([["a", "b"], ["c", "d"]]), [["a", "x"], ["c", "y"]])
    assert (p["missing"], p["extras"], p["similarity"]) == ([["b"], ["d"]], [["x"], ["y"]], 0.5)


def test_multi_event_present_16():
    p = only(make_kb([["a", "b"], ["c", "d"], ["e", "f"]]), [["a"], ["c"]])
    assert len(p["present"]) == 2 and p["missing"] == [["b"], ["d"]] and len(p["future"]) == 1


def test_missing_and_extras_stay_aligned_17():
    stm = [["a"], ["x"], ["d"], ["y"]]
    p = only(make_kb([["a", "b"], ["c"], ["d", "e"], ["f"]]), stm)
    assert len(p["missing"]) == len(p["present"]) and len(p["extras"]) == len(stm) == 4


def test_single_symbol_needs_the_first_token_18():
    kb = make_kb([["alpha"], ["beta"], ["gamma"]])
    assert len(run(kb, [["alpha"]]).predictions) == 1
    assert run(kb, [["beta"]]).predictions == []


@pytest.mark.parametrize("stm", [[["w"]], [["w"], ["x"]], [["w", "x"]], [["w", "x", "y"]]])
def test_mixed_event_sizes_predict_19(stm):
    assert run(make_kb([["w", "x"], ["y"], ["z"]]), stm).predictions


def test_recall_threshold_20():
    kb = make_kb([["one"], ["two"], ["three"]])
    assert only(kb, [["one"], ["two"], ["three"]], SessionConfig(recall_threshold=1.0))["similarity"] == 1.0
    unrelated = [["nothing"], ["shared"]]
    for p in run(kb, unrelated, SessionConfig(recall_threshold=0.0)).predictions:
        assert p["similarity"] == 0.0 and p["matches"] == []
    assert run(kb, unrelated, SessionConfig(recall_threshold=0.1)).predictions == []


def test_single_pattern_learned_three_times_21():
    p = only(make_kb(([["x"], ["y"], ["z"]], 3, [])), [["x"], ["y"]])
    assert p["frequency"] == 3 and p["bayesian_prior"] == 1.0 and p["bayesian_posterior"] == 1.0


def _ensemble_kb() -> MemoryStore:
    return make_kb(([["a"], ["b"], ["c"]], 2, []), [["a"], ["x"], ["b"]], ([["b"], ["c"], ["d"], ["e"]], 4, []),
                   [["q"], ["a"]], [["c", "d"], ["a"]])


def test_bayesian_metrics_22():
    predictions = run(_ensemble_kb(), [["a"], ["b"], ["c"]]).predictions
    assert len(predictions) == 5
    evidence = sum(p["bayesian_likelihood"] * p["bayesian_prior"] for p in predictions)
    for p in predictions:
        assert p["bayesian_likelihood"] == pytest.approx(p["similarity"], abs=1e-9)
        assert p["bayesian_posterior"] == pytest.approx(p["bayesian_likelihood"] * p["bayesian_prior"] / evidence,
                                                        abs=1e-9)
    assert sum(p["bayesian_prior"] for p in predictions) == pytest.approx(1.0)


def test_potential_and_predictive_information_23():
    for p in run(_ensemble_kb(), [["a"], ["b"], ["c"]]).predictions:
        frag = 0.0 if p["fragmentation"] == -1 else 1 / (p["fragmentation"] + 1)
        assert p["potential"] == pytest.approx((p["evidence"] + p["confidence"]) * p["snr"]
                                               + p["itfdf_similarity"] + frag, abs=1e-4)
        assert 0 <= p["predictive_information"] <= 1


def test_fields_and_ranges_24():
    for p in run(_ensemble_kb(), [["a"], ["b"], ["c"]]).predictions:
        for key in ("bayesian_posterior", "bayesian_prior", "bayesian_likelihood", "tfidf_score", "frequency",
                    "similarity", "potential", "entropy", "normalized_entropy"):
            assert key in p
        assert p["tfidf_score"] >= 0 and p["entropy"] >= 0 and 0 <= p["similarity"] <= 1
        assert p["type"] in {"prototypical", "episodic", "abstract"}
