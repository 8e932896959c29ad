"""Candidates of the full prediction path, and the search that finds them by pattern name.

``Scored`` is a candidate past the recall gate with its pruning key; ``search_by_name`` finds the
kept candidates through ``KnowledgeBase.patterns_with_any`` (any backend), as ``predict``'s module
docstring describes ("By name"). Pattern shapes (flat symbols, event lengths, and the symbols
spelled as code points, which RapidFuzz compares much faster) are cached per KB: a name is the
sha1 of its events, so its shape never changes.
"""
from __future__ import annotations

import re
import threading
import weakref
from collections import Counter
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from katoray.engine.config import SessionConfig
from katoray.engine.matching import extract, index_state
from katoray.engine.prediction import pre_potential, pre_potential_bounds, scores, unseen_pre_potential_bound
from katoray.errors import StoreError
from katoray.store.base import KnowledgeBase, PatternRecord


class Shape(NamedTuple):
    """What scoring needs of a pattern.

    ``code`` spells the flat symbols as one code point each (RapidFuzz compares a str far faster
    than a tuple of strs); None once a KB holds more distinct symbols than code points.
    """

    flat: tuple[str, ...]
    event_lengths: tuple[int, ...]
    single_symbol_events: bool
    code: str | None

    def events(self) -> list[list[str]]:
        out, start = [], 0
        for n in self.event_lengths:
            out.append(list(self.flat[start:start + n]))
            start += n
        return out


class Scored(NamedTuple):
    """A candidate past the recall gate, with its pruning key (shape: from the name search;
    record: when already read)."""

    pre: float
    name: str
    shape: Shape | None
    similarity: float
    record: PatternRecord | None = None

    def order(self) -> tuple[float, str]:
        return (-self.pre, self.name)


def shape_of(record: PatternRecord, codes: dict[str, int] | None = None) -> Shape:
    flat = tuple(s for e in record.pattern_data for s in e)
    if record.length != len(flat):
        raise StoreError(f"pattern {record.name} has length {record.length} but its events hold "
                         f"{len(flat)} symbols: the knowledge base is inconsistent; rebuild it")
    event_lengths = tuple(len(e) for e in record.pattern_data)
    code = None
    if codes is not None and len(codes) + len(flat) <= MAX_CODES:
        code = "".join([chr(codes.get(s) or codes.setdefault(s, len(codes) + _FIRST_CODE)) for s in flat])
    return Shape(flat, event_lengths, len(event_lengths) == len(flat), code)


# Code points from 1 up spell symbols; 0 fills in for every symbol outside the state.
_FILLER, _FIRST_CODE, MAX_CODES = "\x00", 1, 0x110000 - 1
_FLAT, _SINGLE_SYMBOL_EVENTS, _CODE = itemgetter(0), itemgetter(2), itemgetter(3)


class KBCache:
    """Per KB: each symbol's code point and each pattern's shape, filled as patterns are read.

    A name is the sha1 of its events, so a shape never goes stale; codes only ever grow. Codes
    are handed out under a lock: two symbols sharing a code would make them match.
    """

    _by_kb: "weakref.WeakKeyDictionary[KnowledgeBase, KBCache]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.shapes: dict[str, Shape] = {}
        self.lock = threading.Lock()

    @classmethod
    def of(cls, kb: KnowledgeBase) -> "KBCache":
        try:
            return cls._by_kb.setdefault(kb, cls())
        except TypeError:  # a KB that cannot be weakly referenced is simply not cached
            return cls()

    def encode_state(self, state: list[str]) -> str | None:
        """The state's code (new symbols get codes too), or None once code points run out."""
        codes = self.codes
        with self.lock:
            for symbol in state:
                if symbol not in codes:
                    if len(codes) >= MAX_CODES:
                        return None
                    codes[symbol] = len(codes) + _FIRST_CODE
        return "".join([chr(codes[s]) for s in state])

    def get(self, kb: KnowledgeBase, names: list[str]) -> list[Shape]:
        found = list(map(self.shapes.get, names))  # one pass: lookups in a big dict are memory-bound
        if None in found:
            unknown = [name for name, shape in zip(names, found) if shape is None]
            records = kb.get_patterns(unknown)
            if len(records) < len(unknown):
                lost = sorted(set(unknown) - records.keys())
                raise StoreError(f"the symbol index of knowledge base {kb.kb_id!r} lists {len(lost)} patterns "
                                 f"it cannot read (first: {lost[0]}); the store is inconsistent")
            with self.lock:
                for name, record in records.items():
                    self.shapes[name] = shape_of(record, self.codes)
            found = list(map(self.shapes.__getitem__, names))
        return found

    def all_names(self, kb: KnowledgeBase) -> list[str]:
        """Every pattern name (threshold 0), reading shapes on the way."""
        names = []
        for record in kb.iter_patterns():
            names.append(record.name)
            if record.name not in self.shapes:
                with self.lock:
                    self.shapes[record.name] = shape_of(record, self.codes)
        return names


