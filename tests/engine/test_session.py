"""KatoSession against KATO's specified behaviour (spec §2-§3, §8.2), on every store backend."""
from __future__ import annotations

import math

import pytest

from katoray import KatoSession, pattern_name
from katoray.errors import ConfigError


@pytest.fixture
def session(store_url, node_id):
    s = KatoSession(node_id=node_id, store=store_url)
    yield s
    s.clear_all()
    s.close()


def obs(s: KatoSession, *symbols: str, **fields):
    return s.observe(strings=list(symbols), **fields)


def learn_seq(s: KatoSession, *events, emotives=None):
    for i, event in enumerate(events):
        s.observe(strings=list(event), emotives=(emotives[i] if emotives else None))
    return s.learn()


# -- §3.1 pattern names ------------------------------------------------------------------------
NAME_TABLE = [
    ([["a"], ["b"], ["c"]], "b98534b32c1d7489d4ce1a48724aa65aeecbdba9"),
    ([["a"], ["b"]], "76d7efca2e96cb5eeddf4e06ac96a0f424630135"),
    ([["A", "B"], ["C"]], "a741c01d69ecb82545a9eeb5dcc8ea8fb737d318"),
    ([["hello", "world"], ["bar", "foo"]], "0405596c4d7172818bfeb508925e83226d4c4971"),
    ([["a", "b"], ["c"], ["d"]], "d31a36e9ce0eb82e3ec5e48ff40e4861474db5a1"),
    ([["it's"], ["x"]], "271339250f33fe945c5a24f7deb31f02ce16ddb5"),
    ([["é"], ["ü"]], "3eb866e4e2651db586fd7f2997478201001ffd8d"),
]


@pytest.mark.parametrize("events,digest", NAME_TABLE)
def test_name_table_direct(events, digest):
    assert pattern_name(events) == "PTRN|" + digest


@pytest.mark.parametrize("events,digest", NAME_TABLE)
def test_name_table_through_learn(session, events, digest):
    assert learn_seq(session, *events) == "PTRN|" + digest
    stored = session.get_pattern(digest)
    assert stored["pattern_data"] == events and stored["frequency"] == 1
    assert stored["length"] == sum(map(len, events))


def test_vector_symbol_name_and_order(session):
    session.observe(strings=["zeta", "alpha"], vectors=[[1.0, 0.0], [0.0, 1.0]])
    assert session.get_stm() == [["VCTR|d628de66772ddf5b01be9b71b5cbb2b9e55a551a", "alpha", "zeta"]]


# -- §8.2 items 1-5 ----------------------------------------------------------------------------
def test_observe_and_sort(session):
    obs(session, "hello")
    assert session.get_stm() == [["hello"]]
    session.clear_stm()
    obs(session, "z", "a", "m")
    assert session.get_stm() == [["a", "m", "z"]]


@pytest.mark.parametrize("given,expected", [
    (["Zoo", "Apple", "apple"], ["Apple", "Zoo", "apple"]),
    (["test_2", "test_1", "test_10"], ["test_1", "test_10", "test_2"]),
    (["!special", "@symbol", "#hash"], ["!special", "#hash", "@symbol"]),
    (["z", "", "a", "middle"], ["", "a", "middle", "z"]),
    (["1", "10", "100", "2", "20", "3"], ["1", "10", "100", "2", "20", "3"]),
])
def test_sorting_cases(session, given, expected):
    session.observe(strings=given)
    assert session.get_stm() == [expected]


def test_empty_observations_are_ignored_but_count_time(session):
    obs(session, "first")
    r = session.observe(strings=[])
    obs(session, "second")
    obs(session, "third")
    assert session.get_stm() == [["first"], ["second"], ["third"]]
    assert r["time"] == 2 and session.time == 4


def test_learn_needs_two_symbols(session):
    assert session.learn() == ""
    obs(session, "single")
    assert session.learn() == ""
    assert session.get_stm() == []  # STM is cleared even when nothing is learned
    assert session.kb.count() == 0
    session.observe(strings=["x", "y"])  # one event with two symbols is learnable
    assert session.learn() == pattern_name([["x", "y"]])


def test_names_stable_and_order_sensitive(session):
    abc = learn_seq(session, ["a"], ["b"], ["c"])
    assert abc.startswith("PTRN|") and len(abc) == 45 and abc[5:] == abc[5:].lower()
    assert learn_seq(session, ["a"], ["b"], ["c"]) == abc
    session.clear_all()
    assert learn_seq(session, ["a"], ["b"], ["c"]) == abc
    others = {learn_seq(session, ["c"], ["b"], ["a"]), learn_seq(session, ["b"], ["a"], ["c"])}
    assert len(others | {abc}) == 3


