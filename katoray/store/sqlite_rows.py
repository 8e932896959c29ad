"""The pure half of the SQLite store: a batch of deltas -> the rows one apply writes; no I/O.

:class:`Batch` merges an apply's deltas per name; the functions here turn it into the pattern
upsert and its rows (events as JSON text, joined rather than encoded where that gives the same
text) and each symbol's statistics increments; and turn stored rows back into records. They
are kept apart from :mod:`katoray.store.sqlite` (the connection, the schema and the SQL, which
decides what is stored already) so they can be read and tested without a database.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from itertools import chain, compress, filterfalse
from operator import not_
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from katoray.store.base import DeltaColumns, PatternDelta, PatternRecord, merge_emotives, merge_metadata
from katoray.store.wire import SYMBOL_SEP, JoinedSymbols

if TYPE_CHECKING:
    import numpy as np

# Batches of at least this many patterns in the wire's joined form count their symbols with numpy
# (``joined_increments``); smaller ones need no numpy, which a node actor then never imports (a
# one-document run's start-up: every level's actor is a process of its own).
JOINED_ARRAYS_MIN = 2000

# A new name gets the next id (max + 1, so ids follow learn order); a known name adds its count.
# emotives/metadata, when the batch has any, are NULL unless this batch changed them (then they
# hold the merged result); a batch without any leaves them out (fewer parameters to bind).
_PATTERN_COLUMNS = ("name", "pattern_data", "length", "frequency")
_ANNOTATION_COLUMNS = ("emotives", "metadata")
RECORD_COLUMNS = ", ".join(_PATTERN_COLUMNS + _ANNOTATION_COLUMNS)   # a record's row, as record_of reads it
# Reads by key (primary-key and unique-index searches, never scans; a test checks the plans).
STORED_SYMBOLS_SQL = "SELECT symbol FROM symbols WHERE symbol {keys}"
PATTERNS_NAMED_SQL = f"SELECT {RECORD_COLUMNS} FROM patterns WHERE name {{keys}}"
SYMBOL_STATISTICS_SQL = "SELECT symbol, frequency, pmf FROM symbols WHERE symbol {keys}"
ROWS_AFTER_SQL = "SELECT id, name, pattern_data, frequency FROM patterns WHERE id > ? ORDER BY id LIMIT ?"

to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_JSON_CONTROL = re.compile(r"[\x00-\x1f]")   # to_json rewrites these, '"' and backslash inside a str
_JSON_ESCAPED_BYTES = bytes(range(0x20)) + b'"\\'
_EVENT_SEPARATOR = '"],["'
_LIST_TYPE, _STR_TYPE = {list}, {str}


class Batch:
    """One ``apply``'s deltas merged per name, in first-seen order (new pattern ids follow it).

    ``symbols[i]`` is pattern i's symbols in order; ``events`` is None when every event holds
    one symbol (then ``symbols`` says everything), else each pattern's events as given.
    ``annotated`` maps a name to its learns' (emotives, metadata), for those that carry any.
    """

    __slots__ = ("names", "symbols", "events", "counts", "annotated", "_lengths")

    def __init__(self, names: list[str], symbols: Sequence[Sequence[str]], events: list | None,
                 counts: list[int], annotated: dict[str, list[tuple[list, dict]]]) -> None:
        self.names, self.symbols, self.events, self.counts, self.annotated = names, symbols, events, counts, annotated
        self._lengths: list[int] | None = None

    @classmethod
    def of_deltas(cls, deltas: Sequence[PatternDelta]) -> "Batch":
        names = [delta.name for delta in deltas]
        if len(set(names)) != len(names) or any([delta.emotives or delta.metadata for delta in deltas]):
            return cls._merged(deltas)
        events = [delta.events for delta in deltas]
        return cls._of_events(names, events, [delta.count for delta in deltas], {})

    @classmethod
    def _merged(cls, deltas: Sequence[PatternDelta]) -> "Batch":
        position: dict[str, int] = {}
        names: list[str] = []
        events: list = []
        counts: list[int] = []
        annotated: dict[str, list[tuple[list, dict]]] = {}
        for delta in deltas:
            name = delta.name
            i = position.get(name)
            if i is None:
                position[name] = len(names)
                names.append(name)
                events.append(delta.events)
                counts.append(delta.count)
            else:
                counts[i] += delta.count
            if delta.emotives or delta.metadata:
                annotated.setdefault(name, []).append((delta.emotives, delta.metadata))
        return cls._of_events(names, events, counts, annotated)

    @classmethod
    def _of_events(cls, names: list[str], events: list, counts: list[int],
                   annotated: dict[str, list[tuple[list, dict]]]) -> "Batch":
        symbols = [list(chain.from_iterable(pattern)) for pattern in events]
        # (not: as many symbols as events; [["a"], ["b", "c"], []] has three of each)
        one_per_event = all(map((1).__eq__, map(len, chain.from_iterable(events))))
        return cls(names, symbols, None if one_per_event else events, counts, annotated)

    @classmethod
    def of_columns(cls, columns: DeltaColumns) -> "Batch":
        names = list(columns.names)
        if len(set(names)) != len(names):   # rare: merge repeats the general way
            return cls.of_deltas(columns.to_deltas())
        annotated = {names[i]: [([], meta)] for i, meta in sorted(columns.metadata.items()) if meta}
        symbols = columns.symbols if isinstance(columns.symbols, JoinedSymbols) else list(columns.symbols)
        return cls(names, symbols, None, list(columns.counts), annotated)

    def lengths(self) -> list[int]:
        """Each pattern's number of symbols."""
        if self._lengths is None:
            if isinstance(self.symbols, JoinedSymbols):   # n symbols hold n - 1 separators
                self._lengths = [joined.count(SYMBOL_SEP) + 1 for joined in self.symbols.joined]
            else:
                self._lengths = list(map(len, self.symbols))
        return self._lengths

    def pattern_events(self, i: int) -> Sequence[Sequence[str]]:
        """Pattern i's events."""
        return self.events[i] if self.events is not None else [[s] for s in self.symbols[i]]

    def joined_data(self) -> list[str] | None:
        """Each pattern's events as JSON text made by joining strings: the encoder's text, at a
        fraction of its cost, for patterns whose symbols need no escaping (``is_plain``; the
        caller checks). None if some symbol is not a str."""
        if isinstance(self.symbols, JoinedSymbols):   # every symbol a str, none empty-patterned
            return [f'[["{joined.replace(SYMBOL_SEP, _EVENT_SEPARATOR)}"]]' for joined in self.symbols.joined]
        try:
            if self.events is not None:
                return list(map(_joined_json, self.events))
            return [f'[["{_EVENT_SEPARATOR.join(pattern)}"]]' if pattern else "[]" for pattern in self.symbols]
        except TypeError:
            return None

    def encoded_data(self, i: int) -> str:
        """Pattern i's events as JSON text, by the encoder."""
        return to_json(self.events[i] if self.events is not None else [[s] for s in self.symbols[i]])


