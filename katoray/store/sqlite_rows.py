"""The pure half of the SQLite store: a batch of deltas -> the rows and posting lists one apply
writes; no I/O.

:class:`Batch` merges an apply's deltas per name; the functions here turn it into the pattern
upsert and its rows (events as JSON text, joined rather than encoded where that gives the same
text), posting lists grouped per symbol and packed as little-endian uint32 blobs, the rows of new
symbols and the frequency increments; and turn stored rows back into records. They are kept
apart from :mod:`katoray.store.sqlite` (the connection, the schema and the SQL, which decides
what is stored already) so they can be read and tested without a database.
"""
from __future__ import annotations

import json
import re
import struct
import sys
from array import array
from collections import Counter
from itertools import chain, compress
from operator import not_
from typing import Iterable, Mapping, Sequence

from katoray.store.base import DeltaColumns, PatternDelta, PatternRecord, merge_metadata

if array("I").itemsize != 4:
    raise ImportError("katoray's SQLite store packs pattern ids as C unsigned ints, which are not 32-bit here")

# A new name gets the next id (max + 1, so ids follow learn order); a known name adds its count.
# emotives/metadata, when the batch has any, are NULL unless this batch changed them (then they
# hold the merged result); a batch without any leaves them out (fewer parameters to bind).
_PATTERN_COLUMNS = ("name", "pattern_data", "length", "frequency")
_ANNOTATION_COLUMNS = ("emotives", "metadata")
RECORD_COLUMNS = ", ".join(_PATTERN_COLUMNS + _ANNOTATION_COLUMNS)   # a record's row, as record_of reads it

to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_JSON_CONTROL = re.compile(r"[\x00-\x1f]")   # to_json rewrites these, '"' and backslash inside a str
_JSON_ESCAPED_BYTES = bytes(range(0x20)) + b'"\\'
_EVENT_SEPARATOR = '"],["'
_LIST_TYPE, _STR_TYPE = {list}, {str}
_LITTLE_ENDIAN = sys.byteorder == "little"
_UINT32 = struct.Struct("<I").pack


class Batch:
    """One ``apply``'s deltas merged per name, in first-seen order (new pattern ids follow it).

    ``symbols[i]`` is pattern i's symbols in order; ``events`` is None when every event holds
    one symbol (then ``symbols`` says everything), else each pattern's events as given.
    ``annotated`` maps a name to its learns' (emotives, metadata), for those that carry any.
    """

    __slots__ = ("names", "symbols", "events", "counts", "annotated")

    def __init__(self, names: list[str], symbols: list[Sequence[str]], events: list | None,
                 counts: list[int], annotated: dict[str, list[tuple[list, dict]]]) -> None:
        self.names, self.symbols, self.events, self.counts, self.annotated = names, symbols, events, counts, annotated

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
        return cls(names, list(columns.symbols), None, list(columns.counts), annotated)

    def joined_data(self) -> list[str] | None:
        """Each pattern's events as JSON text made by joining strings: the encoder's text, at a
        fraction of its cost, for patterns whose symbols need no escaping (``is_plain``; the
        caller checks). None if some symbol is not a str."""
        try:
            if self.events is not None:
                return list(map(_joined_json, self.events))
            return [f'[["{_EVENT_SEPARATOR.join(pattern)}"]]' if pattern else "[]" for pattern in self.symbols]
        except TypeError:
            return None

    def encoded_data(self, i: int) -> str:
        """Pattern i's events as JSON text, by the encoder."""
        return to_json(self.events[i] if self.events is not None else [[s] for s in self.symbols[i]])

    def first_symbols(self, positions: Iterable[int]) -> list[str | None]:
        """The first event's first symbol of each pattern at ``positions`` (None: no such symbol)."""
        if self.events is None:
            return [pattern[0] if pattern else None for pattern in map(self.symbols.__getitem__, positions)]
        return [pattern[0][0] if pattern and pattern[0] else None for pattern in map(self.events.__getitem__, positions)]


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


