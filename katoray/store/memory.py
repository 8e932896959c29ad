"""In-process knowledge base: plain dicts. ``memory://`` (private) or ``memory://<name>`` (shared
by every session of the process that opens the same name and kb_id)."""
from __future__ import annotations

import threading
from typing import Iterable, Iterator, Sequence

from katoray.store.base import DeltaColumns, KBTotals, PatternDelta, PatternRecord, merge_emotives, merge_metadata
from katoray.util import paused_gc


class _Entry:
    __slots__ = ("events", "length", "frequency", "emotives", "metadata")

    def __init__(self, events: list[list[str]], length: int) -> None:
        self.events = events
        self.length = length
        self.frequency = 0
        self.emotives: list[dict[str, float]] = []
        self.metadata: dict[str, list[str]] = {}


class MemoryStore:
    """A knowledge base held in dicts; the fastest backend, gone when the process ends."""

    def __init__(self, kb_id: str = "kb") -> None:
        self.kb_id = kb_id
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self._patterns: dict[str, _Entry] = {}
        self._symbol_patterns: dict[str, list[str]] = {}   # symbol -> names of patterns containing it
        self._first_symbol: dict[str, list[str]] = {}      # first symbol -> names starting with it
        self._symbol_freq: dict[str, int] = {}
        self._symbol_pmf: dict[str, int] = {}
        self._applied: set[str] = set()
        self._unique = self._pattern_freq_total = self._symbols_total = 0

    # -- writes -----------------------------------------------------------------------------
    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        with self._lock, paused_gc():
            if not self._claim(batch_id):
                return False
            for delta in deltas:
                self._learn(delta.name, [s for event in delta.events for s in event], delta.count,
                            delta.emotives, delta.metadata, persistence, metadata_cap, delta.events)
            return True

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        with self._lock, paused_gc():
            if not self._claim(batch_id):
                return False
            metadata = columns.metadata
            for i, (name, symbols, count) in enumerate(zip(columns.names, columns.symbols, columns.counts)):
                self._learn(name, symbols, count, None, metadata.get(i), persistence, metadata_cap)
            return True

    def _claim(self, batch_id: str | None) -> bool:
        """Record a batch id; False if it was applied before (the batch must change nothing)."""
        if batch_id is None:
            return True
        if batch_id in self._applied:
            return False
        self._applied.add(batch_id)
        return True

    def _learn(self, name: str, symbols: Sequence[str], count: int, emotives, metadata, persistence: int,
               metadata_cap: int | None, events: list[list[str]] | None = None) -> None:
        """``count`` learns of one pattern; ``events=None``: one event per symbol."""
        # Hot path of learning into memory: plain dict operations, no Counter.
        entry = self._patterns.get(name)
        if entry is None:
            # The store keeps the delta's event lists: callers hand over freshly built deltas.
            if events is None:
                events = [[s] for s in symbols]
            entry = self._patterns[name] = _Entry(events, len(symbols))
            self._unique += 1
            self._pattern_freq_total += 1
            pmf, index = self._symbol_pmf, self._symbol_patterns
            for symbol in dict.fromkeys(symbols):
                pmf[symbol] = pmf.get(symbol, 0) + 1
                index.setdefault(symbol, []).append(name)
            if events and events[0]:
                self._first_symbol.setdefault(events[0][0], []).append(name)
        entry.frequency += count
        freq = self._symbol_freq
        for symbol in symbols:
            freq[symbol] = freq.get(symbol, 0) + count
        self._symbols_total += entry.length * count
        if emotives:
            entry.emotives = merge_emotives(entry.emotives, emotives, persistence)
        if metadata:
            entry.metadata = merge_metadata(entry.metadata, metadata, metadata_cap)

    def delete_patterns(self, names: Iterable[str]) -> int:
        """Remove patterns, undoing their symbol statistics, indexes and totals; returns how many."""
        deleted = 0
        with self._lock:
            for name in dict.fromkeys(names):
                entry = self._patterns.pop(name, None)
                if entry is None:
                    continue
                deleted += 1
                symbols = [s for event in entry.events for s in event]
                for symbol in symbols:
                    self._symbol_freq[symbol] -= entry.frequency
                for symbol in dict.fromkeys(symbols):
                    self._symbol_patterns[symbol].remove(name)
                    self._symbol_pmf[symbol] -= 1
                    if self._symbol_pmf[symbol] == 0:  # no pattern holds it any more: forget it
                        del self._symbol_freq[symbol], self._symbol_pmf[symbol], self._symbol_patterns[symbol]
                if entry.events and entry.events[0]:
                    self._first_symbol[entry.events[0][0]].remove(name)
                self._unique -= 1
                self._pattern_freq_total -= 1
                self._symbols_total -= entry.length * entry.frequency
        return deleted

    def is_applied(self, batch_id: str) -> bool:
        return batch_id in self._applied

    # -- reads ------------------------------------------------------------------------------
    def _record(self, name: str, entry: _Entry) -> PatternRecord:
        return PatternRecord(name, [list(e) for e in entry.events], entry.length, entry.frequency,
                             [dict(e) for e in entry.emotives],
                             {k: list(v) for k, v in entry.metadata.items()})

    def get_pattern(self, name: str) -> PatternRecord | None:
        entry = self._patterns.get(name)
        return None if entry is None else self._record(name, entry)

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        patterns = self._patterns
        return {n: self._record(n, patterns[n]) for n in names if n in patterns}

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        out: set[str] = set()
        index = self._symbol_patterns
        for symbol in set(symbols):
            out.update(index.get(symbol, ()))
        return out

    def patterns_starting_with(self, symbol: str) -> list[str]:
        return list(self._first_symbol.get(symbol, ()))

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        pmf = self._symbol_pmf
        return {s: pmf[s] for s in symbols if s in pmf}

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        freq = self._symbol_freq
        return {s: freq[s] for s in symbols if s in freq}

    def totals(self) -> KBTotals:
        return KBTotals(self._unique, self._pattern_freq_total, self._symbols_total, len(self._symbol_freq))

    def count(self) -> int:
        return len(self._patterns)

    def iter_patterns(self) -> Iterator[PatternRecord]:
        for name in sorted(self._patterns):
            yield self._record(name, self._patterns[name])

    def close(self) -> None:
        """Nothing to release; the data stays for other holders of a shared memory:// name."""


_SHARED: dict[tuple[str, str], MemoryStore] = {}
_SHARED_LOCK = threading.Lock()


def open_memory_store(name: str, kb_id: str) -> MemoryStore:
    """A private store for an empty name; otherwise the process-wide store for (name, kb_id)."""
    if not name:
        return MemoryStore(kb_id)
    with _SHARED_LOCK:
        return _SHARED.setdefault((name, kb_id), MemoryStore(kb_id))
