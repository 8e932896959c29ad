"""KATO's top-K pruning over a KB's integer-id index (``store.base.SymbolIndex``), exactly.

``predict`` keeps the first ``K`` gate-passing candidates by (pre-potential descending, name
ascending) and must know whether more than ``K`` passed (``passing``). This module finds both
while scoring only candidates that could still enter; it serves token matching with a positive
``recall_threshold``, where a candidate must share a symbol with the state.

How (L = state length; ``kth`` = the K-th kept key (-pre-potential, name) once K are kept):

1. One pass over the state symbols' id lists (each symbol ORs in the bits of the state positions
   it fills) gives every pattern the set of state positions it covers, ``held`` (by pattern id).
   Their number ``ub`` bounds the LCS; the longest run of consecutive covered positions bounds
   the longest common substring r (its positions are consecutive and all covered). States
   longer than 64 symbols count positions instead (no run: r̂ = ``ub``).
2. Patterns fall into classes: up to 16 positions the mask itself (tables give its ``ub`` and
   run), beyond that ``ub``. ``index_bounds.BoundTable`` gives each class the largest bound any
   pattern in it could have; classes go in groups, best bound first (one pass over the patterns'
   class ranks selects a group), and a group is skipped with everything after it once its bound
   is below the K-th kept pre-potential; in a later group, a class whose bound ties the K-th
   keeps only the patterns whose name key may still enter.
3. Inside a group, bounds tighten in steps, each dropping the candidates whose best possible key
   (-bound, name) is not better than the K-th kept key (an equal bound with a later name cannot
   enter: ties go to the smaller name): from ``ub`` and the run (``prediction.block_bounds``);
   then from the pattern's code row (0 pads, 1 stands for every symbol outside the state, 2.. the
   state's distinct symbols): r̂ = 1 + the longest run of pattern neighbours that are neighbours
   in the state too, and whether two equal state symbols sit side by side (KATO's past fix-up
   needs that); then the exact LCS (RapidFuzz on the rows as strings), which also decides the
   recall gate, and the exact longest common substring.
4. A pattern of one-symbol events whose longest common substring with the state (exact, by
   dynamic programming over the code rows) is its whole LCS is matched in one greedy block (any
   further block would make a longer common subsequence); without a possible fix-up its present
   is exactly that block, so its pre-potential is known without matching (``one_block_pre``).
5. Survivors are decided in batches in order of (bound descending, name key ascending): a batch
   is first cut to the candidates that may still enter, the known pre-potentials are merged into
   the kept list, then the others are matched (once per distinct code row) and merged. Once a
   candidate of the order cannot enter, none after it can.
6. ``passing`` counts every gate-passing candidate, evaluated or not, up to K + 1 (a sharded
   level sums its shards' counts: KATO prunes when more than K pass). A candidate passes for sure
   when even LCS 1 reaches the threshold (with 8-symbol states and patterns and KATO's default
   0.1 all do); only the others get their exact LCS counted.

Every bound repeats ``pre_potential``'s float steps with inputs that are each no better than the
real ones, and IEEE rounding is monotone, so a bound holds between the computed floats: a skipped
candidate is never one the full scan keeps. Equal code rows (with equal event lengths) have equal
pre-potentials, so each is computed once per call.
"""
from __future__ import annotations

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from katoray.engine.config import SessionConfig
from katoray.engine.index_bounds import (CLASS_BITS, BoundTable, class_tables, longest_common_substrings,
                                         longest_runs, one_block_pre)
from katoray.engine.matching import extract, index_state
from katoray.engine.prediction import pre_potential, scores
from katoray.errors import StoreError
from katoray.store.base import KnowledgeBase, SymbolIndex

_PAD, _OUTSIDE, _FIRST_CODE = 0, 1, 2  # codes in a pattern's row
_MASK_BITS = 64                         # state positions that fit a mask of covered positions
_MAX_CELLS = 1 << 22                    # code-matrix cells per step: bounds memory for long patterns
_FIRST_CHUNK = 2                        # the first group and batch hold >= 2·K candidates, then 4x
_SAMPLE_SIZE = 1 << 16                  # patterns sampled to size the groups


