"""Bound tables of the id search (``index_search``): what a pattern's covered state positions, its
code row and its exact LCS allow its pre-potential to be, and when they fix it exactly.

A pattern's covered positions (a mask of L bits, L = state length) give ``ub`` (their number: an
upper bound on the LCS) and ``run`` (the longest run of consecutive covered positions: an upper
bound on the longest common substring r). ``BoundTable`` turns such bounds into upper bounds on
the pre-potential (``prediction.block_bounds``, tabulated when the grid is small: the table is a
pure function of the state length and the KB's lengths and kinds of events, so small ones are
kept for later searches), and gives each class of patterns (a mask, or a ``ub``) the largest
bound any of its patterns can have, so a search can skip whole classes. ``one_block_pre`` is the
exact pre-potential of a pattern matched in one block (the search knows when from
``longest_common_substrings``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from katoray.engine.prediction import block_bounds

CLASS_BITS = 16          # states up to this long: a pattern's class is its mask (2^16 classes at most)
_MIN_TABLE = 1 << 12     # bound-table cells always worth building
_MAX_CACHED = 1 << 16    # bound-table cells of a table kept for later searches (512 KiB)
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


def class_tables(len_state: int, mask_classes: bool) -> tuple[np.ndarray, np.ndarray]:
    """(``ub``, run) of every class: masks of ``len_state`` bits, or ``ub`` counts (run = ``ub``)."""
    if mask_classes:
        return mask_tables(len_state)
    ub = np.arange(len_state + 1)
    return ub, ub


def _tables(len_state: int, mask_classes: bool, min_length: int, max_length: int,
            kinds: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(``block_bounds`` over every (lcs, r̂, length, single, fix-up), the bound of every class):
    pure functions of their arguments, so shared by every search of the same shape."""
    shape = (len_state + 1, len_state + 1, max_length + 1, 2, 2)
    grid = np.indices(shape).reshape(5, -1)
    with np.errstate(divide="ignore", invalid="ignore"):  # length 0: never looked up
        table = block_bounds(grid[0], grid[1], grid[2], grid[3] == 1, grid[4] == 1, len_state).reshape(shape)
    class_ub, class_run = class_tables(len_state, mask_classes)
    class_bound = _by_ub_run(table, len_state, min_length, max_length, kinds)[class_ub, class_run]
    table.flags.writeable = class_bound.flags.writeable = False
    return table, class_bound


_cached_tables = lru_cache(maxsize=32)(_tables)


def _by_ub_run(table: np.ndarray, top: int, min_length: int, max_length: int, kinds: tuple[int, ...]) -> np.ndarray:
    """[u, r]: the largest bound of a pattern with ``ub`` u and run r, over every length and kind
    of events the KB holds, the fix-up allowed (-inf where no length fits)."""
    lengths = np.arange(min_length, max_length + 1)
    u = np.arange(top + 1)[:, None, None]
    r = np.arange(top + 1)[None, :, None]
    lcs = np.minimum(u, lengths)                      # (top+1, 1, n_lengths)
    longest = np.minimum(np.minimum(r, u), lengths)   # (top+1, top+1, n_lengths)
    best = np.full((top + 1, top + 1), -np.inf)
    for kind in kinds:
        if len(lengths):
            best = np.maximum(best, table[np.broadcast_to(lcs, longest.shape), longest, lengths, kind, 1].max(axis=2))
    return best


class BoundTable:
    """Upper bounds on the pre-potential for one state: ``of`` per candidate, ``class_bound`` per
    class of covered positions (``class_tables``), +inf where the table would be too large.
    ``event_kinds``: whether the KB holds patterns whose events are not all one symbol, and ones
    whose events are (``SymbolIndex.event_kinds``)."""

    def __init__(self, len_state: int, mask_classes: bool, num_candidates: int, min_length: int, max_length: int,
                 event_kinds: tuple[bool, bool]) -> None:
        self.len_state = len_state
        self.class_ub, self.class_run = class_tables(len_state, mask_classes)
        self.table = None
        self.class_bound = np.full(len(self.class_ub), np.inf)
        cells = (len_state + 1) ** 2 * (max_length + 1) * 4
        if cells <= max(num_candidates, _MIN_TABLE):
            kinds = tuple(kind for kind, held in enumerate(event_kinds) if held)  # 0: not single, 1: single
            tables = _cached_tables if cells <= _MAX_CACHED else _tables
            self.table, self.class_bound = tables(len_state, mask_classes, max(min_length, 1), max_length, kinds)

    def class_order(self) -> np.ndarray:
        """Every class but 0 (no shared symbol), best bound first (then larger ``ub`` and run)."""
        classes = np.arange(1, len(self.class_ub))
        return classes[np.lexsort((-self.class_run[classes], -self.class_ub[classes], -self.class_bound[classes]))]

    def of(self, lcs, longest, lengths, single, may_fix_up) -> np.ndarray:
        """``block_bounds`` element-wise (from the table when it was built)."""
        if self.table is None:
            return block_bounds(lcs, longest, lengths, single, may_fix_up, self.len_state)
        may_fix_up = np.broadcast_to(np.asarray(may_fix_up, np.intp), np.shape(lcs))
        return self.table[lcs, longest, lengths, single.astype(np.intp), may_fix_up]
