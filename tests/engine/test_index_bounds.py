"""The bound tables of the id search hold against brute force: mask tables, the exact longest
common substring, the one-block pre-potential and every class's bound."""
from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import LCSseq

from katoray.engine import index_bounds
from katoray.engine.index_bounds import BoundTable, longest_common_substrings, mask_tables, one_block_pre
from katoray.engine.matching import extract
from katoray.engine.prediction import pre_potential, scores

LETTERS = list("abcdef")


def _longest_common_substring(a, b) -> int:
    return max((k for i in range(len(a)) for j in range(len(b)) for k in range(1, min(len(a) - i, len(b) - j) + 1)
                if list(a[i:i + k]) == list(b[j:j + k])), default=0)


def _covered(flat: list[str], state: list[str]) -> int:
    """The mask of state positions whose symbol the pattern holds."""
    return sum(1 << j for j, s in enumerate(state) if s in flat)


def _run(mask: int) -> int:
    return max((len(r) for r in bin(mask)[2:].split("0")), default=0)


def test_mask_tables_count_bits_and_runs():
    for length in (1, 3, 8, 11):
        ub, run = mask_tables(length)
        assert len(ub) == 1 << length and not ub.flags.writeable
        assert ub.tolist() == [bin(m).count("1") for m in range(1 << length)]
        assert run.tolist() == [_run(m) for m in range(1 << length)]


def _codes(rows: list[list[str]], state: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows as the id search codes them: 0 pads, 1 outside the state, 2.. the state's symbols."""
    codes = {s: k + 2 for k, s in enumerate(dict.fromkeys(state))}
    width = max(map(len, rows))
    matrix = np.zeros((len(rows), width), np.uint32)
    for i, row in enumerate(rows):
        matrix[i, :len(row)] = [codes.get(s, 1) for s in row]
    return matrix, np.array([codes[s] for s in state], np.uint32)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.sampled_from(LETTERS), min_size=1, max_size=9), min_size=1, max_size=6),
       state=st.lists(st.sampled_from(LETTERS[:4]), min_size=1, max_size=10))
def test_longest_common_substrings_by_dynamic_programming(rows, state):
    matrix, state_codes = _codes(rows, state)
    found = longest_common_substrings(matrix, state_codes)
    assert found.tolist() == [_longest_common_substring(row, state) for row in rows]


def test_longest_common_substrings_too_large_to_tabulate(monkeypatch):
    monkeypatch.setattr(index_bounds, "_MAX_DP_CELLS", 8)
    matrix, state_codes = _codes([list("abc")], list("abc"))
    assert longest_common_substrings(matrix, state_codes).tolist() == [-1]


@settings(max_examples=300, deadline=None)
@given(chain=st.lists(st.sampled_from(LETTERS), min_size=1, max_size=12),
       state=st.lists(st.sampled_from(LETTERS[:5]), min_size=1, max_size=12))
def test_one_block_pre_is_the_pre_potential(chain, state):
    """One-symbol events, the longest common substring is the whole LCS, no two equal state
    symbols side by side: the pre-potential is one_block_pre's, bit for bit."""
    lcs = LCSseq.similarity(chain, state)
    assume(lcs >= 1 and _longest_common_substring(chain, state) == lcs)
    assume(not any(a == b and a in state for a, b in zip(chain, chain[1:])))
    extraction = extract(chain, state, 0.01)
    assert len(extraction.matches) == lcs and extraction.num_blocks == 1
    pre = pre_potential(*scores(chain, [1] * len(chain), len(chain), extraction, len(state)))
    assert one_block_pre(np.array([lcs]), np.array([len(chain)]), len(state))[0] == pre


@settings(max_examples=150, deadline=None)
@given(patterns=st.lists(st.lists(st.lists(st.sampled_from(LETTERS), min_size=1, max_size=2), min_size=1,
                                           max_size=7), min_size=1, max_size=12),
       state=st.lists(st.sampled_from(LETTERS[:5]), min_size=2, max_size=9))
def test_every_pattern_is_within_its_class_bound(patterns, state):
    """A class's bound (largest over the KB's lengths and kinds of events) is >= the real
    pre-potential of every pattern in it."""
    lengths = np.array([sum(map(len, p)) for p in patterns])
    single = np.array([all(len(e) == 1 for e in p) for p in patterns])
    table = BoundTable(len(state), True, 10 ** 6, int(lengths.min()), int(lengths.max()),
                       (not single.all(), bool(single.any())))
    assert table.table is not None
    for events in patterns:
        flat = [s for e in events for s in e]
        extraction = extract(flat, state, 0.01)
        if extraction is None:
            continue
        pre = pre_potential(*scores(flat, [len(e) for e in events], len(flat), extraction, len(state)))
        assert table.class_bound[_covered(flat, state)] >= pre
    order = table.class_order()
    assert sorted(order.tolist()) == list(range(1, 1 << len(state)))
    assert (np.diff(table.class_bound[order]) <= 0).all()


def test_no_table_no_class_bound():
    """A grid too large to build: every class may hold anything (+inf), bounds computed directly."""
    table = BoundTable(8, True, 10, 1, 3000, (False, True))
    assert table.table is None and np.isinf(table.class_bound).all()
