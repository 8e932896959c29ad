"""``fuzzy_token_threshold``: KATO's fuzzy token matching, worked by hand.

Learned: one event ``[apple, banana, cherry, date, elderberry]``; observed one event ``[apple,
bannana, chery]``. Exact similarity: LCS 1 of 5 + 3 symbols, 2/8 = 0.25 (the recall gate does
not change). At 0.85, ``bannana`` matches ``banana`` (ratio 2*6/13 = 92.3) and ``chery``
matches ``cherry`` (2*5/11 = 90.9): matches are the three observed tokens, two anomalies; the
blocks stay exact (``apple`` alone), so past/present/future do not move. evidence = confidence
= 3/5, snr = 1 (every state token matched), and missing/extras are KATO's event-aligned lists
against the matches (by value: the observed spellings).
"""
from __future__ import annotations

import pytest

from katoray import KatoSession
from katoray.engine.config import SessionConfig
from katoray.engine.matching import fuzzy_extract
from katoray.errors import ConfigError

FRUIT = ["apple", "banana", "cherry", "date", "elderberry"]


def _session(threshold: float) -> KatoSession:
    s = KatoSession("fuzzy", "memory://", {"fuzzy_token_threshold": threshold})
    s.observe(strings=FRUIT)
    s.observe(strings=["x"])
    s.learn()
    s.observe(strings=["apple", "bannana", "chery"])
    return s


def test_misspelled_tokens_match_and_are_reported_as_anomalies():
    (p,) = _session(0.85).get_predictions()
    assert p["matches"] == ["apple", "bannana", "chery"]
    assert p["anomalies"] == [{"observed": "bannana", "expected": "banana", "similarity": 12 / 13 * 100 / 100},
                              {"observed": "chery", "expected": "cherry", "similarity": 10 / 11 * 100 / 100}]
    assert p["similarity"] == 2 * 1 / 9 * 100 / 100    # exact LCS over 6 + 3 symbols: the gate is unchanged
    assert (p["past"], p["present"], p["future"]) == ([], [FRUIT], [["x"]])
    assert p["evidence"] == 3 / 6 and p["confidence"] == 3 / 5 and p["snr"] == 1.0
    assert p["missing"] == [["banana", "cherry", "date", "elderberry"]]
    assert p["extras"] == [["bannana", "chery"]]


def test_threshold_zero_is_exact_matching():
    (p,) = _session(0.0).get_predictions()
    assert p["matches"] == ["apple"] and p["anomalies"] == []
    assert p["snr"] == (2 - 2) / (2 + 2)


def test_a_high_threshold_keeps_only_close_spellings():
    (p,) = _session(0.92).get_predictions()   # 92.3 passes, 90.9 does not
    assert p["matches"] == ["apple", "bannana"]
    assert [a["observed"] for a in p["anomalies"]] == ["bannana"]


def test_ties_go_to_the_first_pattern_token_and_repeats_count_each_time():
    extraction, anomalies = fuzzy_extract(["cat", "bat", "cab"], ["cat", "hat", "hat"], 0.0, 0.6)
    assert extraction.matches == ["cat", "hat", "hat"]          # hat: cat and bat tie at 66.7, cat first
    assert [a["expected"] for a in anomalies] == ["cat", "cat"]
    assert (extraction.start, extraction.stop, extraction.num_blocks) == (0, 1, 1)


def test_out_of_range_thresholds_are_refused():
    for bad in (-0.1, 1.5, "0.8", True):
        with pytest.raises(ConfigError, match="fuzzy_token_threshold"):
            SessionConfig(fuzzy_token_threshold=bad)