def pattern_upsert(batch: Batch, data: list[str], lengths: list[int],
                   annotations: dict[str, tuple[str | None, str | None]]) -> tuple[str, Iterable[tuple]]:
    """The upsert and its rows, in batch order (so new patterns get ids in that order). Only the
    annotation columns some pattern of the batch changes are bound (``_ANNOTATION_COLUMNS``)."""
    rows = zip(batch.names, data, lengths, batch.counts)
    changed = [i for i, column in enumerate(_ANNOTATION_COLUMNS)
               if any(a[i] is not None for a in annotations.values())]
    columns = _PATTERN_COLUMNS + tuple(_ANNOTATION_COLUMNS[i] for i in changed)
    sql = (f"INSERT INTO patterns ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
           "ON CONFLICT(name) DO UPDATE SET frequency = frequency + excluded.frequency"
           + "".join(f", {c} = coalesce(excluded.{c}, {c})" for c in columns[len(_PATTERN_COLUMNS):]))
    if not changed:
        return sql, rows
    unchanged = (None, None)
    if len(changed) == 2:
        return sql, (row + annotations.get(row[0], unchanged) for row in rows)
    i = changed[0]
    return sql, (row + (annotations.get(row[0], unchanged)[i],) for row in rows)


def fresh_metadata_json(metadata: Mapping, cap: int | None, memo: dict[str, str]) -> str:
    """``to_json(merge_metadata({}, metadata, cap))``, merged once per distinct plain metadata (a
    batch's patterns share the metadata of a few documents)."""
    key = _plain_key(metadata)
    merged = memo.get(key) if key is not None else None
    if merged is None:
        merged = to_json(merge_metadata({}, metadata, cap))
        if key is not None:
            memo[key] = merged
    return merged


