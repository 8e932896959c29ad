"""The id-index path of ``predict`` (``index_search``, taken for MemoryStore) equals
``predict_full_scan`` wherever its shortcuts apply, and the bounds it skips by hold."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import LCSseq

from katoray.engine import index_bounds, index_search
from katoray.engine.config import SessionConfig
from katoray.engine.matching import extract, matching_blocks, similarity
from katoray.engine.naming import pattern_hash
from katoray.engine.predict import predict, predict_full_scan
from katoray.engine.prediction import block_bounds, pre_potential, scores
from katoray.store.base import PatternDelta, symbol_index
from katoray.store.memory import MemoryStore

LETTERS = list("abcdefg")
THRESHOLDS = st.sampled_from([0.01, 0.1, 0.2, 0.35, 0.5, 0.8])


def _kb(patterns: list[list[list[str]]], names: list[str] | None = None) -> MemoryStore:
    kb = MemoryStore("index_search_kato")
    names = names or [pattern_hash(events) for events in patterns]
    kb.apply([PatternDelta(name, events) for name, events in zip(names, patterns)])
    return kb


def _brute_force(kb, state: list[str], config: SessionConfig) -> tuple[list[tuple[float, str]], int]:
    """KATO's pruning from every pattern: the K best (pre-potential, name) and how many passed,
    counted up to K + 1."""
    scored = []
    for record in kb.iter_patterns():
        flat = [s for e in record.pattern_data for s in e]
        if similarity(flat, state) >= config.recall_threshold:
            extraction = extract(flat, state, config.recall_threshold)
            pre = pre_potential(*scores(flat, [len(e) for e in record.pattern_data], len(flat), extraction, len(state)))
            scored.append((-pre, record.name))
    scored.sort()
    limit = 3 * config.max_predictions
    return [(-neg, name) for neg, name in scored[:limit]], min(len(scored), limit + 1)


def _assert_exact(kb, stm, config) -> None:
    """The kept list, ``passing`` and the whole result all equal the full scan's."""
    state = [s for e in stm for s in e]
    index = symbol_index(kb, list(dict.fromkeys(state)))
    assert index is not None  # the id path is the one under test
    found = index_search.IndexSearch(kb, index, state, config, 3 * config.max_predictions).run()
    assert ([(pre, name) for pre, name, _ in found.kept()], found.passing()) == _brute_force(kb, state, config)
    assert predict(kb, stm, config) == predict_full_scan(kb, stm, config)


@settings(max_examples=40, deadline=None)
@given(chains=st.lists(st.lists(st.sampled_from(LETTERS[:6]), min_size=5, max_size=5), min_size=10,
                       max_size=150, unique_by=tuple),
       stm=st.lists(st.sampled_from(LETTERS), min_size=2, max_size=7),
       max_predictions=st.integers(1, 4), threshold=THRESHOLDS)
def test_one_length_single_symbol_events(chains, stm, max_predictions, threshold):
    """Node0's shape (every pattern the same length, one symbol per event); small K, so chunks,
    batches and ties at the K-th key all happen."""
    kb = _kb([[[s] for s in chain] for chain in chains])
    _assert_exact(kb, [[s] for s in stm], SessionConfig(recall_threshold=threshold, max_predictions=max_predictions))


EVENT = st.lists(st.sampled_from(LETTERS), min_size=1, max_size=3).map(sorted)


@settings(max_examples=40, deadline=None)
@given(patterns=st.lists(st.lists(EVENT, min_size=1, max_size=6).filter(lambda e: sum(map(len, e)) >= 2),
                         min_size=1, max_size=60),
       deleted=st.sets(st.integers(0, 59), max_size=20), stm=st.lists(EVENT, min_size=1, max_size=4),
       max_predictions=st.integers(1, 5), threshold=THRESHOLDS)
def test_mixed_lengths_events_and_deletes(patterns, deleted, stm, max_predictions, threshold):
    kb = _kb(patterns)
    kb.delete_patterns([pattern_hash(patterns[i]) for i in deleted if i < len(patterns)])
    _assert_exact(kb, stm, SessionConfig(recall_threshold=threshold, max_predictions=max_predictions))


