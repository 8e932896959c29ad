"""Integer-id columns of patterns and symbols: MemoryStore's storage, and the prediction view of
stores that keep their patterns elsewhere.

Patterns get dense ids in the order they are added and symbols get ids when first seen; what is
per pattern (name, name key, symbol count, first symbol, flattened symbol ids) is a column
indexed by id (``PatternColumns``, shared by both), and each symbol lists, ascending, the ids of
the patterns holding it. ``IdView`` is that much and no more (no events, counts or statistics):
the ``SymbolIndex`` a prediction needs and the symbol -> patterns index, for a backend such as
SQLite whose rows are neither.
"""
from __future__ import annotations

from itertools import chain, compress, repeat
from operator import attrgetter
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from katoray.store.base import DeltaColumns, PatternDelta, SymbolIndex

_NAME, _EVENTS = attrgetter("name"), attrgetter("events")


class Column:
    """A growable 1-d array: appends amortise to O(1); ``view()`` is the filled prefix."""

    __slots__ = ("data", "size")

    def __init__(self, dtype) -> None:
        self.data = np.zeros(8, dtype)
        self.size = 0

    def extend(self, values) -> None:
        end = self.size + len(values)
        if end > len(self.data):  # a new buffer: views of the old one stay valid
            grown = np.zeros(max(end, 2 * len(self.data)), self.data.dtype)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:end] = values
        self.size = end

    def view(self) -> np.ndarray:
        size = self.size  # read the size first: the buffer read next holds at least that much
        return self.data[:size]

    def without(self, value: int) -> None:
        """Drop every entry equal to ``value`` into a new buffer (readers keep the old one)."""
        kept = self.view()[self.view() != value]
        self.data, self.size = np.concatenate([kept, np.zeros(8, kept.dtype)]), len(kept)


class NewPatterns(NamedTuple):
    """Patterns first seen in one apply, one row each, in the order they get their ids."""

    names: list[str]
    events: list[list[list[str]]]  # kept as the pattern's events (callers hand over fresh lists)
    flat: list[str]                # every row's symbols, row after row
    lengths: np.ndarray            # symbols per row
    single: np.ndarray             # whether every event of the row holds exactly one symbol
    has_first: np.ndarray          # whether the row's first event holds a symbol

    @classmethod
    def of_deltas(cls, deltas: Sequence[PatternDelta]) -> "NewPatterns":
        return cls.of_events(list(map(_NAME, deltas)), list(map(_EVENTS, deltas)))

    @classmethod
    def of_events(cls, names: list[str], events: list[list[list[str]]]) -> "NewPatterns":
        all_events = list(chain.from_iterable(events))
        flat = list(chain.from_iterable(all_events))
        num_events = np.fromiter(map(len, events), np.int64, len(events))
        if len(flat) == len(all_events) and all(all_events):  # the usual case: one symbol per event
            return cls(names, events, flat, num_events, np.ones(len(events), bool), num_events > 0)
        event_lengths = np.fromiter(map(len, all_events), np.int64, len(all_events))
        event_cuts = cuts(num_events)            # row -> its first event
        symbol_cuts = cuts(event_lengths)        # event -> its first symbol
        ones = cuts(event_lengths == 1)          # events holding one symbol, cumulated
        first_length = np.append(event_lengths, 0)[event_cuts[:-1]]  # 0 for a row without events
        return cls(names, events, flat,
                   symbol_cuts[event_cuts[1:]] - symbol_cuts[event_cuts[:-1]],
                   ones[event_cuts[1:]] - ones[event_cuts[:-1]] == num_events,
                   (num_events > 0) & (first_length > 0))

    @classmethod
    def of_columns(cls, columns: DeltaColumns, rows: list[int]) -> "NewPatterns":
        symbols = [columns.symbols[row] for row in rows]
        lengths = np.fromiter(map(len, symbols), np.int64, len(rows))
        return cls([columns.names[row] for row in rows], [[[s] for s in row] for row in symbols],
                   list(chain.from_iterable(symbols)), lengths, np.ones(len(rows), bool), lengths > 0)