def symbol_rows(symbols: list[str], freq: dict[str, int], holding: dict[str, list[int]],
                starting: dict[str, list[int]]) -> tuple[list[tuple], list[tuple]]:
    """INSERT rows (symbol, frequency, pmf, [starting list,] pattern list) of new symbols: those
    that start no pattern (most), and those that do."""
    first = list(map(starting.__contains__, symbols))
    rest = list(compress(symbols, map(not_, first)))
    lists = list(map(holding.__getitem__, rest))
    rows = list(zip(rest, map(freq.__getitem__, rest), map(len, lists), map(pack, lists)))
    if not any(first):
        return rows, []
    firsts = list(compress(symbols, first))
    lists = list(map(holding.__getitem__, firsts))
    return rows, list(zip(firsts, map(freq.__getitem__, firsts), map(len, lists),
                          map(pack, map(starting.__getitem__, firsts)), map(pack, lists)))


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


def group(symbol_lists: Iterable[Sequence[str]], ids: Iterable[int],
          firsts: bool) -> tuple[dict[str, list[int]], dict[str, list[int]], list[str]]:
    """Posting lists: symbol -> the ``ids`` (ascending) of the lists holding it, and (``firsts``)
    of those starting with it; and each repeat of a symbol inside one list (indexed once, but
    counted in the frequencies)."""
    postings: dict[str, list[int]] = {}
    starting: dict[str, list[int]] = {}
    repeats: list[str] = []
    get, get_first = postings.get, starting.get
    for pattern_id, symbols in zip(ids, symbol_lists):   # hot: ~7 distinct symbols per pattern
        if firsts and symbols:
            held = get_first(symbols[0])
            if held is None:
                starting[symbols[0]] = [pattern_id]
            else:
                held.append(pattern_id)
        for symbol in symbols:
            held = get(symbol)
            if held is None:
                postings[symbol] = [pattern_id]
            elif held[-1] != pattern_id:
                held.append(pattern_id)
            else:
                repeats.append(symbol)
    return postings, starting, repeats


def group_firsts(symbols: Iterable[str | None], ids: Iterable[int]) -> dict[str, list[int]]:
    """Posting lists of the first-symbol index: symbol -> the ``ids`` of the patterns starting with it."""
    postings: dict[str, list[int]] = {}
    get = postings.get
    for pattern_id, symbol in zip(ids, symbols):
        if symbol is not None:
            held = get(symbol)
            if held is None:
                postings[symbol] = [pattern_id]
            else:
                held.append(pattern_id)
    return postings


def frequencies(batch: Batch, new: Sequence[int], holding: dict[str, list[int]],
                repeats: list[str]) -> dict[str, int]:
    """freq increment per symbol: occurrences times count. The posting lists of the ``new``
    patterns count each of their occurrences once (ids, plus repeats); the rest of a new
    pattern's count, and a re-learned pattern's whole count, are added per occurrence."""
    freq = dict(zip(holding, map(len, holding.values())))
    for symbol in repeats:
        freq[symbol] += 1
    counts = batch.counts
    if len(new) == len(counts):
        rest = [c - 1 for c in counts]
    else:
        rest = list(counts)
        for i in new:
            rest[i] -= 1
    symbols = batch.symbols
    once = [r == 1 for r in rest]
    if any(once):   # e.g. re-learned once: counted in C
        for symbol, n in Counter(chain.from_iterable(compress(symbols, once))).items():
            freq[symbol] = freq.get(symbol, 0) + n
    for i in compress(range(len(rest)), rest):   # rare: other counts
        c = rest[i]
        if c != 1:
            for symbol in symbols[i]:
                freq[symbol] = freq.get(symbol, 0) + c
    return freq


def pack(ids: Sequence[int]) -> bytearray:
    """Pattern ids as a posting list: little-endian uint32s. A bytearray, not bytes: sqlite3 binds
    it directly, while bytes first miss a lookup for adapters (~0.3 µs per parameter)."""
    if len(ids) == 1:   # most symbols above node0: one pattern per apply
        return bytearray(_UINT32(ids[0]))
    packed = array("I", ids)
    if not _LITTLE_ENDIAN:
        packed.byteswap()
    return bytearray(packed)


def unpack(blobs: Iterable[bytes]) -> array:
    ids = array("I")
    for blob in blobs:
        ids.frombytes(blob)
    if not _LITTLE_ENDIAN:
        ids.byteswap()
    return ids


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