class IndexSearch:
    """The kept candidates (``kept``) and how many pass the gate, up to K + 1 (``passing``) for one state."""

    def __init__(self, kb: KnowledgeBase, index: SymbolIndex, state: list[str], config: SessionConfig,
                 limit: int) -> None:
        self.kb, self.index, self.state, self.limit = kb, index, state, limit
        self.threshold, self.len_state = config.recall_threshold, len(state)
        self.distinct = list(dict.fromkeys(state))
        self.codes = {symbol: k + _FIRST_CODE for k, symbol in enumerate(self.distinct)}
        self.state_code = "".join(chr(self.codes[s]) for s in state)
        self.state_codes = np.array([self.codes[s] for s in state], np.uint32)
        self.positions = index_state(self.state_code)
        self.best: list[tuple[float, str, float]] = []  # (-pre, name, similarity), ascending
        self.memo: dict[object, float] = {}
        self._code_tables()
        self._cover()
        self.min_length, self.max_length = self.index.length_range
        self.all_pass = bool(self._similarity(1, self.max_length) >= self.threshold)  # LCS >= 1 passes
        self.bounds = BoundTable(self.len_state, self.mask_classes, self.num_candidates, self.min_length,
                                 self.max_length, self.index.event_kinds)

    # -- candidates and their classes -------------------------------------------------------------
    def _code_tables(self) -> None:
        """``lut``: symbol id -> code; ``neighbours[a, b]``: code b follows code a somewhere in the state."""
        self.lut = np.full(self.index.num_symbol_ids + 1, _OUTSIDE, np.uint32)
        for symbol, symbol_id in zip(self.distinct, self.index.symbol_ids):
            if symbol_id >= 0:
                self.lut[symbol_id] = self.codes[symbol]
        self.neighbours = np.zeros((len(self.distinct) + _FIRST_CODE,) * 2, bool)
        for a, b in zip(self.state, self.state[1:]):
            self.neighbours[self.codes[a], self.codes[b]] = True

    def _cover(self) -> None:
        """``held`` by pattern id (step 1 of the module docstring), each pattern's class, and the
        ``ub`` and run of each class (``class_ub``, ``class_run``); class 0: no shared symbol."""
        lists = [(ids, symbol) for symbol, ids in zip(self.distinct, self.index.postings) if len(ids)]
        self.has_mask = self.len_state <= _MASK_BITS
        if self.has_mask:  # OR each symbol's position bits into a dense mask per pattern id
            dtype = np.dtype(f"uint{max(8, 1 << (self.len_state - 1).bit_length())}")
            bits = dict.fromkeys(self.distinct, 0)
            for j, symbol in enumerate(self.state):
                bits[symbol] |= 1 << j
            held = np.zeros(len(self.index.lengths), dtype)
            for ids, symbol in lists:  # ids are unique within a list; intp indexes ~2x faster than uint32
                ids = ids.astype(np.intp, copy=False)
                held[ids] = held.take(ids) | dtype.type(bits[symbol])
        else:  # too many positions for a mask: count the positions each symbol fills
            counts = {symbol: self.state.count(symbol) for _, symbol in lists}
            held = np.bincount(np.concatenate([ids for ids, _ in lists] or [np.zeros(0, np.uint32)]),
                               np.repeat([counts[s] for _, s in lists], [len(ids) for ids, _ in lists]),
                               minlength=len(self.index.lengths)).astype(np.int64)  # exact: small counts
        self.held = held
        self.mask_classes = self.has_mask and self.len_state <= CLASS_BITS
        self.classes = held if self.mask_classes else np.bitwise_count(held) if self.has_mask else held
        self.class_ub, self.class_run = class_tables(self.len_state, self.mask_classes)
        self.num_candidates = int(np.count_nonzero(held))

    def _similarity(self, lcs, lengths):
        """The gate similarity of ``matching.lcs_similarity``, element-wise (same float steps)."""
        return (2.0 * lcs / (lengths + self.len_state) * 100.0) / 100.0

    # -- the search -------------------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        return len(self.best) >= self.limit

    def run(self) -> "IndexSearch":
        order, class_bound = self.bounds.class_order(), self.bounds.class_bound
        rank = _ranks(order, len(self.class_ub)).take(self.classes)  # class 0: len(order), in no group
        ends = np.cumsum(_estimated_counts(rank, len(order)))  # group sizes only: exactness never reads them
        start, size = 0, _FIRST_CHUNK * self.limit
        step = max(1, _MAX_CELLS // max(1, self.max_length))
        while start < len(order):
            if self.is_full and class_bound[order[start]] < -self.best[-1][0]:
                break  # no pattern of this class or a later one can reach the K-th kept pre-potential
            before = int(ends[start - 1]) if start else 0
            end = min(len(order), int(np.searchsorted(ends, before + size)) + 1)
            ids = np.flatnonzero(rank < end if not start else (rank >= start) & (rank < end))  # ascending
            if self.is_full:  # a group's later classes, or classes whose bound ties the K-th, need the name
                ids = ids[self._may_enter(class_bound[self.classes[ids]], ids)]
            for first in range(0, len(ids), step):
                self._search(ids[first:first + step])
            start, size = end, size * 4
        return self

    def _search(self, ids: np.ndarray) -> None:
        """Tighten the bounds of these candidates step by step, then decide the survivors."""
        classes = self.classes[ids]
        lengths, single = self.index.lengths[ids], self.index.single_symbol_events[ids]
        lcs = np.minimum(self.class_ub[classes], lengths)
        run = self.class_run[classes]
        if self.has_mask and not self.mask_classes:
            run = longest_runs(self.held[ids])
        longest = np.minimum(run, lcs)
        keep = self._may_enter(self.bounds.of(lcs, longest, lengths, single, True), ids)
        if not self.all_pass:
            keep &= self._similarity(lcs, lengths) >= self.threshold
        ids, lengths, single, lcs, longest = _select(keep, ids, lengths, single, lcs, longest)
        codes = self._codes(ids, lengths)
        runs, may_fix_up = self._block_features(codes)
        longest = np.minimum(longest, runs)
        keep = self._may_enter(self.bounds.of(lcs, longest, lengths, single, may_fix_up), ids)
        self._finish(*_select(keep, ids, lengths, single, longest, may_fix_up, codes))

    def _finish(self, ids: np.ndarray, lengths: np.ndarray, single: np.ndarray, longest: np.ndarray,
                may_fix_up: np.ndarray, codes: np.ndarray) -> None:
        """Steps 3 and 4 of the module docstring (exact LCS and gate, exact longest common
        substring, known pre-potentials), then the decisions."""
        rows = _strings(codes)
        lcs = self._lcs(rows)  # exact now
        keep = (self._similarity(lcs, lengths) >= self.threshold) & self._may_enter(
            self.bounds.of(lcs, np.minimum(longest, lcs), lengths, single, may_fix_up), ids)
        ids, lcs, lengths, single, may_fix_up, longest, codes, rows = _select(
            keep, ids, lcs, lengths, single, may_fix_up, longest, codes, np.array(rows, object))
        exact = longest_common_substrings(codes, self.state_codes)  # -1: not computed
        longest = np.where(exact >= 0, exact, np.minimum(longest, lcs))
        bounds = self.bounds.of(lcs, longest, lengths, single, may_fix_up)
        known = (exact == lcs) & single & ~may_fix_up  # one block without a fix-up (step 4)
        bounds = np.where(known, one_block_pre(lcs, lengths, self.len_state), bounds)
        keep = self._may_enter(bounds, ids)
        self._decide(*_select(keep, ids, bounds, known, lcs, lengths, single, rows))

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

    # -- decisions in (bound desc, name asc) order ---------------------------------------------------
    def _decide(self, ids: np.ndarray, bounds: np.ndarray, known: np.ndarray, lcs: np.ndarray,
                lengths: np.ndarray, single: np.ndarray, rows: np.ndarray) -> None:
        """Step 5 of the module docstring: ``bounds`` are the pre-potentials where ``known``;
        ``rows``: the code rows (str objects)."""
        order = np.lexsort((self.index.name_keys[ids], -bounds))
        similarities = self._similarity(lcs, lengths)
        start, size = 0, _FIRST_CHUNK * self.limit
        while start < len(order):
            batch = order[start:start + size]
            start += size
            can_enter = self._may_enter(bounds[batch], ids[batch])
            if not can_enter.all():
                start = len(order)  # a prefix of the order may enter, the rest never can
                batch = batch[can_enter]
            sure = batch[known[batch]]
            self._merge(ids[sure], bounds[sure], similarities[sure])
            rest = batch[~known[batch]]
            rest = rest[self._may_enter(bounds[rest], ids[rest])]
            self._merge(ids[rest], self._pres(rows[rest].tolist(), single[rest], ids[rest]), similarities[rest])

    def _pres(self, rows: list[str], single: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Pre-potentials of these candidates from their code rows (each distinct row once)."""
        memo = self.memo
        if single.all():  # the row alone is the key
            for row in {row for row in rows if row not in memo}:
                memo[row] = self._pre(row, True, "")
            return np.fromiter(map(memo.__getitem__, rows), float, len(rows))
        names = self.index.names
        return np.array([self._pre(row, one, names[i]) for row, one, i in zip(rows, single.tolist(), ids.tolist())],
                        float)

    def _merge(self, ids: np.ndarray, pres: np.ndarray, similarities: np.ndarray) -> None:
        """Add these candidates to the kept list (those that enter) and keep the first K."""
        entering = self._may_enter(pres, ids)
        names = self.index.names
        self.best += zip((-pres[entering]).tolist(), map(names.__getitem__, ids[entering].tolist()),
                         similarities[entering].tolist())
        self.best.sort()
        del self.best[self.limit:]

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
        if self.all_pass:
            return min(self.num_candidates, self.limit + 1)
        ids = np.flatnonzero(self.classes)
        lengths = self.index.lengths[ids]
        passing = self._similarity(np.minimum(self.class_ub[self.classes[ids]], lengths), lengths) >= self.threshold
        ids, lengths = ids[passing], lengths[passing]
        sure = self._similarity(1, lengths) >= self.threshold
        count = int(np.count_nonzero(sure))
        unsure = ids[~sure]
        step = max(1, _MAX_CELLS // max(1, self.max_length))
        for start in range(0, len(unsure), step):
            if count > self.limit:
                break
            chunk = unsure[start:start + step]
            chunk_lengths = self.index.lengths[chunk]
            lcs = self._lcs(_strings(self._codes(chunk, chunk_lengths)))
            count += int(np.count_nonzero(self._similarity(lcs, chunk_lengths) >= self.threshold))
        return min(count, self.limit + 1)


def _ranks(order: np.ndarray, num_classes: int) -> np.ndarray:
    """class -> its position in ``order`` (class 0, in no order, after every other), small ints."""
    ranks = np.full(num_classes, len(order), np.min_scalar_type(len(order)))
    ranks[order] = np.arange(len(order))
    return ranks


def _estimated_counts(rank: np.ndarray, num_ranks: int) -> np.ndarray:
    """Patterns per rank, estimated from about ``_SAMPLE_SIZE`` evenly spaced patterns (exact for small KBs)."""
    stride = max(1, len(rank) // _SAMPLE_SIZE)
    return np.bincount(rank[::stride], minlength=num_ranks + 1)[:num_ranks] * stride


def _select(keep: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(array[keep] for array in arrays)


def _strings(codes: np.ndarray) -> list[str]:
    """Each code row as a str (RapidFuzz compares strs fastest); the 0 padding falls away."""
    if not len(codes):
        return []
    return np.ascontiguousarray(codes, dtype=np.uint32).view(f"U{codes.shape[1]}").ravel().tolist()