def _plain_key(metadata: Mapping) -> str | None:
    """``repr`` of a dict of str -> list of str (equal reprs then merge equally), else None."""
    if type(metadata) is dict and set(map(type, metadata.values())) <= _LIST_TYPE and \
            set(map(type, chain(metadata, *metadata.values()))) <= _STR_TYPE:
        return repr(metadata)
    return None


def symbol_increments(batch: Batch, new: Sequence[int]) -> tuple[dict[str, int], dict[str, int]]:
    """What one apply adds to each symbol's statistics: frequency (occurrences times count, over
    every pattern of the batch) and pmf (how many of the ``new`` patterns hold it, once each).
    Every symbol of a new pattern is in the frequencies, with 0 if its count was 0."""
    symbols, counts = batch.symbols, batch.counts
    if isinstance(symbols, JoinedSymbols):
        if len(symbols) >= JOINED_ARRAYS_MIN:
            return joined_increments(symbols.joined, batch.lengths(), counts, new)
        symbols = list(symbols)   # split once: read twice below
    held = symbols if len(new) == len(symbols) else list(map(symbols.__getitem__, new))
    pmf = Counter(chain.from_iterable(map(dict.fromkeys, held)))   # hot: ~7 distinct symbols per pattern
    once = list(map((1).__eq__, counts))
    freq = Counter(chain.from_iterable(compress(symbols, once) if not all(once) else symbols))
    for i in compress(range(len(counts)), map(not_, once)):   # rare: counts other than 1
        if counts[i]:
            for symbol in symbols[i]:
                freq[symbol] += counts[i]
    for symbol in filterfalse(freq.__contains__, pmf):   # a new pattern learned 0 times
        freq[symbol] = 0
    return freq, pmf


def joined_increments(joined: list[str], pattern_lengths: list[int], counts: list[int],
                      new: Sequence[int]) -> tuple[dict[str, int], dict[str, int]]:
    """``symbol_increments`` of patterns whose symbols come joined by ``SYMBOL_SEP`` (the wire's
    form; ``pattern_lengths``: symbols per pattern), without splitting them one by one: one split
    of the whole batch, each distinct symbol given a number, then counts over integer arrays.
    Measured on the KJV's node0 batches, in one process, alternating with ``Counter`` counting of
    the split patterns: node0's whole apply went from 0.88 to 0.73-0.75 CPU us per token."""
    import numpy as np

    if not joined:   # (an empty batch: a shard's part may hold no pattern; "" would split into [""])
        return {}, {}
    flat = SYMBOL_SEP.join(joined).split(SYMBOL_SEP)                     # every symbol, pattern after pattern
    distinct = list(dict.fromkeys(flat))
    number = dict(zip(distinct, range(len(distinct))))
    codes = np.fromiter(map(number.__getitem__, flat), np.int64, len(flat))
    lengths = np.asarray(pattern_lengths, np.int64)
    weights = np.asarray(counts, np.int64)
    rows = np.repeat(np.arange(len(joined)), lengths)                    # each symbol's pattern
    if (weights == 1).all():   # training's batches: each pattern once
        freq = np.bincount(codes, minlength=len(distinct))
    else:                      # float sums of small ints: exact
        freq = np.bincount(codes, weights=weights[rows], minlength=len(distinct)).astype(np.int64)
    held_new = np.zeros(len(joined), bool)
    held_new[np.asarray(new, np.int64)] = True
    pmf = _patterns_holding(codes[held_new[rows]], lengths[held_new], len(distinct))
    # In the frequencies: every symbol of a pattern learned at least once, and of every new one.
    in_freq = np.bincount(codes[(weights != 0)[rows]], minlength=len(distinct)) + pmf > 0
    return ({distinct[i]: f for i, f in zip(np.flatnonzero(in_freq).tolist(), freq[in_freq].tolist())},
            {distinct[i]: n for i, n in zip(np.flatnonzero(pmf).tolist(), pmf[pmf > 0].tolist())})


def _patterns_holding(codes: "np.ndarray", lengths: "np.ndarray", size: int) -> "np.ndarray":
    """Per symbol number (< ``size``), how many of the patterns hold it, each pattern counted once:
    ``codes`` are the patterns' symbols one pattern after another, ``lengths`` how many each has."""
    import numpy as np

    if not len(lengths):
        return np.zeros(size, np.int64)
    width = int(lengths.max())
    table = np.full((len(lengths), width), size, np.int64)               # a row per pattern, padded with size
    table[np.arange(width) < lengths[:, None]] = codes
    table.sort(axis=1)
    repeated = table[:, 1:][table[:, 1:] == table[:, :-1]]              # a symbol again in its pattern
    return np.bincount(codes, minlength=size) - np.bincount(repeated, minlength=size + 1)[:size]