def test_relearn_increments_frequency(session):
    for _ in range(3):
        name = learn_seq(session, ["freq", "test"])
    assert session.get_pattern(name)["frequency"] == 3
    assert session.get_pattern(name[5:])["frequency"] == 3  # with or without the prefix
    assert session.get_pattern("PTRN|" + "0" * 40) is None


# -- §8.2 items 7-12: emotives and metadata ----------------------------------------------------
def test_emotives_storage(session):
    name = learn_seq(session, ["A"], ["B"], ["C"], emotives=[{"joy": 0.9}, {"joy": 0.5}, {"joy": 0.7}])
    stored = session.get_pattern(name)
    assert stored["emotives"] == [{"joy": 0.9}, {"joy": 0.5}, {"joy": 0.7}]
    assert stored["frequency"] == 1


@pytest.mark.parametrize("n,expected", [(7, [2.0, 3.0, 4.0, 5.0, 6.0]), (12, [7.0, 8.0, 9.0, 10.0, 11.0])])
def test_persistence_window(session, n, expected):
    for i in range(n):
        session.observe(strings=[f"s{i}"], emotives={"value": float(i)})
    stored = session.get_pattern(session.learn())
    assert [e["value"] for e in stored["emotives"]] == expected


def test_persistence_honoured_per_session(store_url, node_id):
    s = KatoSession(node_id=node_id, store=store_url, config={"persistence": 2})
    for i in range(4):
        s.observe(strings=[f"s{i}"], emotives={"value": float(i)})
    assert s.get_pattern(s.learn())["emotives"] == [{"value": 2.0}, {"value": 3.0}]
    s.clear_all()


def test_relearn_merges_emotives(session):
    name = learn_seq(session, ["m1"], ["m2"], emotives=[{"mood": 0.9}, {"mood": 0.8}])
    session.clear_stm()
    learn_seq(session, ["m1"], ["m2"], emotives=[{"mood": 0.5}, {"mood": 0.3}])
    assert [e["mood"] for e in session.get_pattern(name)["emotives"]] == [0.9, 0.8, 0.5, 0.3]
    session.clear_stm()
    name3 = learn_seq(session, ["r"], ["s"], ["t"], emotives=[{"v": 1.0}, {"v": 2.0}, {"v": 3.0}])
    session.clear_stm()
    learn_seq(session, ["r"], ["s"], ["t"], emotives=[{"v": 4.0}, {"v": 5.0}, {"v": 6.0}])
    assert [e["v"] for e in session.get_pattern(name3)["emotives"]] == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_empty_emotives_not_stored(session):
    name = learn_seq(session, ["A"], ["B"], ["C"], emotives=[{"mood": 0.9}, {}, {"mood": 0.7}])
    assert session.get_pattern(name)["emotives"] == [{"mood": 0.9}, {"mood": 0.7}]


def test_emotives_only_observation_contributes_without_event(session):
    obs(session, "a")
    session.observe(emotives={"joy": 1.0})
    obs(session, "b")
    assert session.get_stm() == [["a"], ["b"]]
    assert session.get_pattern(session.learn())["emotives"] == [{"joy": 1.0}]


def test_metadata_sorted_unique_and_merged(session):
    session.observe(strings=["a"], metadata={"tag": "x", "book": "t2"})
    session.observe(strings=["b"], metadata={"tag": "x", "book": "t1"})
    name = session.learn()
    assert session.get_pattern(name)["metadata"] == {"book": ["t1", "t2"], "tag": ["x"]}
    session.observe(strings=["a"], metadata={"author": "Smith", "book": 3})
    session.observe(strings=["b"])
    session.learn()
    assert session.get_pattern(name)["metadata"] == {"author": ["Smith"], "book": ["3", "t1", "t2"], "tag": ["x"]}


# -- katoray's fixes of KATO's data-leaking quirks (spec §10.3 items 1-2) ------------------------
def test_accumulators_do_not_leak_into_next_pattern(session):
    first = learn_seq(session, ["p"], ["q"], emotives=[{"joy": 1.0}, {"joy": 0.0}])
    session.observe(strings=["p"], metadata={"src": "one"})
    session.observe(strings=["q"])
    session.learn()  # same pattern, no emotives this time: KATO would store [e1, e2] + [e1, e2]
    stored = session.get_pattern(first)
    assert stored["frequency"] == 2
    assert stored["emotives"] == [{"joy": 1.0}, {"joy": 0.0}]
    second = learn_seq(session, ["r"], ["s"])
    assert session.get_pattern(second)["emotives"] == [] and session.get_pattern(second)["metadata"] == {}


