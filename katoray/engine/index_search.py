"""KATO's top-K pruning over a KB's integer-id index (``store.base.SymbolIndex``), exactly.

``predict`` keeps the first ``K`` gate-passing candidates by (pre-potential descending, name
ascending) and must know whether more than ``K`` passed (``passing``). This module finds both
while scoring only candidates that could still enter; it serves token matching with a positive
``recall_threshold``, where a candidate must share a symbol with the state.

How (L = state length; ``kth`` = the K-th kept key (-pre-potential, name) once K are kept):

1. One pass over the state symbols' id lists (each symbol ORs in the bits of the state positions
   it fills) gives every sharing pattern the set of state positions it covers. ``ub`` = their
   number (capped by the pattern's length) bounds the LCS; the longest run of consecutive covered
   positions bounds the longest common substring r (its positions are consecutive and all
   covered). States longer than 64 symbols count positions instead (no run: r̂ = ``ub``).
2. Candidates go in chunks, highest ``ub`` first. A chunk is skipped with everything after it
   once the best bound any pattern of its ``ub`` could have is below the K-th kept pre-potential.
3. Inside a chunk, bounds tighten in steps, each dropping the candidates whose best possible key
   (-bound, name) is not better than the K-th kept key (an equal bound with a later name cannot
   enter: ties go to the smaller name): from ``ub`` and the run (``prediction.block_bounds``);
   then from the pattern's code row (0 pads, 1 stands for every symbol outside the state, 2.. the
   state's distinct symbols): r̂ = 1 + the longest run of pattern neighbours that are neighbours
   in the state too, and whether two equal state symbols sit side by side (KATO's past fix-up
   needs that); then the exact LCS (RapidFuzz on the rows as strings), which also decides the
   recall gate.
4. Survivors are evaluated in order of (bound descending, name ascending), in growing batches
   (name order from the index's name keys), and evaluation stops at the first whose best
   possible key is not better than the K-th kept key: every later candidate is no better.
5. ``passing`` counts every gate-passing candidate, evaluated or not, up to K + 1. A candidate passes for sure
   when even LCS 1 reaches the threshold (with 8-symbol states and patterns and KATO's default
   0.1 all do); only the others get their exact LCS counted.

Every bound repeats ``pre_potential``'s float steps with inputs that are each no better than the
real ones, and IEEE rounding is monotone, so a bound holds between the computed floats: a skipped
candidate is never one the full scan keeps. Equal code rows (with equal event lengths) have equal
pre-potentials, so each is computed once per call.
"""
from __future__ import annotations

from bisect import insort

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from katoray.engine.config import SessionConfig
from katoray.engine.matching import extract, index_state, lcs_similarity
from katoray.engine.prediction import block_bounds, pre_potential, scores
from katoray.errors import StoreError
from katoray.store.base import KnowledgeBase, SymbolIndex

_PAD, _OUTSIDE, _FIRST_CODE = 0, 1, 2  # codes in a pattern's row
_MASK_BITS = 64                         # state positions that fit a mask of covered positions
_MAX_CELLS = 1 << 22                    # code-matrix cells per step: bounds memory for long patterns
_FIRST_CHUNK = 2                        # the first chunk and batch hold >= 2·K candidates, then 4x