@settings(max_examples=30, deadline=None)
@given(chains=st.lists(st.lists(st.sampled_from(LETTERS[:4]), min_size=3, max_size=4), min_size=5, max_size=80),
       prefixes=st.lists(st.sampled_from(["aaaaaaaa", "aaaaaaa", "aaaaaaab", "é", "", "\x00"]), min_size=80,
                         max_size=80),
       stm=st.lists(st.sampled_from(LETTERS[:5]), min_size=2, max_size=5), max_predictions=st.integers(1, 3))
def test_names_sharing_their_first_bytes(chains, prefixes, stm, max_predictions):
    """Name keys tie (equal first 8 bytes, non-ASCII, short names): the full names decide."""
    names = [f"{prefixes[i]}{i:03d}" for i in range(len(chains))]
    kb = _kb([[[s] for s in chain] for chain in chains], names)
    _assert_exact(kb, [[s] for s in stm], SessionConfig(max_predictions=max_predictions))


@settings(max_examples=25, deadline=None)
@given(chains=st.lists(st.lists(st.sampled_from(LETTERS), min_size=3, max_size=30), min_size=5, max_size=40),
       stm=st.lists(st.sampled_from(LETTERS + ["x", "y"]), min_size=9, max_size=80),
       max_predictions=st.integers(1, 4), threshold=THRESHOLDS)
def test_long_states(chains, stm, max_predictions, threshold):
    """States of 9..64 symbols (wider position masks) and beyond 64 (position counts, no mask)."""
    kb = _kb([[[s] for s in chain] for chain in chains])
    _assert_exact(kb, [[s] for s in stm], SessionConfig(recall_threshold=threshold, max_predictions=max_predictions))


def test_small_steps_and_bounds_without_a_table(monkeypatch):
    """Code rows a few at a time, and one long pattern that makes the bound table too big to build."""
    monkeypatch.setattr(index_search, "_MAX_CELLS", 16)
    rng = random.Random(7)
    chains = [[rng.choice(LETTERS) for _ in range(rng.randint(2, 9))] for _ in range(300)]
    chains.append([rng.choice(LETTERS) for _ in range(3000)])
    kb = _kb([[[s] for s in chain] for chain in chains])
    for _ in range(12):
        stm = [[rng.choice(LETTERS)] for _ in range(rng.randint(2, 8))]
        for config in (SessionConfig(max_predictions=2), SessionConfig(recall_threshold=0.3, max_predictions=5)):
            _assert_exact(kb, stm, config)


@pytest.mark.parametrize("sample_size, dp_cells", [(1, 0), (3, 1 << 10), (1 << 16, 0)])
def test_groups_sized_from_a_tiny_sample_and_no_known_pre_potentials(monkeypatch, sample_size, dp_cells):
    """Group sizes come from a sample (here of 1 or 3 patterns, so most classes look empty) and
    one-block pre-potentials may be unknown (no dynamic programming): neither changes the result."""
    monkeypatch.setattr(index_search, "_SAMPLE_SIZE", sample_size)
    monkeypatch.setattr(index_bounds, "_MAX_DP_CELLS", dp_cells)
    rng = random.Random(11)
    chains = {tuple(rng.choice(LETTERS) for _ in range(6)) for _ in range(400)}
    kb = _kb([[[s] for s in chain] for chain in sorted(chains)])
    for _ in range(10):
        stm = [[rng.choice(LETTERS)] for _ in range(rng.randint(2, 9))]
        for config in (SessionConfig(max_predictions=3), SessionConfig(recall_threshold=0.4, max_predictions=20)):
            _assert_exact(kb, stm, config)