def test_auto_learned_patterns_keep_emotives_and_metadata(store_url, node_id):
    s = KatoSession(node_id=node_id, store=store_url, config={"max_pattern_length": 2})
    s.observe(strings=["a"], emotives={"joy": 0.4}, metadata={"doc": "d1"})
    name = s.observe(strings=["b"], emotives={"joy": 0.6})["auto_learned_pattern"]
    stored = s.get_pattern(name)
    assert stored["emotives"] == [{"joy": 0.4}, {"joy": 0.6}] and stored["metadata"] == {"doc": ["d1"]}
    s.clear_all()


def test_rolling_keeps_entries_of_retained_events(store_url, node_id):
    s = KatoSession(node_id=node_id, store=store_url, config={"max_pattern_length": 2, "stm_mode": "ROLLING"})
    s.observe(strings=["a"], emotives={"v": 1.0})
    s.observe(strings=["b"], emotives={"v": 2.0})
    second = s.observe(strings=["c"], emotives={"v": 3.0})["auto_learned_pattern"]
    assert s.get_pattern(second)["pattern_data"] == [["b"], ["c"]]
    assert s.get_pattern(second)["emotives"] == [{"v": 2.0}, {"v": 3.0}]
    s.clear_all()


# -- §2.4 / §8.2 item 25: auto-learn ------------------------------------------------------------
def auto_session(store_url, node_id, length, mode):
    return KatoSession(node_id=node_id, store=store_url, config={"max_pattern_length": length, "stm_mode": mode})


def test_rolling_trace(store_url, node_id):
    s = auto_session(store_url, node_id, 3, "ROLLING")
    learned, stms = [], []
    for sym in "ABCDE":
        learned.append(s.observe(strings=[sym])["auto_learned_pattern"])
        stms.append(s.get_stm())
    assert learned[:2] == [None, None]
    assert learned[2] == pattern_name([["A"], ["B"], ["C"]])
    assert learned[3] == pattern_name([["B"], ["C"], ["D"]]) and learned[4] == pattern_name([["C"], ["D"], ["E"]])
    assert stms[2:] == [[["B"], ["C"]], [["C"], ["D"]], [["D"], ["E"]]]
    s.clear_all()


def test_clear_trace(store_url, node_id):
    s = auto_session(store_url, node_id, 3, "CLEAR")
    for sym in "XYZ":
        r = s.observe(strings=[sym])
    assert r["auto_learned_pattern"] == pattern_name([["X"], ["Y"], ["Z"]]) and s.get_stm() == []
    s.observe(strings=["W"])
    assert s.get_stm() == [["W"]]
    s.clear_all()


def test_max_pattern_length_one(store_url, node_id):
    s = auto_session(store_url, node_id, 1, "ROLLING")
    assert s.observe(strings=["solo"])["auto_learned_pattern"] is None and s.get_stm() == []
    assert s.observe(strings=["p", "q"])["auto_learned_pattern"] == pattern_name([["p", "q"]])
    assert s.get_stm() == []
    s.clear_all()


@pytest.mark.parametrize("length,symbols,final_len", [(2, "ABC", 1), (4, "ABCDE", 3), (0, "ABCDEFGHIJ", 10)])
def test_rolling_window_sizes(store_url, node_id, length, symbols, final_len):
    s = auto_session(store_url, node_id, length, "ROLLING")
    for sym in symbols:
        s.observe(strings=[sym])
    assert len(s.get_stm()) == final_len
    s.clear_all()


# -- observe_sequence ---------------------------------------------------------------------------
def test_observe_sequence_learn_at_end(session):
    r = session.observe_sequence([{"strings": ["x"]}, {"strings": ["y"]}], learn_at_end=True)
    assert r["final_learned_pattern"] == pattern_name([["x"], ["y"]])
    assert r["auto_learned_patterns"] == [r["final_learned_pattern"]]
    assert r["observations_processed"] == 2 and r["final_stm_length"] == 0
    assert [x["sequence_position"] for x in r["results"]] == [0, 1]


def test_observe_sequence_learn_after_each_and_isolation(session):
    r = session.observe_sequence([{"strings": ["a", "b"]}, {"strings": ["c", "d"]}], learn_after_each=True)
    assert r["auto_learned_patterns"] == [pattern_name([["a", "b"]]), pattern_name([["c", "d"]])]
    r = session.observe_sequence([{"strings": ["e"]}, {"strings": ["f"]}], clear_stm_between=True)
    assert session.get_stm() == [["f"]] and r["isolated"] is True


def test_observe_sequence_empty(session):
    r = session.observe_sequence([])
    assert r["status"] == "completed" and r["observations_processed"] == 0 and r["results"] == []


def test_observe_sequence_validates_everything_first(session):
    with pytest.raises(ValueError, match="observation 1"):
        session.observe_sequence([{"strings": ["ok"]}, {"strings": [3]}], learn_at_end=True)
    assert session.get_stm() == [] and session.kb.count() == 0 and session.time == 0


