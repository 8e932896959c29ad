"""In-process knowledge base. ``memory://`` (private) or ``memory://<name>`` (shared by every session
of the process that opens the same name and kb_id).

Patterns get dense integer ids in learn order and symbols get ids when first seen; everything
per pattern or per symbol is a column indexed by id, and each symbol lists (ascending) the ids of
the patterns holding it. A batch is applied with a few numpy passes over the whole batch instead
of dict operations per symbol, which is what makes learning into memory fast. The same columns
answer ``symbol_index`` (``base.SymbolIndex``): predictions find and bound candidates by id.

The columns a ``symbol_index`` view holds are only ever appended to (a delete gives a symbol's id
list a new buffer), so a view stays valid and unchanged while later applies and deletes run;
frequencies and symbol statistics are updated in place and are read through the other methods.
"""
from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from operator import attrgetter
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from katoray.store.base import (DeltaColumns, KBTotals, PatternDelta, PatternRecord, PatternRows, SymbolIndex,
                                add_affinity, affinity_increments, check_apply_args, check_limit, emotive_learns,
                                merge_emotives, merge_metadata)
from katoray.store.columns import NO_SYMBOL, Column, NewPatterns, PatternColumns, cuts, posting_groups, symbol_ids_of
from katoray.store.locking import ReadWriteLock
from katoray.store.sampling import sample_records
from katoray.util import paused_gc

_NAME, _COUNT = attrgetter("name"), attrgetter("count")
ITER_PAGE = 1000   # records iter_patterns reads per hold of the read lock
_EMOTIVES, _METADATA = attrgetter("emotives"), attrgetter("metadata")


def _first_rows(names: list[str], found: list[int | None]) -> list[int]:
    """Rows whose name is not stored yet, the first row of each such name only, ascending."""
    new_rows = [row for row, pattern_id in enumerate(found) if pattern_id is None]
    first = dict(zip(map(names.__getitem__, reversed(new_rows)), reversed(new_rows)))  # earlier rows win
    return sorted(first.values())