def test_ties_at_the_kth_key_in_a_later_chunk_go_to_the_smaller_name():
    """K = 3 patterns with pre-potential 0.75 come from the first chunk (ub 3: they also hold "c",
    out of order); two more with 0.75 and the same first 8 name bytes come later (ub 2). The one
    whose name sorts before the K-th kept name must still enter, even when it is learned after
    one that sorts behind it (evaluation must follow names, not ids)."""
    state = list("abcdefgh")
    first = [[f"c{x}{x}ab{x}{x}{x}", f"aaaaaaaa{n}"] for x, n in zip("pqrstu", "45689z")]
    later = [["xyabvwxy", "aaaaaaaa7"], ["yxabwvyx", "aaaaaaaa1"]]
    kb = _kb([[[s] for s in chain] for chain, _ in first + later], [name for _, name in first + later])
    config = SessionConfig(max_predictions=1)
    _assert_exact(kb, [[s] for s in state], config)
    kept = index_search.IndexSearch(kb, symbol_index(kb, state), state, config, 3).run().kept()
    assert [(pre, name) for pre, name, _ in kept] == [(0.75, "aaaaaaaa1"), (0.75, "aaaaaaaa4"), (0.75, "aaaaaaaa5")]


# -- the bounds ---------------------------------------------------------------------------------

def _longest_common_substring(a: list[str], b: list[str]) -> int:
    return max((k for i in range(len(a)) for j in range(len(b)) for k in range(1, min(len(a) - i, len(b) - j) + 1)
                if a[i:i + k] == b[j:j + k]), default=0)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.lists(st.sampled_from(LETTERS[:4]), min_size=1, max_size=2), min_size=1, max_size=9),
       state=st.lists(st.sampled_from(LETTERS[:5]), min_size=1, max_size=12),
       slack=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_block_bounds_hold(events, state, slack):
    """The bound is >= the pre-potential for exact (LCS, r) and for any larger stand-ins of them."""
    flat = [s for e in events for s in e]
    extraction = extract(flat, state, 0.5)
    lcs = LCSseq.similarity(flat, state)
    if extraction is None:
        return
    pre = pre_potential(*scores(flat, [len(e) for e in events], len(flat), extraction, len(state)))
    single = all(len(e) == 1 for e in events)
    may_fix_up = any(a == b and a in state for a, b in zip(flat, flat[1:]))
    longest = _longest_common_substring(flat, state)
    bound = block_bounds(np.array([lcs + slack[0]]), np.array([longest + slack[1]]), np.array([len(flat)]),
                         np.array([single]), np.array([may_fix_up]), len(state))[0]
    assert bound >= pre
    assert max(n for _, _, n in matching_blocks(flat, state)) == longest  # the first greedy block is an LCS-string


@settings(max_examples=200, deadline=None)
@given(chain=st.lists(st.sampled_from(LETTERS[:3]), min_size=2, max_size=9),
       state=st.lists(st.sampled_from(LETTERS[:5]), min_size=1, max_size=14))
def test_block_bounds_hold_for_single_symbol_events(chain, state):
    test_block_bounds_hold.hypothesis.inner_test([[s] for s in chain], state, (0, 0))


def test_the_past_fix_up_is_bounded():
    """``a a b`` against a state holding ``a b``: the fix-up adds the first ``a`` to the present
    (confidence 2/3, not 1), which with a negative snr scores higher than one clean block."""
    flat, state = list("aabc"), list("abxyzwv")
    extraction = extract(flat, state, 0.1)
    pre = pre_potential(*scores(flat, [1] * 4, 4, extraction, 7))
    bound = block_bounds(np.array([2]), np.array([2]), np.array([4]), np.array([True]), np.array([True]), 7)[0]
    assert pre > (2 / 4 + 1.0) * (-1 / 9) + 1.0 and bound >= pre


def test_one_block_without_fix_up_is_bounded_exactly():
    """Node0's tie case: a contiguous match of the whole LCS scores exactly its bound, so ties at
    the K-th pre-potential are settled by name instead of by evaluating everything."""
    state = list("abcdefgh")
    for flat in (list("xxcdxxxx"), list("xabcdxxx"), list("cdefghxx")):
        extraction = extract(flat, state, 0.1)
        pre = pre_potential(*scores(flat, [1] * 8, 8, extraction, 8))
        lcs = LCSseq.similarity(flat, state)
        bound = block_bounds(np.array([lcs]), np.array([lcs]), np.array([8]), np.array([True]), np.array([False]), 8)[0]
        assert bound == pre
