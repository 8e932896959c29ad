"""KATO's predictions over a knowledge base (spec §4): the single-symbol path and the full path.

``predict`` takes its candidates from the KB's symbol index and skips candidates that provably
cannot survive KATO's top-K pruning; ``predict_full_scan`` is the reference that scores every
pattern one by one. Both share everything after candidate scoring and return equal results
(floats bit for bit) for any KB and STM.

Determinism (KATO's order among ties depends on threads and set order): every ordering breaks
ties by the pattern name, ascending. The top-K pruning keeps the first ``K = 3·max_predictions``
candidates by (pre-potential descending, name ascending); the ensemble metrics run over the kept
candidates in that order (it fixes the float summation order); the final ranking sorts by
(``rank_sort_algo`` descending, name ascending) and keeps ``max_predictions``. The single-symbol
path sorts by (potential descending, name ascending).

How ``predict`` stays exact while skipping work. Two searches find the same kept list and the
same ``pruned`` flag (KATO prunes, and so sets ``_pre_potential``, only when more than K pass):

- **By id** (token matching, a positive ``recall_threshold``, and a backend with an integer-id
  index, ``store.base.SymbolIndex``: MemoryStore); ``index_search`` has the details. One pass
  over the state symbols' id lists gives every pattern sharing a symbol the set of state
  positions it covers: their number bounds its LCS, their longest consecutive run bounds its
  longest common block. ``prediction.block_bounds`` turns such bounds into an upper bound on the
  pre-potential that repeats its float steps (rounding is monotone, so the bound also holds
  between the computed floats). Bounds tighten in steps (the pattern's symbol ids, then its
  exact LCS, which also decides the recall gate), and a candidate is evaluated only while its
  best possible key (-bound, name) beats the K-th kept key (-pre-potential, name): an equal
  bound still enters with a smaller name, and candidates are taken in (bound, name) order, so
  once one cannot enter, none after it can. ``pruned`` counts every gate-passing candidate: when
  an LCS of 1 already reaches the threshold all of them pass; otherwise the undecided ones get
  their exact LCS.
- **By name** (every other case):
  - Symbols are visited rarest first (``symbol_pmf``); each visit scores the new patterns
    holding that symbol: LCS with the state for all of them at once (RapidFuzz ``cdist``), then
    the recall gate, then an upper bound on the pre-potential (``prediction.pre_potential_bound``).
  - Candidates are evaluated (block matching and segmentation) in order of decreasing bound, and
    never once their bound is below the K-th best pre-potential found so far (a bound *equal* to
    it is still evaluated: the name decides ties).
  - A pattern not visited yet holds only unvisited symbols, so its LCS is at most the number of
    state positions those symbols fill; once that bound is below the K-th best and more than K
    candidates passed the gate (so KATO would prune), no unvisited pattern can be kept.

Both evaluate a pattern relabelled so that every symbol absent from the state looks the same:
equal relabellings give equal pre-potentials, so each is computed once per call.

The name search caches pattern shapes (flat symbols, event lengths, and the symbols spelled as
code points, which RapidFuzz compares much faster) per KB: a name is the sha1 of its events, so its shape
never changes. Frequency and emotives are read fresh on every call.

Like KATO, when pruning happened every kept prediction carries its ``_pre_potential``.
"""
from __future__ import annotations

import re
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Iterable, NamedTuple

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from katoray.engine import metrics
from katoray.engine.config import SessionConfig
from katoray.engine.emotives import average_emotives
from katoray.engine.index_search import IndexSearch
from katoray.engine.matching import extract, index_state, similarity
from katoray.engine.prediction import (build_candidate, pre_potential, pre_potential_bounds, scores,
                                       single_symbol_prediction, unseen_pre_potential_bound)
from katoray.errors import StoreError
from katoray.store.base import KnowledgeBase, PatternRecord, symbol_index

PRUNING_FACTOR = 3  # KATO computes ensemble metrics for at most 3·max_predictions candidates


@dataclass
class PredictionResult:
    """Predictions (ranked, at most ``max_predictions``) and the ensemble's future potentials."""

    predictions: list[dict] = field(default_factory=list)
    future_potentials: list[dict] = field(default_factory=list)