class MemoryStore:
    """A knowledge base held in columns; the fastest backend, gone when the process ends."""

    def __init__(self, kb_id: str = "kb") -> None:
        self.kb_id = kb_id
        self._lock = ReadWriteLock()   # writes alone; reads (a whole prediction) share it
        self.clear()

    def clear(self) -> None:
        with self._lock.writing():
            self._ids: dict[str, int] = {}                   # name -> pattern id
            self._columns = PatternColumns()                 # by pattern id; a deleted name is None
            self._events: list[list[list[str]] | None] = []
            self._emotives: dict[int, list[dict[str, float]]] = {}
            self._metadata: dict[int, dict[str, list[str]]] = {}
            self._frequency = Column(np.int64)
            self._symbol_ids: dict[str, int] = {}
            self._symbols: list[str] = []
            self._symbol_freq, self._symbol_pmf = Column(np.int64), Column(np.int64)
            self._postings: list[Column] = []              # symbol id -> ids of patterns holding it
            self._num_symbols = 0                            # symbols some pattern holds (pmf > 0)
            self._applied: set[str] = set()
            self._affinity: dict[str, dict[str, float]] = {}   # symbol -> emotive sums
            self._owner: str | None = None
            self._unique = self._pattern_freq_total = self._symbols_total = 0

    def claim_owner(self, owner: str) -> str:
        with self._lock.writing():
            self._owner = self._owner or owner
            return self._owner

    # -- writes -----------------------------------------------------------------------------
    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        check_apply_args(persistence, metadata_cap)
        with self._lock.writing(), paused_gc():
            if not self._claim(batch_id):
                return False
            names = list(map(_NAME, deltas))
            ids = self._learn(names, np.fromiter(map(_COUNT, deltas), np.int64, len(deltas)),
                              lambda rows: NewPatterns.of_deltas([deltas[row] for row in rows]))
            if any(map(_EMOTIVES, deltas)) or any(map(_METADATA, deltas)):
                for pattern_id, delta in zip(ids.tolist(), deltas):
                    self._merge(pattern_id, delta.emotives, delta.metadata, persistence, metadata_cap)
                self._add_affinity(affinity_increments(emotive_learns(deltas)))
            return True

    def _add_affinity(self, increments: dict[str, dict[str, float]]) -> None:
        for symbol, sums in increments.items():
            add_affinity(self._affinity, symbol, sums)

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        check_apply_args(persistence, metadata_cap)
        with self._lock.writing(), paused_gc():
            if not self._claim(batch_id):
                return False
            ids = self._learn(list(columns.names), np.fromiter(columns.counts, np.int64, len(columns)),
                              lambda rows: NewPatterns.of_columns(columns, rows))
            for row, metadata in sorted(columns.metadata.items()):
                self._merge(int(ids[row]), None, metadata, persistence, metadata_cap)
            return True

    def _claim(self, batch_id: str | None) -> bool:
        """Record a batch id; False if it was applied before (the batch must change nothing)."""
        if batch_id is None:
            return True
        if batch_id in self._applied:
            return False
        self._applied.add(batch_id)
        return True

    def _learn(self, names: list[str], counts: np.ndarray,
               new_patterns: Callable[[list[int]], NewPatterns]) -> np.ndarray:
        """``counts[i]`` learns of pattern ``names[i]`` for every row; returns the rows' pattern ids.

        Only rows whose pattern is new are read beyond their name (``new_patterns(rows)``); the
        symbol statistics of every row come from the stored symbol ids.
        """
        found = list(map(self._ids.get, names))
        if None in found:
            self._add_patterns(new_patterns(_first_rows(names, found)))
        ids = np.fromiter(map(self._ids.__getitem__, names), np.int64, len(names))
        np.add.at(self._frequency.view(), ids, counts)
        lengths = self._columns.lengths.data[ids]
        symbols = self._symbols_of(ids, lengths)
        freq = self._symbol_freq.view()
        if (counts == 1).all() and 4 * len(symbols) >= len(freq):   # a bulk batch: one dense pass
            freq += np.bincount(symbols, minlength=len(freq))
        else:   # few symbols against many stored (a session's learn): touch only those
            np.add.at(freq, symbols, np.repeat(counts, lengths))
        self._symbols_total += int(np.dot(lengths, counts))
        return ids

    def _symbols_of(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The symbol ids of these patterns' flattened events, pattern after pattern."""
        starts = self._columns.offsets.data[ids] - cuts(lengths)[:-1]
        return self._columns.flat.data[np.repeat(starts, lengths) + np.arange(int(lengths.sum()))].astype(np.int64)

    def _symbol_ids_of(self, symbols: list[str]) -> np.ndarray:
        """Each symbol's id; symbols seen for the first time get the next ids."""
        ids, unknown = symbol_ids_of(self._symbol_ids, symbols)
        if unknown:
            self._symbols += unknown
            self._symbol_freq.extend(np.zeros(len(unknown), np.int64))
            self._symbol_pmf.extend(np.zeros(len(unknown), np.int64))
            self._postings += [Column(np.uint32) for _ in unknown]
        return ids

    def _add_patterns(self, new: NewPatterns) -> None:
        """Store patterns not seen before, with their symbol index entries and pmf."""
        symbols = self._symbol_ids_of(new.flat)
        ids = self._columns.append(new, symbols)
        self._ids.update(zip(new.names, ids))
        self._events += new.events
        self._frequency.extend(np.zeros(len(ids), np.int64))
        self._index(symbols, np.repeat(np.arange(ids.start, ids.stop), new.lengths))
        self._unique += len(ids)
        self._pattern_freq_total += len(ids)

    def _index(self, symbols: np.ndarray, ids: np.ndarray) -> None:
        """Add new patterns to the symbol index and pmf: one entry per (symbol, pattern) pair."""
        if not len(symbols):
            return
        distinct, starts, ends, ids = posting_groups(symbols, ids)
        pmf = self._symbol_pmf.view()
        self._num_symbols += int(np.count_nonzero(pmf[distinct] == 0))
        pmf[distinct] += ends - starts
        postings = self._postings
        for symbol, start, end in zip(distinct.tolist(), starts.tolist(), ends.tolist()):
            postings[symbol].extend(ids[start:end])

    def _merge(self, pattern_id: int, emotives, metadata, persistence: int, metadata_cap: int | None) -> None:
        if emotives:
            self._emotives[pattern_id] = merge_emotives(self._emotives.get(pattern_id, []), emotives, persistence)
        if metadata:
            self._metadata[pattern_id] = merge_metadata(self._metadata.get(pattern_id, {}), metadata, metadata_cap)

    def delete_patterns(self, names: Iterable[str]) -> int:
        """Remove patterns, undoing their symbol statistics, indexes and totals; returns how many."""
        deleted = 0
        with self._lock.writing():
            for name in dict.fromkeys(names):
                pattern_id = self._ids.pop(name, None)
                if pattern_id is not None:
                    self._forget(pattern_id)
                    deleted += 1
        return deleted

    def _forget(self, pattern_id: int) -> None:
        columns = self._columns
        start, length = int(columns.offsets.data[pattern_id]), int(columns.lengths.data[pattern_id])
        symbols = columns.flat.data[start:start + length].astype(np.int64)
        frequency = int(self._frequency.data[pattern_id])
        np.subtract.at(self._symbol_freq.view(), symbols, frequency)
        pmf = self._symbol_pmf.view()
        for symbol in np.unique(symbols).tolist():
            self._postings[symbol].without(pattern_id)
            pmf[symbol] -= 1
            if pmf[symbol] == 0:   # no pattern holds it any more: forgotten, with its affinity
                self._num_symbols -= 1
                self._affinity.pop(self._symbols[symbol], None)
        columns.firsts.data[pattern_id] = NO_SYMBOL
        columns.names[pattern_id] = self._events[pattern_id] = None
        self._emotives.pop(pattern_id, None)
        self._metadata.pop(pattern_id, None)
        self._unique -= 1
        self._pattern_freq_total -= 1
        self._symbols_total -= length * frequency

    def is_applied(self, batch_id: str) -> bool:
        return batch_id in self._applied

    # -- reads (each under the read side: a concurrent clear or delete never shows half a state) --
    def reading(self) -> AbstractContextManager:
        """Every read inside the block sees one state (writers wait; see ``base.reading``)."""
        return self._lock.reading()

    def _record(self, name: str, pattern_id: int) -> PatternRecord:
        emotives, metadata = self._emotives.get(pattern_id), self._metadata.get(pattern_id)
        return PatternRecord(name, list(map(list, self._events[pattern_id])),  # copies: callers may edit them
                             int(self._columns.lengths.data[pattern_id]),
                             int(self._frequency.data[pattern_id]),
                             list(map(dict, emotives)) if emotives else [],
                             {k: list(v) for k, v in metadata.items()} if metadata else {})

    def get_pattern(self, name: str) -> PatternRecord | None:
        with self._lock.reading():
            pattern_id = self._ids.get(name)
            return None if pattern_id is None else self._record(name, pattern_id)

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        with self._lock.reading():
            ids = self._ids
            return {n: self._record(n, ids[n]) for n in names if n in ids}

    def _known_symbol(self, symbol: str) -> int | None:
        symbol_id = self._symbol_ids.get(symbol)
        return symbol_id if symbol_id is not None and self._symbol_pmf.data[symbol_id] > 0 else None

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        with self._lock.reading():
            known = [i for i in map(self._known_symbol, set(symbols)) if i is not None]
            if not known:
                return set()
            ids = np.unique(np.concatenate([self._postings[i].view() for i in known]))
            return set(map(self._columns.names.__getitem__, ids.tolist()))

    def patterns_starting_with(self, symbol: str) -> list[str]:
        with self._lock.reading():
            symbol_id = self._known_symbol(symbol)
            if symbol_id is None:
                return []
            starting = np.flatnonzero(self._columns.firsts.view() == symbol_id)
            return list(map(self._columns.names.__getitem__, starting.tolist()))

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        with self._lock.reading():
            ids, pmf = self._symbol_ids, self._symbol_pmf.data
            return {s: int(pmf[ids[s]]) for s in symbols if s in ids and pmf[ids[s]] > 0}

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        with self._lock.reading():
            ids, pmf, freq = self._symbol_ids, self._symbol_pmf.data, self._symbol_freq.data
            return {s: int(freq[ids[s]]) for s in symbols if s in ids and pmf[ids[s]] > 0}

    def stored_symbols(self) -> set[str]:
        pmf = self._symbol_pmf.data
        return {symbol for symbol, i in self._symbol_ids.items() if pmf[i] > 0}

    def symbol_index(self, symbols: Sequence[str]) -> SymbolIndex:
        """Integer-id view of the patterns holding ``symbols`` (see ``base.SymbolIndex``)."""
        with self._lock.reading():
            symbol_ids = [self._known_symbol(s) for s in symbols]
            return self._columns.symbol_index(
                [-1 if i is None else i for i in symbol_ids],
                [np.zeros(0, np.uint32) if i is None else self._postings[i].view() for i in symbol_ids],
                len(self._symbols))

    def totals(self) -> KBTotals:
        with self._lock.reading():
            return KBTotals(self._unique, self._pattern_freq_total, self._symbols_total, self._num_symbols)

    def count(self) -> int:
        return len(self._ids)

    def symbol_affinity(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        with self._lock.reading():
            wanted = self._affinity if symbols is None else dict.fromkeys(symbols)
            return {s: dict(self._affinity[s]) for s in wanted if s in self._affinity}

    def iter_patterns(self) -> Iterator[PatternRecord]:
        """Every pattern by name. Records are read whole, ``ITER_PAGE`` at a time under the read
        side (a consumer may write between pages); one deleted meanwhile is skipped."""
        with self._lock.reading():
            names = sorted(self._ids)
        for start in range(0, len(names), ITER_PAGE):
            yield from self.get_patterns(names[start:start + ITER_PAGE]).values()

    def pattern_rows(self, page: int) -> Iterator[PatternRows]:
        """Every pattern in learn order (``base.ScannableKnowledgeBase``); events are copies."""
        with self._lock.reading():
            live = [(i, name) for i, name in enumerate(self._columns.names) if name is not None]
            frequency = self._frequency.view().copy()
            events = [self._events[i] for i, _ in live]
        for start in range(0, len(live), page):
            rows = live[start:start + page]
            yield PatternRows([name for _, name in rows], [[list(e) for e in ev] for ev in events[start:start + page]],
                              frequency[[i for i, _ in rows]].tolist())

    # -- aggregates (numpy over the columns of live patterns) -------------------------------------
    def _live(self) -> np.ndarray:
        """Ids of the patterns not deleted."""
        return np.fromiter(self._ids.values(), np.int64, len(self._ids))

    def frequency_histogram(self) -> dict[int, int]:
        with self._lock.reading():
            return _histogram(self._frequency.data[self._live()])

    def length_histogram(self) -> dict[int, int]:
        with self._lock.reading():
            return _histogram(self._columns.lengths.data[self._live()])

    def most_frequent(self, limit: int | None = None, min_frequency: int = 1,
                      max_frequency: int | None = None) -> list[PatternRecord]:
        check_limit(limit)
        with self._lock.reading():
            ids = self._live()
            frequency = self._frequency.data[ids]
            keep = (frequency >= min_frequency) & (frequency <= max_frequency if max_frequency is not None else True)
            if limit is not None and limit < np.count_nonzero(keep):   # only those at or above the limit-th frequency
                cut = np.partition(frequency[keep], -limit)[-limit] if limit else np.inf
                keep &= frequency >= cut
            names = self._columns.names
            chosen = sorted(zip((-frequency[keep]).tolist(), map(names.__getitem__, ids[keep].tolist())))
            return [self._record(name, self._ids[name]) for _, name in chosen[:limit]]

    def iter_frequencies(self) -> Iterator[tuple[str, int]]:
        with self._lock.reading():   # a snapshot: applies may run while the caller iterates
            ids = self._live()
            pairs = list(zip(map(self._columns.names.__getitem__, ids.tolist()), self._frequency.data[ids].tolist()))
        return iter(pairs)

    def sample_by_frequency(self, num_samples: int, seed: int = 0) -> list[PatternRecord]:
        return sample_records(self, num_samples, seed)

    def size_on_disk(self) -> int | None:
        """None: nothing is on disk."""
        return None

    def close(self) -> None:
        """Nothing to release; the data stays for other holders of a shared memory:// name."""


def _histogram(values: np.ndarray) -> dict[int, int]:
    distinct, counts = np.unique(values, return_counts=True)
    return dict(zip(distinct.tolist(), counts.tolist()))


_SHARED: dict[tuple[str, str], MemoryStore] = {}
_SHARED_LOCK = threading.Lock()


def open_memory_store(name: str, kb_id: str) -> MemoryStore:
    """A private store for an empty name; otherwise the process-wide store for (name, kb_id)."""
    if not name:
        return MemoryStore(kb_id)
    with _SHARED_LOCK:
        return _SHARED.setdefault((name, kb_id), MemoryStore(kb_id))
