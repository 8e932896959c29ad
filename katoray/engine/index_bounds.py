"""Bound tables of the id search (``index_search``): what a pattern's covered state positions, its
code row and its exact LCS allow its pre-potential to be, and when they fix it exactly.

A pattern's covered positions (a mask of L bits, L = state length) give ``ub`` (their number: an
upper bound on the LCS) and ``run`` (the longest run of consecutive covered positions: an upper
bound on the longest common substring r). ``BoundTable`` turns such bounds into upper bounds on
the pre-potential (``prediction.block_bounds``, tabulated once per call when the grid is small),
and gives each class of patterns (a mask, or a ``ub``) the largest bound any of its patterns can
have, so a search can skip whole classes.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from katoray.engine.prediction import block_bounds

CLASS_BITS = 16          # states up to this long: a pattern's class is its mask (2^16 classes at most)
_MIN_TABLE = 1 << 12     # bound-table cells always worth building
_MAX_DP_CELLS = 1 << 10  # row width × state length at most for the longest common substring


@lru_cache(maxsize=CLASS_BITS)
def mask_tables(len_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(``ub``, ``run``) of every mask of ``len_state`` bits (both indexed by the mask), read-only."""
    masks = np.arange(1 << len_state, dtype=np.uint32)
    ub, run = np.bitwise_count(masks).astype(np.int64), longest_runs(masks)
    ub.flags.writeable = run.flags.writeable = False
    return ub, run


def longest_runs(held: np.ndarray) -> np.ndarray:
    """Length of the longest run of consecutive set bits of each mask."""
    runs = np.zeros(len(held), np.int64)
    held = held.copy()
    while True:
        nonzero = held != 0
        if not nonzero.any():
            return runs
        runs += nonzero
        held &= held >> 1


def longest_common_substrings(codes: np.ndarray, state_codes: np.ndarray) -> np.ndarray:
    """Length of the longest common substring of each code row (n × width, 0-padded) with the
    state's codes, by dynamic programming over the rows at once; -1 for every row when the
    table would be too large (width × state length > ``_MAX_DP_CELLS``)."""
    n, width = codes.shape
    if width * len(state_codes) > _MAX_DP_CELLS:
        return np.full(n, -1, np.int64)
    run = np.zeros((n, len(state_codes) + 1), np.int64)  # run[:, j+1]: common run ending at state j
    longest = np.zeros(n, np.int64)
    for column in codes.T:  # pads (0) and outside symbols (1) equal no state code
        run[:, 1:] = np.where(column[:, None] == state_codes[None, :], run[:, :-1] + 1, 0)
        np.maximum(longest, run.max(axis=1), out=longest)
    return longest


def one_block_pre(lcs: np.ndarray, lengths: np.ndarray, len_state: int) -> np.ndarray:
    """Pre-potential of patterns of one-symbol events matched in one greedy block of ``lcs``
    symbols whose present is that block (no fix-up): evidence ``lcs/length``, confidence 1,
    fragmentation 0, with ``prediction.pre_potential``'s float steps."""
    with np.errstate(divide="ignore", invalid="ignore"):  # lcs 0 never reaches here: only masked out
        extras = len_state - lcs
        snr = (2.0 * lcs - extras) / (2.0 * lcs + extras)
        return (lcs / lengths + lcs / lcs) * snr + 1.0 / (0.0 + 1)


class BoundTable:
    """Upper bounds on the pre-potential for one state: ``of`` per candidate, ``class_bound`` per
    class of covered positions (class ``c`` has ``ub`` ``class_ub[c]`` and run ``class_run[c]``,
    ``class_counts[c]`` patterns)."""

    def __init__(self, class_ub: np.ndarray, class_run: np.ndarray, class_counts: np.ndarray, min_length: int,
                 max_length: int, single_symbol_events: np.ndarray, len_state: int) -> None:
        self.len_state = len_state
        present = np.flatnonzero(class_counts)
        self.top = min(int(np.max(class_ub[present], initial=0)), len_state)
        self.shape = (self.top + 1, self.top + 1, max_length + 1, 2, 2)
        self.table = None
        self.class_bound = np.full(len(class_counts), np.inf)
        self.class_ub, self.class_run, self.class_counts = class_ub, class_run, class_counts
        if np.prod(self.shape) <= max(int(class_counts.sum()), _MIN_TABLE):
            grid = np.indices(self.shape).reshape(5, -1)
            with np.errstate(divide="ignore", invalid="ignore"):  # length 0: never looked up
                self.table = block_bounds(grid[0], grid[1], grid[2], grid[3] == 1, grid[4] == 1,
                                          len_state).reshape(self.shape)
            kinds = np.flatnonzero([not single_symbol_events.all(), single_symbol_events.any()])
            by_ub_run = self._by_ub_run(max(min_length, 1), max_length, kinds)
            self.class_bound = by_ub_run[np.minimum(class_ub, self.top), np.minimum(class_run, self.top)]

    def _by_ub_run(self, min_length: int, max_length: int, kinds: np.ndarray) -> np.ndarray:
        """[u, r]: the largest bound of a pattern with ``ub`` u and run r, over every length and
        kind of events the KB holds, the fix-up allowed (-inf where no length fits)."""
        lengths = np.arange(min_length, max_length + 1)
        u = np.arange(self.top + 1)[:, None, None]
        r = np.arange(self.top + 1)[None, :, None]
        lcs = np.minimum(u, lengths)                      # (top+1, 1, n_lengths)
        longest = np.minimum(np.minimum(r, u), lengths)   # (top+1, top+1, n_lengths)
        best = np.full((self.top + 1, self.top + 1), -np.inf)
        for kind in kinds.tolist():
            if len(lengths):
                values = self.table[np.broadcast_to(lcs, longest.shape), longest, lengths, kind, 1]
                best = np.maximum(best, values.max(axis=2))
        return best

    def class_order(self) -> np.ndarray:
        """The classes holding patterns (class 0, no shared symbol, excluded), best bound first."""
        present = np.flatnonzero(self.class_counts)
        present = present[present != 0]
        return present[np.lexsort((-self.class_run[present], -self.class_ub[present], -self.class_bound[present]))]

    def of(self, lcs, longest, lengths, single, may_fix_up) -> np.ndarray:
        """``block_bounds`` element-wise (from the table when it was built)."""
        if self.table is None:
            return block_bounds(lcs, longest, lengths, single, may_fix_up, self.len_state)
        may_fix_up = np.broadcast_to(np.asarray(may_fix_up, np.intp), np.shape(lcs))
        return self.table[lcs, longest, lengths, single.astype(np.intp), may_fix_up]