def predict(kb: KnowledgeBase, stm: list[list[str]], config: SessionConfig) -> PredictionResult:
    """KATO's predictions for ``stm`` (a list of events) under ``config``.

    0 symbols: no predictions. 1 symbol: the single-symbol path (spec §4.9). Otherwise the full
    path (spec §4.2–4.8) with candidates from the symbol index (every pattern when
    ``recall_threshold`` is 0: a pattern sharing no symbol then still qualifies).
    """
    state = [s for event in stm for s in event]
    if not state:
        return PredictionResult()
    if len(state) == 1:
        return _single_symbol(kb, state[0], config)
    found = _search_by_id(kb, state, config) or _search_by_name(kb, state, config)
    return _ensemble(kb, stm, state, config, *found)


def _search_by_id(kb: KnowledgeBase, state: list[str], config: SessionConfig) -> tuple[list, bool] | None:
    """(kept, pruned) from the KB's id index; None where it does not apply."""
    if not (config.recall_threshold > 0 and config.use_token_matching):
        return None
    index = symbol_index(kb, list(dict.fromkeys(state)))
    if index is None:
        return None
    found = IndexSearch(kb, index, state, config, PRUNING_FACTOR * config.max_predictions).run()
    return [_Scored(pre, name, None, sim) for pre, name, sim in found.kept()], found.pruned()


def _search_by_name(kb: KnowledgeBase, state: list[str], config: SessionConfig) -> tuple[list, bool]:
    search = _Search(kb, state, config)
    if config.recall_threshold > 0:
        search.run_over_symbols()
    else:
        search.add(set(search.cache.all_names(kb)))
        search.evaluate(float("-inf"))
    return search.kept(), search.num_passing > search.limit


def predict_full_scan(kb: KnowledgeBase, stm: list[list[str]], config: SessionConfig) -> PredictionResult:
    """Reference: the same predictions, scoring every pattern of the KB (no index, no bounds)."""
    state = [s for event in stm for s in event]
    if not state:
        return PredictionResult()
    if len(state) == 1:
        return _single_symbol(kb, state[0], config)
    positions = index_state(state)
    scored = []
    for record in kb.iter_patterns():
        flat = [s for event in record.pattern_data for s in event]
        sim = similarity(flat, state, config.use_token_matching)
        if not sim >= config.recall_threshold:
            continue
        extraction = extract(flat, state, config.recall_threshold, positions)
        if extraction is not None:
            pre = pre_potential(*scores(flat, [len(e) for e in record.pattern_data], len(flat),
                                        extraction, len(state)))
            scored.append(_Scored(pre, record.name, _shape_of(record), sim, record))
    limit = PRUNING_FACTOR * config.max_predictions
    scored.sort(key=_Scored.order)
    return _ensemble(kb, stm, state, config, scored[:limit], len(scored) > limit)


# -- candidates -----------------------------------------------------------------------------------

class _Shape(NamedTuple):
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


class _Scored(NamedTuple):
    """A candidate past the recall gate, with its pruning key (shape: from the name search;
    record: when already read)."""

    pre: float
    name: str
    shape: _Shape | None
    similarity: float
    record: PatternRecord | None = None

    def order(self) -> tuple[float, str]:
        return (-self.pre, self.name)


def _shape_of(record: PatternRecord, codes: dict[str, int] | None = None) -> _Shape:
    flat = tuple(s for e in record.pattern_data for s in e)
    if record.length != len(flat):
        raise StoreError(f"pattern {record.name} has length {record.length} but its events hold "
                         f"{len(flat)} symbols: the knowledge base is inconsistent; rebuild it")
    event_lengths = tuple(len(e) for e in record.pattern_data)
    code = None
    if codes is not None and len(codes) + len(flat) <= _MAX_CODES:
        code = "".join([chr(codes.get(s) or codes.setdefault(s, len(codes) + _FIRST_CODE)) for s in flat])
    return _Shape(flat, event_lengths, len(event_lengths) == len(flat), code)


# Code points from 1 up spell symbols; 0 fills in for every symbol outside the state.
_FILLER, _FIRST_CODE, _MAX_CODES = "\x00", 1, 0x110000 - 1
_FLAT, _SINGLE_SYMBOL_EVENTS, _CODE = itemgetter(0), itemgetter(2), itemgetter(3)