def is_plain(symbol_lists: Iterable[Sequence[str]]) -> bool:
    """Whether every symbol is a str that JSON writes as itself between quotes (no quote,
    backslash or control character)."""
    try:
        text = "".join(map("".join, symbol_lists))
    except TypeError:   # a symbol that is not a str: the JSON encoder decides what it becomes
        return False
    if text.isascii():   # PTRN| names: bytes.translate beats a per-character str test threefold
        ascii_text = text.encode("ascii")
        return len(ascii_text.translate(None, _JSON_ESCAPED_BYTES)) == len(ascii_text)
    return '"' not in text and "\\" not in text and (text.isprintable() or not _JSON_CONTROL.search(text))


def _joined_json(events: Sequence[Sequence[str]]) -> str:
    """``to_json(events)`` for symbols JSON writes as themselves, by joining strings."""
    return "[" + ",".join(['["' + '","'.join(event) + '"]' if event else "[]" for event in events]) + "]"


def record_of(row: tuple) -> PatternRecord:
    """The record of a ``patterns`` row selected as ``RECORD_COLUMNS``."""
    name, pattern_data, length, frequency, emotives, metadata = row
    return PatternRecord(name, json.loads(pattern_data), length, frequency,
                         json.loads(emotives) if emotives else [], json.loads(metadata) if metadata else {})


def check_symbols_are_text(batch: Batch) -> None:
    """Raise TypeError naming the first symbol that is not a str: the symbol table keys them as
    text, so another type would come back as a different symbol."""
    for name, symbols in zip(batch.names, batch.symbols):
        for symbol in symbols:
            if not isinstance(symbol, str):
                raise TypeError(f"pattern {name}: symbol {symbol!r} is a {type(symbol).__name__}; KATO symbols are "
                                "strings (convert it with str() before learning it)")


def merged_annotations(batch: Batch, stored_rows: list[tuple], persistence: int,
                       metadata_cap: int | None) -> dict[str, tuple[str | None, str | None]]:
    """Final emotives/metadata JSON of each annotated pattern of ``batch``: the stored values
    (``stored_rows``: name, emotives JSON, metadata JSON), then one merge per learn. None for a
    column the batch leaves as it is stored."""
    stored = {name: (e, m) for name, e, m in stored_rows}   # JSON text, parsed where a merge needs it
    out = {}
    fresh: dict[str, str] = {}   # memo of fresh_metadata_json
    # Memos by object: the wire sends equal metadata as one shared object (LevelDeltas), and every
    # one stays alive in ``batch`` during the loop, so an id names one object throughout.
    by_object: dict[int, str] = {}
    # (stored metadata JSON, id(new metadata)) -> the merged JSON, None if the merge changes nothing:
    # a re-learned pattern mostly meets its own documents' metadata again.
    remerged: dict[tuple[str, int], str | None] = {}
    for name, learns in batch.annotated.items():
        row = stored.get(name)
        if len(learns) == 1 and not learns[0][0]:   # training's case: one learn, metadata only
            metadata = learns[0][1]
            if row is None:
                text = by_object.get(id(metadata))
                if text is None:
                    text = by_object[id(metadata)] = fresh_metadata_json(metadata, metadata_cap, fresh)
                out[name] = (None, text)
                continue
            key = (row[1] or "", id(metadata))
            if key not in remerged:
                merged = to_json(merge_metadata(json.loads(row[1]) if row[1] else {}, metadata, metadata_cap))
                remerged[key] = None if merged == row[1] else merged
            out[name] = (None, remerged[key])
            continue
        emotives, metadata = (json.loads(row[0]) if row and row[0] else [], json.loads(row[1]) if row and row[1] else {})
        for new_emotives, new_metadata in learns:   # the same sequence of merges MemoryStore makes
            if new_emotives:
                emotives = merge_emotives(emotives, new_emotives, persistence)
            if new_metadata:
                metadata = merge_metadata(metadata, new_metadata, metadata_cap)
        out[name] = (to_json(emotives) if any(e for e, _ in learns) else None,
                     to_json(metadata) if any(m for _, m in learns) else None)
    return out