def cuts(sizes: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive segments of these sizes, plus the total at the end."""
    cuts = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=cuts[1:])
    return cuts


def name_keys(names: list[str]) -> np.ndarray:
    """Each name's first 8 UTF-8 bytes, zero-padded, as a big-endian number: key(a) < key(b) => a < b."""
    try:
        raw = np.array(names, dtype="S8")  # ASCII (sha1 hex names): one C pass
    except UnicodeEncodeError:
        raw = np.array([name.encode()[:8] for name in names], dtype="S8")
    return raw.view(">u8").astype(np.uint64)


def posting_groups(symbols: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(symbol, pattern id) pairs -> (distinct symbols, start, end, ids): ``ids[start[k]:end[k]]``
    are, ascending and once each, the patterns holding ``distinct[k]``."""
    pairs = np.sort((symbols.astype(np.uint64) << np.uint64(32)) | ids.astype(np.uint64))  # by symbol, then id
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]  # a symbol twice in a pattern counts once
    symbols, ids = (pairs >> np.uint64(32)).astype(np.int64), pairs & np.uint64(0xFFFFFFFF)
    breaks = np.flatnonzero(symbols[1:] != symbols[:-1]) + 1
    starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(symbols)]])
    return symbols[starts], starts, ends, ids


def symbol_ids_of(known: dict[str, int], symbols: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each symbol's id in ``known``; symbols seen for the first time get the next ids (added to
    ``known``). Returns the ids and those new symbols, in id order."""
    ids = np.fromiter(map(known.get, symbols, repeat(-1)), np.int64, len(symbols))
    missing = ids < 0
    if not missing.any():
        return ids, []
    unknown = list(dict.fromkeys(compress(symbols, missing)))
    known.update(zip(unknown, range(len(known), len(known) + len(unknown))))
    ids[missing] = list(map(known.__getitem__, compress(symbols, missing)))
    return ids, unknown


class PostingChunks:
    """Symbol id -> ascending ids of the patterns holding it, kept as a few sorted chunks (one per
    ``add``, merged into one past ``MAX_CHUNKS``): a few arrays however many symbols there are,
    where one growable array per symbol costs ~250 bytes each (above node0 nearly every symbol
    is a pattern name held once). Ids only grow from one ``add`` to the next, so a symbol's list
    is its chunks' slices in order."""

    MAX_CHUNKS = 8

    def __init__(self) -> None:
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (symbols, bounds, ids)

    def add(self, symbols: np.ndarray, ids: np.ndarray) -> None:
        """(symbol, pattern id) pairs, every id larger than those added before."""
        if not len(symbols):
            return
        self._chunks.append(_chunk(symbols, ids))
        if len(self._chunks) > self.MAX_CHUNKS:
            self._chunks = [_chunk(np.concatenate([np.repeat(s, np.diff(b)) for s, b, _ in self._chunks]),
                                   np.concatenate([i for _, _, i in self._chunks]))]

    def of(self, symbol_id: int) -> np.ndarray:
        parts = []
        for symbols, bounds, ids in self._chunks:
            k = int(np.searchsorted(symbols, symbol_id))
            if k < len(symbols) and symbols[k] == symbol_id:
                parts.append(ids[bounds[k]:bounds[k + 1]])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint32)


def _chunk(symbols: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    distinct, starts, _, ids = posting_groups(symbols, ids)
    return distinct, np.append(starts, len(ids)), ids.astype(np.uint32)


NO_SYMBOL = -1   # first-symbol column of a pattern whose first event is empty


class PatternColumns:
    """The columns of a set of patterns, by pattern id: name, name key, symbol count, whether
    every event holds one symbol, the first event's first symbol id (``NO_SYMBOL`` if that event
    is empty), and the symbol ids of the flattened events (``flat``, from ``offsets``). Rows are
    only ever appended; an owner that deletes rows marks them in place (the name None, the first
    symbol ``NO_SYMBOL``)."""

    def __init__(self) -> None:
        self.names: list[str | None] = []
        self.name_keys, self.lengths, self.single = Column(np.uint64), Column(np.int64), Column(bool)
        self.firsts, self.offsets, self.flat = Column(np.int64), Column(np.int64), Column(np.uint32)
        self._length_range: tuple[int, int] | None = None   # over every row: rows are never removed
        self._event_kinds = (False, False)                   # some row not single, some single

    def append(self, new: NewPatterns, symbols: np.ndarray) -> range:
        """Rows for ``new``, whose flattened symbols have the ids ``symbols``; returns their ids."""
        ids = range(len(self.names), len(self.names) + len(new.names))
        starts = cuts(new.lengths)[:-1]
        self.names += new.names
        self.name_keys.extend(name_keys(new.names))
        self.offsets.extend(self.flat.size + starts)
        self.flat.extend(symbols)
        self.lengths.extend(new.lengths)
        self.single.extend(new.single)
        firsts = np.full(len(ids), NO_SYMBOL, np.int64)
        firsts[new.has_first] = symbols[starts[new.has_first]]
        self.firsts.extend(firsts)
        if len(ids):  # a search reads these per query: kept here, not recomputed over every row
            low, high = int(new.lengths.min()), int(new.lengths.max())
            self._length_range = (low, high) if self._length_range is None else \
                (min(low, self._length_range[0]), max(high, self._length_range[1]))
            self._event_kinds = (self._event_kinds[0] or not new.single.all(), self._event_kinds[1] or bool(new.single.any()))
        return ids

    def symbol_index(self, symbol_ids: list[int], postings: list[np.ndarray], num_symbol_ids: int) -> SymbolIndex:
        """``base.SymbolIndex`` over these columns for the symbols ``symbol_ids`` (-1: unknown)."""
        return SymbolIndex(symbol_ids=symbol_ids, postings=postings, num_symbol_ids=num_symbol_ids, names=self.names,
                           name_keys=self.name_keys.view(), lengths=self.lengths.view(),
                           single_symbol_events=self.single.view(), offsets=self.offsets.view(), flat=self.flat.view(),
                           length_range=self._length_range or (0, 0), event_kinds=self._event_kinds)


class IdView:
    """The columns and posting lists of a set of patterns that only grows: a ``SymbolIndex``
    source, and the symbol -> patterns index of a backend whose rows hold neither. Views handed
    out stay valid and unchanged while patterns are added (columns only append). Not
    thread-safe: its owner serialises every call."""

    def __init__(self) -> None:
        self.columns = PatternColumns()
        self._symbol_ids: dict[str, int] = {}
        self._postings = PostingChunks()

    def __len__(self) -> int:
        return len(self.columns.names)

    def add(self, new: NewPatterns) -> None:
        """Patterns not in the view yet (each name once)."""
        symbols, _ = symbol_ids_of(self._symbol_ids, new.flat)
        ids = self.columns.append(new, symbols)
        self._postings.add(symbols, np.repeat(np.arange(ids.start, ids.stop), new.lengths))

    def symbol_index(self, symbols: Sequence[str]) -> SymbolIndex:
        """``base.SymbolIndex`` for ``symbols`` (every symbol of the view is held by some pattern)."""
        symbol_ids = [self._symbol_ids.get(s, -1) for s in symbols]
        return self.columns.symbol_index(
            symbol_ids, [np.zeros(0, np.uint32) if i < 0 else self._postings.of(i) for i in symbol_ids],
            len(self._symbol_ids))

    def holding_any(self, symbols: Iterable[str]) -> set[str]:
        """Names of the patterns holding any of ``symbols``."""
        lists = [self._postings.of(i) for i in map(self._symbol_ids.get, symbols) if i is not None]
        if not lists:
            return set()
        return set(map(self.columns.names.__getitem__, np.concatenate(lists).tolist()))

    def starting_with(self, symbol: str) -> list[str]:
        """Names of the patterns whose first event's first symbol is ``symbol``, in id order."""
        symbol_id = self._symbol_ids.get(symbol)
        if symbol_id is None:
            return []
        ids = self._postings.of(symbol_id)
        ids = ids[self.columns.firsts.view()[ids] == symbol_id]
        return list(map(self.columns.names.__getitem__, ids.tolist()))