class _KBCache:
    """Per KB: each symbol's code point and each pattern's shape, filled as patterns are read.

    A name is the sha1 of its events, so a shape never goes stale; codes only ever grow. Codes
    are handed out under a lock: two symbols sharing a code would make them match.
    """

    _by_kb: "weakref.WeakKeyDictionary[KnowledgeBase, _KBCache]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.shapes: dict[str, _Shape] = {}
        self.lock = threading.Lock()

    @classmethod
    def of(cls, kb: KnowledgeBase) -> "_KBCache":
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
                    if len(codes) >= _MAX_CODES:
                        return None
                    codes[symbol] = len(codes) + _FIRST_CODE
        return "".join([chr(codes[s]) for s in state])

    def get(self, kb: KnowledgeBase, names: list[str]) -> list[_Shape]:
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
                    self.shapes[name] = _shape_of(record, self.codes)
            found = list(map(self.shapes.__getitem__, names))
        return found

    def all_names(self, kb: KnowledgeBase) -> list[str]:
        """Every pattern name (threshold 0), reading shapes on the way."""
        names = []
        for record in kb.iter_patterns():
            names.append(record.name)
            if record.name not in self.shapes:
                with self.lock:
                    self.shapes[record.name] = _shape_of(record, self.codes)
        return names


class _Search:
    """Exact top-K candidates by (pre-potential desc, name asc), evaluating as few as it can."""

    def __init__(self, kb: KnowledgeBase, state: list[str], config: SessionConfig) -> None:
        self.kb, self.state, self.config = kb, state, config
        self.cache = _KBCache.of(kb)
        self.limit = PRUNING_FACTOR * config.max_predictions
        self.best: list[_Scored] = []
        self.kth: float | None = None  # K-th best pre-potential so far, once K are known
        self.seen: set[str] = set()
        # candidates past the gate: parallel lists/arrays; ``open`` marks those not yet decided
        self.names: list[str] = []
        self.shapes: list[_Shape] = []
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

    def _lcs(self, shapes: list[_Shape]) -> tuple[np.ndarray, np.ndarray]:
        """LCS with the state and flat length of every shape (one RapidFuzz call)."""
        codes = list(map(_CODE, shapes))
        if self.state_code is not None and None not in codes:
            query, choices = self.state_code, codes
        else:
            query, choices = self.state, list(map(_FLAT, shapes))
        lcs = process.cdist([query], choices, scorer=LCSseq.similarity, dtype=np.int64)[0]
        return lcs, np.fromiter(map(len, choices), dtype=np.int64, count=len(choices))

    def _similarities(self, shapes: list[_Shape], lengths: np.ndarray, lcs: np.ndarray) -> np.ndarray:
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
                self.best.append(_Scored(pre, self.names[i], self.shapes[i], float(self.sims[i])))
                if len(self.best) >= 2 * self.limit:
                    self._trim()
        self._trim()
        if self.kth is not None:
            self.open &= self.bounds >= self.kth

    def _pre(self, shape: _Shape) -> float | None:
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
            self.best.sort(key=_Scored.order)
            del self.best[self.limit:]
            self.kth = self.best[-1].pre

    def kept(self) -> list[_Scored]:
        self.best.sort(key=_Scored.order)
        return self.best[:self.limit]


# -- ensemble -----------------------------------------------------------------------------------

def _ensemble(kb: KnowledgeBase, stm, state, config: SessionConfig, kept: list[_Scored],
              pruned: bool) -> PredictionResult:
    if not kept:
        return PredictionResult()
    unread = [s.name for s in kept if s.record is None]
    fetched = kb.get_patterns(unread) if unread else {}
    positions = index_state(state)
    predictions = []
    for s in kept:
        record = s.record or fetched[s.name]
        events = record.pattern_data
        flat = [symbol for event in events for symbol in event]
        extraction = extract(flat, state, config.recall_threshold, positions)
        p = build_candidate(s.name, events, len(flat), extraction, s.similarity, stm, len(state))
        p["frequency"] = record.frequency if record.frequency else 1  # KATO floors a 0 at 1
        p["emotives"] = average_emotives(record.emotives)
        if pruned:
            p["_pre_potential"] = s.pre
        predictions.append(p)
    future_potentials = metrics.apply_ensemble_metrics(predictions, state, kb.totals(), kb.symbol_pmf)
    key = config.rank_sort_algo
    ranked = sorted(predictions, key=lambda p: (-p[key], p["name"]))[:config.max_predictions]
    return PredictionResult(ranked, future_potentials)


# -- single-symbol path ---------------------------------------------------------------------------

def _single_symbol(kb: KnowledgeBase, symbol: str, config: SessionConfig) -> PredictionResult:
    records: Iterable[PatternRecord] = kb.get_patterns(kb.patterns_starting_with(symbol)).values()
    predictions = [single_symbol_prediction(r, symbol, config.use_token_matching) for r in records
                   if r.pattern_data and r.pattern_data[0] and r.pattern_data[0][0] == symbol]
    predictions.sort(key=lambda p: (-p["potential"], p["name"]))
    return PredictionResult(predictions[:config.max_predictions], [])