class IndexSearch:
    """The kept candidates (``kept``) and how many pass the gate, up to K + 1 (``passing``), for one state."""

    def __init__(self, kb: KnowledgeBase, index: SymbolIndex, state: list[str], config: SessionConfig,
                 limit: int) -> None:
        self.kb, self.index, self.state, self.limit = kb, index, state, limit
        self.threshold, self.len_state = config.recall_threshold, len(state)
        self.distinct = list(dict.fromkeys(state))
        self.codes = {symbol: k + _FIRST_CODE for k, symbol in enumerate(self.distinct)}
        self.state_code = "".join(chr(self.codes[s]) for s in state)
        self.positions = index_state(self.state_code)
        self.best: list[tuple[float, str, float]] = []  # (-pre, name, similarity), ascending
        self.memo: dict[object, float] = {}
        self._code_tables()
        self._candidates()
        self._gate()
        self._tables()

    # -- candidates, gate, bound tables ---------------------------------------------------------
    def _code_tables(self) -> None:
        """``lut``: symbol id -> code; ``neighbours[a, b]``: code b follows code a somewhere in the state."""
        self.lut = np.full(self.index.num_symbol_ids + 1, _OUTSIDE, np.uint32)
        for symbol, symbol_id in zip(self.distinct, self.index.symbol_ids):
            if symbol_id >= 0:
                self.lut[symbol_id] = self.codes[symbol]
        self.neighbours = np.zeros((len(self.distinct) + _FIRST_CODE,) * 2, bool)
        for a, b in zip(self.state, self.state[1:]):
            self.neighbours[self.codes[a], self.codes[b]] = True

    def _candidates(self) -> None:
        """Ids sharing a symbol with the state, the state positions they cover (bits) and ``ub``."""
        lists = [(ids, symbol) for symbol, ids in zip(self.distinct, self.index.postings) if len(ids)]
        self.has_mask = self.len_state <= _MASK_BITS
        if self.has_mask:  # OR each symbol's position bits into a dense mask per pattern id
            dtype = np.dtype(f"uint{max(8, 1 << (self.len_state - 1).bit_length())}")
            bits = dict.fromkeys(self.distinct, 0)
            for j, symbol in enumerate(self.state):
                bits[symbol] |= 1 << j
            held = np.zeros(len(self.index.lengths), dtype)
            for ids, symbol in lists:
                held[ids] |= dtype.type(bits[symbol])  # ids are unique within a list
        else:  # too many positions for a mask: count the positions each symbol fills
            counts = {symbol: float(self.state.count(symbol)) for _, symbol in lists}
            held = np.bincount(np.concatenate([ids for ids, _ in lists] or [np.zeros(0, np.uint32)]),
                               np.repeat([counts[s] for _, s in lists], [len(ids) for ids, _ in lists]),
                               minlength=len(self.index.lengths))
        self.ids = np.flatnonzero(held != 0)
        self.held = held[self.ids]
        self.ub = (np.bitwise_count(self.held) if self.has_mask else self.held).astype(np.int64)

    def _similarity(self, lcs, lengths):
        """The gate similarity of ``matching.lcs_similarity``, element-wise (same float steps)."""
        return (2.0 * lcs / (lengths + self.len_state) * 100.0) / 100.0

    def _gate(self) -> None:
        """Drop candidates that cannot pass the gate; ``is_sure``: those that pass whatever their LCS."""
        lengths = self.index.lengths
        self.min_length, self.max_length = int(np.min(lengths, initial=0)), int(np.max(lengths, initial=0))
        if self._similarity(1, self.max_length) >= self.threshold:
            self.is_sure = None  # all pass: LCS >= 1, and a shorter pattern scores higher
            return
        lengths = self.index.lengths[self.ids]
        keep = self._similarity(np.minimum(self.ub, lengths), lengths) >= self.threshold
        self.ids, self.held, self.ub = self.ids[keep], self.held[keep], self.ub[keep]
        self.is_sure = self._similarity(1, lengths[keep]) >= self.threshold

    def _tables(self) -> None:
        """``block_bounds`` over every (lcs, r̂, length, single, fix-up) when that grid is small,
        and ``level_max[u]``: the largest bound of any pattern with ``ub <= u``."""
        top = min(int(np.max(self.ub, initial=0)), self.len_state)
        self.shape = (top + 1, top + 1, self.max_length + 1, 2, 2)
        self.table = None
        self.level_max = np.full(top + 1, np.inf)
        if np.prod(self.shape) <= max(len(self.ids), 1 << 12):
            grid = np.indices(self.shape).reshape(5, -1)
            with np.errstate(divide="ignore", invalid="ignore"):  # length 0: never looked up
                self.table = block_bounds(grid[0], grid[1], grid[2], grid[3] == 1, grid[4] == 1, self.len_state)
            single = self.index.single_symbol_events
            has_kind = np.array([not single.all(), single.any()])  # patterns of each kind exist
            feasible = ((grid[1] <= grid[0]) & (grid[0] <= grid[2]) & (grid[2] >= 1)  # r̂ <= lcs <= length
                        & (grid[2] >= self.min_length) & has_kind[grid[3]])
            by_lcs = np.where(feasible, self.table, -np.inf).reshape(top + 1, -1).max(axis=1)
            self.level_max = np.maximum.accumulate(by_lcs)

    def _bounds(self, lcs, longest, lengths, single, may_fix_up) -> np.ndarray:
        if self.table is None:
            return block_bounds(lcs, longest, lengths, single, may_fix_up, self.len_state)
        may_fix_up = np.broadcast_to(np.asarray(may_fix_up, np.intp), np.shape(lcs))
        return self.table[np.ravel_multi_index((lcs, longest, lengths, single.astype(np.intp), may_fix_up),
                                               self.shape)]

    # -- the search -------------------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        return len(self.best) >= self.limit

    def run(self) -> "IndexSearch":
        small = np.int16 if self.len_state < 1 << 15 else np.int64  # 16 bits: numpy sorts by radix
        order = np.argsort(-self.ub.astype(small), kind="stable")  # ub descending
        level_ends = np.cumsum(np.bincount(self.ub)[::-1])  # candidates with ub >= top, top-1, ...
        start, size = 0, _FIRST_CHUNK * self.limit
        while start < len(order):
            top = min(int(self.ub[order[start]]), len(self.level_max) - 1)
            if self.is_full and self.level_max[top] < -self.best[-1][0]:
                break  # no pattern of this ub or below can reach the K-th kept pre-potential
            end = int(level_ends[np.searchsorted(level_ends, start + size)]) if start + size < len(order) else len(order)
            step = max(1, _MAX_CELLS // max(1, self.max_length))
            for first in range(start, end, step):
                self._search(np.sort(order[first:min(end, first + step)]))
            start, size = end, size * 4
        return self

    def _search(self, positions: np.ndarray) -> None:
        """Tighten the bounds of these candidates step by step, then evaluate the survivors."""
        ids = self.ids[positions]
        lengths, single = self.index.lengths[ids], self.index.single_symbol_events[ids]
        lcs = np.minimum(self.ub[positions], lengths)
        longest = np.minimum(_longest_runs(self.held[positions]), lcs) if self.has_mask else lcs
        keep = self._may_enter(self._bounds(lcs, longest, lengths, single, True), ids)
        ids, lengths, single, lcs, longest = _select(keep, ids, lengths, single, lcs, longest)
        codes = self._codes(ids, lengths)
        runs, may_fix_up = self._block_features(codes)
        longest = np.minimum(longest, runs)
        keep = self._may_enter(self._bounds(lcs, longest, lengths, single, may_fix_up), ids)
        ids, lengths, single, longest, may_fix_up, codes = _select(keep, ids, lengths, single, longest, may_fix_up, codes)
        rows = _strings(codes)
        lcs = self._lcs(rows)  # exact now
        bounds = self._bounds(lcs, np.minimum(longest, lcs), lengths, single, may_fix_up)
        keep = np.flatnonzero((self._similarity(lcs, lengths) >= self.threshold) & self._may_enter(bounds, ids))
        self._evaluate(*_select(keep, ids, bounds, lcs, single), [rows[k] for k in keep.tolist()])

    def _may_enter(self, bounds: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Whether a candidate's best possible key beats the K-th kept key (name keys for ties)."""
        if not self.is_full:
            return np.ones(len(bounds), bool)
        neg_pre, name, _ = self.best[-1]
        kth_key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big")
        return (bounds > -neg_pre) | ((bounds == -neg_pre) & (self.index.name_keys[ids] <= kth_key))

    def _codes(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Code rows (n × longest length), 0-padded."""
        lut = self.lut
        width = int(np.max(lengths, initial=0))
        if self.min_length == self.max_length and len(self.index.flat) == width * len(self.index.lengths):
            return lut[self.index.flat.reshape(-1, width)[ids]]  # every pattern has this length
        cells = self.index.offsets[ids][:, None] + np.arange(width)
        if (lengths == width).all():
            return lut[self.index.flat[cells]]
        inside = np.arange(width) < lengths[:, None]
        return np.where(inside, lut[self.index.flat[np.where(inside, cells, 0)]], _PAD).astype(np.uint32)

    def _block_features(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r̂, may_fix_up) per row, as in step 3 of the module docstring."""
        linked = self.neighbours[codes[:, :-1], codes[:, 1:]]
        run = np.zeros(len(codes), np.int64)
        longest = np.zeros(len(codes), np.int64)
        for column in linked.T:
            run = (run + 1) * column
            np.maximum(longest, run, out=longest)
        may_fix_up = ((codes[:, :-1] == codes[:, 1:]) & (codes[:, 1:] >= _FIRST_CODE)).any(axis=1)
        return longest + 1, may_fix_up

    def _lcs(self, rows: list[str]) -> np.ndarray:
        if not rows:
            return np.zeros(0, np.int64)
        return process.cdist([self.state_code], rows, scorer=LCSseq.similarity, dtype=np.int64)[0]

    # -- evaluation in (bound desc, name asc) order --------------------------------------------------
    def _evaluate(self, ids: np.ndarray, bounds: np.ndarray, lcs: np.ndarray, single: np.ndarray,
                  rows: list[str]) -> None:
        keys = self.index.name_keys[ids]
        alive, size = np.arange(len(ids)), _FIRST_CHUNK * self.limit
        while len(alive):
            alive = alive[self._may_enter(bounds[alive], ids[alive])]
            batch, alive = _first_by_key(alive, bounds, keys, size)
            for k in self._in_order(batch, ids, bounds, keys):
                name = self.index.names[ids[k]]
                if self.is_full and (-float(bounds[k]), name) >= self.best[-1][:2]:
                    return  # every later candidate is no better
                pre = self._pre(rows[k], bool(single[k]), name)
                if not self.is_full or (-pre, name) < self.best[-1][:2]:
                    insort(self.best, (-pre, name, lcs_similarity(int(lcs[k]), len(rows[k]), self.len_state)))
                    del self.best[self.limit:]
            size *= 4

    def _in_order(self, batch: np.ndarray, ids: np.ndarray, bounds: np.ndarray, keys: np.ndarray):
        """``batch`` (sorted by bound desc, key asc) with equal-key runs put in name order."""
        b, k = bounds[batch], keys[batch]
        starts = np.flatnonzero(np.concatenate([[True], (b[1:] != b[:-1]) | (k[1:] != k[:-1])]))
        for start, end in zip(starts.tolist(), starts[1:].tolist() + [len(batch)]):
            if end - start == 1:
                yield int(batch[start])
            else:
                yield from sorted(batch[start:end].tolist(), key=lambda i: self.index.names[ids[i]])

    def _pre(self, row: str, single: bool, name: str) -> float:
        """Pre-potential of one candidate from its code row, computed once per distinct row."""
        key = row if single else (row, self._event_lengths(name))
        pre = self.memo.get(key)
        if pre is None:
            event_lengths = (1,) * len(row) if single else key[1]
            extraction = extract(row, self.state_code, self.threshold, self.positions)
            pre = self.memo[key] = pre_potential(*scores(row, event_lengths, len(row), extraction, self.len_state))
        return pre

    def _event_lengths(self, name: str) -> tuple[int, ...]:
        record = self.kb.get_pattern(name)
        if record is None:
            raise StoreError(f"the symbol index of knowledge base {self.kb.kb_id!r} lists pattern {name} "
                             f"but it cannot be read; the store is inconsistent")
        return tuple(len(event) for event in record.pattern_data)

    # -- results ----------------------------------------------------------------------------------
    def kept(self) -> list[tuple[float, str, float]]:
        """(pre-potential, name, similarity) of the kept candidates, in pruning order."""
        return [(-neg_pre, name, similarity) for neg_pre, name, similarity in self.best]

    def passing(self) -> int:
        """How many candidates pass the gate, counted up to K + 1 (KATO prunes when more than K do)."""
        if self.is_sure is None:
            return min(len(self.ids), self.limit + 1)
        passing = int(np.count_nonzero(self.is_sure))
        unsure = self.ids[~self.is_sure]
        step = max(1, _MAX_CELLS // max(1, self.max_length))
        for start in range(0, len(unsure), step):
            if passing > self.limit:
                break
            ids = unsure[start:start + step]
            lengths = self.index.lengths[ids]
            lcs = self._lcs(_strings(self._codes(ids, lengths)))
            passing += int(np.count_nonzero(self._similarity(lcs, lengths) >= self.threshold))
        return min(passing, self.limit + 1)


def _select(keep: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(array[keep] for array in arrays)


def _longest_runs(held: np.ndarray) -> np.ndarray:
    """Length of the longest run of consecutive set bits of each mask."""
    runs = np.zeros(len(held), np.int64)
    held = held.copy()
    while True:
        nonzero = held != 0
        if not nonzero.any():
            return runs
        runs += nonzero
        held &= held >> 1


def _first_by_key(alive: np.ndarray, bounds: np.ndarray, keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` best of ``alive`` by (bound desc, key asc), with every tie of the last one,
    sorted; and the rest (all worse)."""
    if len(alive) > size:
        negative = -bounds[alive]
        cut = np.partition(negative, size - 1)[size - 1]
        equal = negative == cut
        need = size - int(np.count_nonzero(negative < cut))
        key_cut = np.partition(keys[alive[equal]], need - 1)[need - 1]
        chosen = (negative < cut) | (equal & (keys[alive] <= key_cut))
        alive, rest = alive[chosen], alive[~chosen]
    else:
        rest = alive[:0]
    return alive[np.lexsort((keys[alive], -bounds[alive]))], rest


def _strings(codes: np.ndarray) -> list[str]:
    """Each code row as a str (RapidFuzz compares strs fastest); the 0 padding falls away."""
    if not len(codes):
        return []
    return np.ascontiguousarray(codes, dtype=np.uint32).view(f"U{codes.shape[1]}").ravel().tolist()
