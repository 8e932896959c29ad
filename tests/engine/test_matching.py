"""Matching one flattened pattern against the state: LCS similarity and greedy longest blocks."""
from __future__ import annotations

import difflib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from katoray.engine.matching import (extract, flat_diff, lcs_similarity, matching_blocks, num_flat_extras,
                                     similarity, single_symbol_similarity)
from katoray.engine.prediction import (pre_potential, pre_potential_bound, pre_potential_bounds, scores,
                                       unseen_pre_potential_bound)

TOKENS = st.lists(st.sampled_from("abcde"), max_size=12)
NONEMPTY = st.lists(st.sampled_from("abcde"), min_size=1, max_size=12)


def test_similarity_keeps_katos_float_round_trip():
    # 2·2/6 through ×100/100 is one ulp below 2/3 (spec §4.2)
    assert similarity(["a", "b", "c", "d"], ["a", "c"]) == 0.6666666666666665
    assert lcs_similarity(2, 4, 2) == 0.6666666666666665
    assert 2 * 2 / 6 == 0.6666666666666666


def test_single_symbol_similarity_has_no_round_trip():
    assert single_symbol_similarity(["a", "b", "c", "d"], ["a"]) == 0.4
    assert single_symbol_similarity(["a", "x"], ["a"]) == 2 * 1 / 3


def test_similarity_is_lcs_not_blocks():
    pattern, state = list("bbcabc"), list("cccb")
    assert similarity(pattern, state) == 0.4            # LCS 2 ("c", "b")
    extraction = extract(pattern, state, 0.1)
    assert extraction.matches == ["b"]                  # the block matcher finds one block
    assert extraction.num_blocks == 1
    assert (extraction.start, extraction.stop) == (0, 1)


def test_character_mode_scores_joined_strings():
    value = similarity(["hello", "world"], ["hello", "word"], use_token_matching=False)
    assert value == fuzz.ratio("hello word", "hello world") / 100 == 0.9523809523809522


@settings(max_examples=300, deadline=None)
@given(a=TOKENS, b=TOKENS)
def test_matching_blocks_equal_difflib_without_autojunk(a, b):
    expected = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()[:-1]
    assert matching_blocks(a, b) == [tuple(m) for m in expected]


def test_matching_blocks_ties_go_to_smallest_i_then_j_and_adjacent_blocks_merge():
    assert matching_blocks(list("abab"), list("ab")) == [(0, 0, 2)]
    assert matching_blocks(list("xaya"), list("aa")) == [(1, 0, 1), (3, 1, 1)]
    # difflib's own example: adjacent blocks are reported once
    assert matching_blocks(list("abxcd"), list("abcd")) == [(0, 0, 2), (3, 2, 2)]


def _diff_by_opcodes(a, b):
    missing, extras = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            missing += a[i1:i2]
        if tag in ("insert", "replace"):
            extras += b[j1:j2]
    return sorted(missing), sorted(extras)


@settings(max_examples=200, deadline=None)
@given(a=TOKENS, b=TOKENS)
def test_flat_diff_lists_the_minus_and_plus_lines(a, b):
    missing, extras = flat_diff(a, b)
    assert (sorted(missing), sorted(extras)) == _diff_by_opcodes(a, b)


@settings(max_examples=300, deadline=None)
@given(pattern=NONEMPTY, state=NONEMPTY)
def test_flat_extras_of_the_present_are_the_unmatched_state(pattern, state):
    """X (snr) from compare(present, state) equals |state| − |matches|, the count predict uses."""
    extraction = extract(pattern, state, 0.0)
    present = pattern[extraction.start:extraction.stop]
    _, extras = flat_diff(present, state)
    assert len(extras) == num_flat_extras(len(extraction.matches), len(state))


def test_no_block_is_dropped_above_cutoff_zero_and_kept_at_zero():
    assert extract(["q", "r"], ["x", "y"], 0.1) is None
    kept = extract(["q", "r"], ["x", "y"], 0.0)
    assert kept.matches == [] and kept.num_blocks == 0 and (kept.start, kept.stop) == (0, 2)


# -- pruning bounds (prediction.py) ---------------------------------------------------------------

EVENTS = st.lists(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=3).map(sorted), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(events=EVENTS, state=st.lists(st.sampled_from("abcdefgh"), min_size=2, max_size=8))
def test_bounds_hold_for_the_computed_floats(events, state):
    from rapidfuzz.distance import LCSseq

    flat = [s for e in events for s in e]
    lengths = [len(e) for e in events]
    extraction = extract(flat, state, 0.0)
    pre = pre_potential(*scores(flat, lengths, len(flat), extraction, len(state)))
    lcs = LCSseq.similarity(flat, state)
    single = all(n == 1 for n in lengths)
    bound = pre_potential_bound(lcs, len(flat), single, len(state))
    assert pre <= bound
    assert pre <= unseen_pre_potential_bound(max(lcs, 1), len(state))
    vector = pre_potential_bounds(np.array([lcs]), np.array([len(flat)]), np.array([single]), len(state))
    assert vector.tolist() == [bound]
    if lcs == 1 and single:
        assert pre == bound  # exact in that case


def test_unseen_bound_without_candidates_is_minus_infinity():
    assert unseen_pre_potential_bound(0, 8) == float("-inf")
    assert unseen_pre_potential_bound(8, 8) == 3.0