# -- bad input: ValueError naming the field, nothing stored -------------------------------------
@pytest.mark.parametrize("fields,named", [
    ({"strings": ["a", 3]}, "strings"),
    ({"strings": "ab"}, "strings"),
    ({"emotives": {"joy": "high"}}, "emotives"),
    ({"emotives": {"joy": math.nan}}, "emotives"),
    ({"emotives": {"joy": True}}, "emotives"),
    ({"emotives": [0.5]}, "emotives"),
    ({"metadata": ["book"]}, "metadata"),
    ({"metadata": {1: "x"}}, "metadata"),
    ({"vectors": [[1.0, "x"]]}, "vectors"),
    ({"strings": ["ok", "\ud800"]}, "item 1 .* is not valid Unicode"),    # a lone surrogate: learn could not store it
    ({"metadata": {"book": "\udfff"}}, "metadata"),
])
def test_bad_observation_rejected(session, fields, named):
    obs(session, "before")
    with pytest.raises(ValueError, match=named):
        session.observe(**{"strings": ["s"], **fields})
    assert session.get_stm() == [["before"]] and session.time == 1
    assert session.learn() == "" and session.kb.count() == 0


@pytest.mark.parametrize("config,named", [
    ({"recall_threshold": 1.5}, "recall_threshold"),
    ({"recall_threshold": math.nan}, "recall_threshold"),
    ({"max_predictions": 0}, "max_predictions"),
    ({"persistence": 101}, "persistence"),
    ({"stm_mode": "SOMETIMES"}, "stm_mode"),
    ({"rank_sort_algo": "luck"}, "rank_sort_algo"),
    ({"max_pattern_length": -1}, "max_pattern_length"),
    ({"no_such_key": 1}, "no_such_key"),
    ({"sort_symbols": "yes"}, "sort_symbols"),
])
def test_bad_config_rejected(store_url, node_id, config, named):
    with pytest.raises(ConfigError, match=named):
        KatoSession(node_id=node_id, store=store_url, config=config)
    s = KatoSession(node_id=node_id, store=store_url)
    with pytest.raises(ValueError, match=named):
        s.update_config(config)
    assert s.get_config()["recall_threshold"] == 0.1  # unchanged


def test_config_round_trip(session):
    session.update_config({"config": {"recall_threshold": 0.75}})
    assert session.get_config()["recall_threshold"] == 0.75
    session.update_config({"sort": False})  # KATO's alias
    session.observe(strings=["b", "a"])
    assert session.get_stm() == [["b", "a"]]  # sort_symbols honoured per session (KATO ignores it)


def test_sessions_share_a_node_knowledge_base(tmp_path, node_id):
    url = f"sqlite:///{tmp_path}/kbs"
    a, b = KatoSession(node_id=node_id, store=url), KatoSession(node_id=node_id, store=url)
    name = learn_seq(a, ["x"], ["y"])
    assert b.get_pattern(name)["frequency"] == 1 and b.get_stm() == []
    a.close(); b.close()


# -- predictions through the session, on every backend (§8.2 items 6, 10, 13, 18, 20) ----------
def test_relearned_pattern_predicted_with_its_frequency(session):
    for _ in range(3):
        learn_seq(session, ["freq", "test"])
    obs(session, "freq", "test")
    obs(session, "freq")
    (prediction,) = session.get_predictions()
    assert prediction["frequency"] == 3 and prediction["name"] == pattern_name([["freq", "test"]])[5:]


def test_prediction_emotives_are_averaged(session):
    learn_seq(session, ["e1"], ["e2"], ["e3"], emotives=[{"joy": 1.0}, {"joy": 0.5}, {"joy": 0.3, "confidence": 0.6}])
    obs(session, "e1")
    obs(session, "e2")
    (prediction,) = session.get_predictions()
    assert prediction["emotives"] == pytest.approx({"joy": 0.6, "confidence": 0.6})


def test_past_present_future_through_session(session):
    learn_seq(session, ["beginning"], ["middle"], ["end"])
    obs(session, "middle")
    obs(session, "end")
    (p,) = session.get_predictions()
    assert (p["past"], p["present"], p["future"]) == ([["beginning"]], [["middle"], ["end"]], [])
    assert p["similarity"] == pytest.approx(0.8)


def test_single_symbol_and_threshold_through_session(session):
    learn_seq(session, ["alpha"], ["beta"], ["gamma"])
    obs(session, "alpha")
    assert len(session.get_predictions()) == 1
    session.clear_stm()
    session.update_config({"recall_threshold": 0.1})
    obs(session, "zzz")
    obs(session, "yyy")
    assert session.get_predictions() == []
    session.update_config({"recall_threshold": 0.0})
    assert all(p["similarity"] == 0.0 and p["matches"] == [] for p in session.get_predictions())