class NameSearch:
    """Exact top-K candidates by (pre-potential desc, name asc), evaluating as few as it can."""

    def __init__(self, kb: KnowledgeBase, state: list[str], config: SessionConfig, limit: int) -> None:
        self.kb, self.state, self.config = kb, state, config
        self.cache = KBCache.of(kb)
        self.limit = limit   # K: how many candidates KATO keeps
        self.best: list[Scored] = []
        self.kth: float | None = None  # K-th best pre-potential so far, once K are known
        self.seen: set[str] = set()
        # candidates past the gate: parallel lists/arrays; ``open`` marks those not yet decided
        self.names: list[str] = []
        self.shapes: list[Shape] = []
        self.sims = np.zeros(0)
        self.bounds = np.zeros(0)
        self.open = np.zeros(0, dtype=bool)
        self.memo: dict[object, float | None] = {}
        # relabelling: symbols outside the state all look alike, so equal relabellings share a score
        self.labels = {s: i for i, s in enumerate(dict.fromkeys(state))}
        self.state_labels = [self.labels[s] for s in state]
        self.label_positions = index_state(self.state_labels)
        self.state_code = self.cache.encode_state(state)
        if self.state_code is not None:
            self.outside = re.compile("[^" + re.escape("".join(sorted(set(self.state_code)))) + "]")
            self.code_positions = index_state(self.state_code)

    @property
    def num_passing(self) -> int:
        return len(self.names)

    def run_over_symbols(self) -> None:
        counts = Counter(self.state)
        pmf = self.kb.symbol_pmf(sorted(counts))
        order = sorted(pmf, key=lambda s: (pmf[s], s))  # rarest first; unknown symbols index nothing
        unvisited_weight = sum(counts[s] for s in order)
        for symbol in order:
            self.add(self.kb.patterns_with_any([symbol]) - self.seen)
            unvisited_weight -= counts[symbol]
            unseen = unseen_pre_potential_bound(unvisited_weight, len(self.state))
            self.evaluate(unseen)
            if self.kth is not None and unseen < self.kth and self.num_passing > self.limit:
                break
        self.evaluate(float("-inf"))

    def add(self, names: set[str]) -> None:
        """Score new candidates: LCS, recall gate, bound; the passing ones become open."""
        if not names:
            return
        self.seen |= names
        names = list(names)
        shapes = self.cache.get(self.kb, names)
        lcs, lengths = self._lcs(shapes)
        sims = self._similarities(shapes, lengths, lcs)
        passing = np.flatnonzero(sims >= self.config.recall_threshold)
        if len(passing) < len(names):
            keep = passing.tolist()
            names, shapes = [names[i] for i in keep], [shapes[i] for i in keep]
            lcs, lengths, sims = lcs[passing], lengths[passing], sims[passing]
        single = np.fromiter(map(_SINGLE_SYMBOL_EVENTS, shapes), dtype=bool, count=len(shapes))
        self.names += names
        self.shapes += shapes
        self.sims = np.concatenate([self.sims, sims])
        self.bounds = np.concatenate([self.bounds, pre_potential_bounds(lcs, lengths, single, len(self.state))])
        self.open = np.concatenate([self.open, np.ones(len(names), dtype=bool)])

    def _lcs(self, shapes: list[Shape]) -> tuple[np.ndarray, np.ndarray]:
        """LCS with the state and flat length of every shape (one RapidFuzz call)."""
        codes = list(map(_CODE, shapes))
        if self.state_code is not None and None not in codes:
            query, choices = self.state_code, codes
        else:
            query, choices = self.state, list(map(_FLAT, shapes))
        lcs = process.cdist([query], choices, scorer=LCSseq.similarity, dtype=np.int64)[0]
        return lcs, np.fromiter(map(len, choices), dtype=np.int64, count=len(choices))

    def _similarities(self, shapes: list[Shape], lengths: np.ndarray, lcs: np.ndarray) -> np.ndarray:
        """Gate similarities with the same float steps as ``matching.similarity``."""
        if self.config.use_token_matching:
            return (2.0 * lcs / (lengths + len(self.state)) * 100.0) / 100.0
        joined = [" ".join(s.flat) for s in shapes]
        return process.cdist([" ".join(self.state)], joined, scorer=fuzz.ratio, dtype=np.float64)[0] / 100.0

    def evaluate(self, floor: float) -> None:
        """Decide every open candidate whose bound is >= floor, best bound first."""
        ready = np.flatnonzero(self.open & (self.bounds >= floor))
        ready = ready[np.argsort(-self.bounds[ready], kind="stable")]
        self.open[ready] = False
        for i, bound in zip(ready.tolist(), self.bounds[ready].tolist()):
            if self.kth is not None and bound < self.kth:
                break  # sorted: every later bound is lower still
            pre = self._pre(self.shapes[i])
            if pre is not None and (self.kth is None or pre >= self.kth):
                self.best.append(Scored(pre, self.names[i], self.shapes[i], float(self.sims[i])))
                if len(self.best) >= 2 * self.limit:
                    self._trim()
        self._trim()
        if self.kth is not None:
            self.open &= self.bounds >= self.kth

    def _pre(self, shape: Shape) -> float | None:
        """Pre-potential of one candidate, computed once per relabelling."""
        if self.state_code is not None and shape.code is not None:
            relabelled = self.outside.sub(_FILLER, shape.code)
            state, positions = self.state_code, self.code_positions
        else:
            relabelled = tuple(map(self.labels.get, shape.flat, repeat(-1, len(shape.flat))))
            state, positions = self.state_labels, self.label_positions
        key = (relabelled, shape.event_lengths)
        pre = self.memo.get(key, self)
        if pre is self:
            extraction = extract(relabelled, state, self.config.recall_threshold, positions)
            pre = self.memo[key] = None if extraction is None else pre_potential(
                *scores(relabelled, shape.event_lengths, len(relabelled), extraction, len(self.state)))
        return pre

    def _trim(self) -> None:
        if len(self.best) >= self.limit:
            self.best.sort(key=Scored.order)
            del self.best[self.limit:]
            self.kth = self.best[-1].pre

    def kept(self) -> list[Scored]:
        self.best.sort(key=Scored.order)
        return self.best[:self.limit]


def search_by_name(kb: KnowledgeBase, state: list[str], config: SessionConfig, limit: int) -> tuple[list[Scored], int]:
    """(kept, passing): the first ``limit`` candidates by (pre-potential desc, name asc), and how
    many passed the recall gate, counted up to ``limit + 1`` (KATO prunes when that many pass)."""
    search = NameSearch(kb, state, config, limit)
    if config.recall_threshold > 0:
        search.run_over_symbols()
    else:
        search.add(set(search.cache.all_names(kb)))
        search.evaluate(float("-inf"))
    return search.kept(), min(search.num_passing, search.limit + 1)
