"""Embedded knowledge base: one SQLite file per KB, no server (the default backend).

URL rule (SQLAlchemy's): everything after ``sqlite:///`` is the path, so ``f"sqlite:///{path}"``
always means ``path``: ``sqlite:////abs/dir`` is absolute, ``sqlite:///rel/dir`` is relative to
the current directory. A path ending in ``.sqlite`` or ``.db`` is the KB file itself; any other
path is a directory (created if missing) holding ``<kb_id>.sqlite``, one file per node. A file
remembers the ``kb_id`` it was created for and refuses another, so two nodes never mix.

Layout: ``patterns`` (integer id, unique bare-sha1 ``name``, ``pattern_data``, ``emotives`` and
``metadata`` as JSON text), ``symbols`` (integer id, text, frequency, pmf), the symbol index
``symbol_patterns`` and the first-symbol index ``first_symbol`` (both ``(symbol_id, pattern_id)``
WITHOUT ROWID, so a lookup by symbol is a range read), one ``totals`` row and ``applied_batches``.
Merge rules are those of :mod:`katoray.store.base`; every answer equals :class:`MemoryStore`'s.

Each ``apply`` is one ``BEGIN IMMEDIATE`` transaction holding the deltas, the statistics and the
batch-id record, so a crash never leaves half a batch. The file is in WAL mode: other processes
may read it (analysis) while a writer trains; writers are serialised by SQLite's write lock.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections import Counter
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from katoray.errors import ConfigError, StoreError
from katoray.store.base import KBTotals, PatternDelta, PatternRecord, merge_emotives, merge_metadata

SCHEME = "sqlite:///"
FILE_SUFFIXES = (".sqlite", ".db")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0          # a second writer waits this long for the write lock, then fails
ITER_PAGE = 1000               # patterns per read in iter_patterns (keeps WAL snapshots short)
SYMBOL_CACHE_MAX = 2_000_000   # cached symbol ids per store (~150 B each); refilled lazily
_ID_BITS = 32                  # index rows travel packed as symbol_id << 32 | pattern_id

if sqlite3.sqlite_version_info < (3, 38, 0):
    raise ImportError(f"katoray's SQLite store needs SQLite >= 3.38 (JSON built in); this Python has "
                      f"{sqlite3.sqlite_version}. Use Python 3.11 from python.org or a recent distribution")

_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",   # with WAL: a crash loses at most the last commits, never corrupts
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-131072",   # KiB: 128 MiB keeps the index pages hot during bulk loads
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
CREATE TABLE IF NOT EXISTS patterns (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, pattern_data TEXT NOT NULL,
    length INTEGER NOT NULL, frequency INTEGER NOT NULL, emotives TEXT, metadata TEXT);
CREATE TABLE IF NOT EXISTS symbols (
    id INTEGER PRIMARY KEY, symbol TEXT NOT NULL UNIQUE,
    frequency INTEGER NOT NULL, pmf INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS symbol_patterns (
    symbol_id INTEGER NOT NULL, pattern_id INTEGER NOT NULL,
    PRIMARY KEY (symbol_id, pattern_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS first_symbol (
    symbol_id INTEGER NOT NULL, pattern_id INTEGER NOT NULL,
    PRIMARY KEY (symbol_id, pattern_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL,
    total_unique_patterns INTEGER NOT NULL, total_pattern_frequencies INTEGER NOT NULL,
    total_symbols_in_patterns_frequencies INTEGER NOT NULL, num_symbols INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0, 0, 0, 0);
CREATE TABLE IF NOT EXISTS applied_batches (batch_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""

# A new name inserts with the id reserved for it; a known name adds its count. emotives/metadata
# are NULL unless this batch changed them (then they hold the merged result).
_UPSERT_PATTERN = (
    "INSERT INTO patterns (id, name, pattern_data, length, frequency, emotives, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
    "frequency = frequency + excluded.frequency, "
    "emotives = coalesce(excluded.emotives, emotives), metadata = coalesce(excluded.metadata, metadata)")
_UPSERT_SYMBOL = (
    "INSERT INTO symbols (id, symbol, frequency, pmf) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
    "SET frequency = frequency + excluded.frequency, pmf = pmf + excluded.pmf")
# One JSON array of packed ints per index: measured ~25% faster than executemany of pairs.
_INSERT_PACKED = "SELECT value >> {bits}, value & {mask} FROM json_each(?)".format(
    bits=_ID_BITS, mask=(1 << _ID_BITS) - 1)
_RECORD_COLUMNS = "name, pattern_data, length, frequency, emotives, metadata"
_IN_JSON = "IN (SELECT value FROM json_each(?))"   # one bound JSON array instead of N parameters
# Index reads: symbol text -> id -> (symbol_id, pattern_id) range -> name; searches, never scans.
WITH_ANY_SQL = ("SELECT p.name FROM symbols s JOIN symbol_patterns sp ON sp.symbol_id = s.id "
                f"JOIN patterns p ON p.id = sp.pattern_id WHERE s.symbol {_IN_JSON}")
STARTING_WITH_SQL = ("SELECT p.name FROM symbols s JOIN first_symbol f ON f.symbol_id = s.id "
                     "JOIN patterns p ON p.id = f.pattern_id WHERE s.symbol = ? ORDER BY f.pattern_id")

_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')   # the only characters _to_json rewrites inside a str


def sqlite_path(url: str, kb_id: str) -> Path:
    """The KB file a ``sqlite:///`` URL names for ``kb_id`` (rules in the module docstring).

    >>> str(sqlite_path("sqlite:////data/kb", "node0_kato"))
    '/data/kb/node0_kato.sqlite'
    >>> str(sqlite_path("sqlite:///run.db", "node0_kato"))
    'run.db'
    """
    if not url.lower().startswith(SCHEME) or len(url) == len(SCHEME):
        raise ConfigError(
            f"SQLite store URL {url!r} must be sqlite:///<path>: sqlite:////abs/dir, "
            "sqlite:///relative/dir, or a file ending in .sqlite or .db")
    if "?" in url:
        raise ConfigError(f"SQLite store URL {url!r} has query options; katoray takes none, remove '?...'")
    path = Path(url[len(SCHEME):])
    return path if path.suffix.lower() in FILE_SUFFIXES else path / f"{kb_id}.sqlite"


class _Batch:
    """One ``apply``'s deltas merged per name, in first-seen order (new pattern ids follow it)."""

    __slots__ = ("names", "events", "counts", "annotated")

    def __init__(self, deltas: Sequence[PatternDelta]) -> None:
        counts: dict[str, int] = {}
        events: dict[str, Sequence[Sequence[str]]] = {}
        annotated: dict[str, list[PatternDelta]] = {}   # name -> its deltas with emotives/metadata
        for delta in deltas:
            name = delta.name
            if name in counts:
                counts[name] += delta.count
            else:
                counts[name] = delta.count
                events[name] = delta.events
            if delta.emotives or delta.metadata:
                annotated.setdefault(name, []).append(delta)
        self.names = list(counts)
        self.events = events
        self.counts = counts
        self.annotated = annotated

    def frequencies(self) -> Counter:
        """freq increment per symbol (occurrences times count); every symbol of the batch is a key."""
        counts, events = self.counts, self.events
        freq = Counter(chain.from_iterable(chain.from_iterable(
            events[name] for name in self.names if counts[name] == 1)))
        for name in self.names:
            if counts[name] != 1:
                for symbol in chain.from_iterable(events[name]):
                    freq[symbol] += counts[name]
        return freq


class SqliteStore:
    """A knowledge base in one SQLite file; other processes may read it while it trains."""

    def __init__(self, path: str | os.PathLike, kb_id: str = "kb", *,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.kb_id = kb_id
        self.path = Path(path)
        self._lock = threading.Lock()
        self._symbol_ids: dict[str, int] = {}   # committed symbol -> id (stable until clear)
        self._generation = 0                    # the totals.generation those ids belong to
        self._conn = _connect(self.path, kb_id, busy_timeout_s)

    @classmethod
    def from_url(cls, url: str, kb_id: str) -> "SqliteStore":
        """Open (creating if needed) the KB ``kb_id`` at a ``sqlite:///`` URL.

        Raises:
            ConfigError: the URL is not ``sqlite:///<path>``.
            StoreError: the file or its directory cannot be created or opened, or the file holds
                another KB (a different ``kb_id``) or another schema version.
        """
        return cls(sqlite_path(url, kb_id), kb_id)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, kb_id={self.kb_id!r})"

    # -- writes -----------------------------------------------------------------------------
    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        """One transaction (see :meth:`KnowledgeBase.apply`). Raises StoreError if SQLite fails;
        on any error the transaction is rolled back and the store is as it was."""
        batch = _Batch(deltas)
        with self._lock:
            with self._transaction():
                if batch_id is not None and not self._record_batch(batch_id):
                    return False
                new_symbols = self._write(batch, persistence, metadata_cap)
            self._symbol_ids.update(new_symbols)   # only once committed
            return True

    def _record_batch(self, batch_id: str) -> bool:
        return self._conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 1

    def _write(self, batch: _Batch, persistence: int, metadata_cap: int | None) -> dict[str, int]:
        """All SQL of one batch; returns the symbols it created."""
        conn = self._conn
        self._check_generation()
        first_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM patterns").fetchone()[0]
        freq = batch.frequencies()
        symbol_ids, new_symbols = self._resolve_symbols(set(freq))
        annotations = self._merged_annotations(batch, persistence, metadata_cap)
        lengths = [sum(map(len, batch.events[name])) for name in batch.names]
        encode = _joined_json if _is_plain(freq) else _to_json
        conn.executemany(_UPSERT_PATTERN, _pattern_rows(batch, first_id, lengths, annotations, encode))
        new_ids = [row[0] for row in conn.execute("SELECT id FROM patterns WHERE id >= ?", (first_id,))]
        pmf = self._index(batch, first_id, new_ids, symbol_ids)
        conn.executemany(_UPSERT_SYMBOL, [(symbol_ids[s], s, f, pmf.get(symbol_ids[s], 0))
                                          for s, f in freq.items()])
        symbols_total = sum(length * batch.counts[name] for name, length in zip(batch.names, lengths))
        conn.execute(
            "UPDATE totals SET total_unique_patterns = total_unique_patterns + ?1, "
            "total_pattern_frequencies = total_pattern_frequencies + ?1, "
            "total_symbols_in_patterns_frequencies = total_symbols_in_patterns_frequencies + ?2, "
            "num_symbols = num_symbols + ?3", (len(new_ids), symbols_total, len(new_symbols)))
        return new_symbols

    def _check_generation(self) -> None:
        # clear() (here or in another process) bumps the generation: cached symbol ids are void.
        generation = self._conn.execute("SELECT generation FROM totals").fetchone()[0]
        if generation != self._generation or len(self._symbol_ids) > SYMBOL_CACHE_MAX:
            self._symbol_ids.clear()
            self._generation = generation

    def _resolve_symbols(self, wanted: set[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Ids of the batch's symbols (cached, found in the file, or new) and the new ones."""
        cache = self._symbol_ids
        missing = wanted.difference(cache)
        if missing:
            found = self._conn.execute(f"SELECT symbol, id FROM symbols WHERE symbol {_IN_JSON}",
                                       (_to_json(list(missing)),)).fetchall()
            cache.update(found)   # committed rows: valid whatever this transaction does
            missing.difference_update(symbol for symbol, _ in found)
        next_id = self._conn.execute("SELECT coalesce(max(id), 0) + 1 FROM symbols").fetchone()[0]
        # Sorted: the same batches give the same ids (and the same file) on every run.
        new_symbols = {symbol: next_id + i for i, symbol in enumerate(sorted(missing))}
        ids = {symbol: cache.get(symbol) for symbol in wanted}
        ids.update(new_symbols)
        return ids, new_symbols

    def _merged_annotations(self, batch: _Batch, persistence: int,
                            metadata_cap: int | None) -> dict[str, tuple[str | None, str | None]]:
        """Final emotives/metadata JSON of each annotated pattern: stored, then one merge per learn."""
        if not batch.annotated:
            return {}
        stored = {name: (json.loads(e) if e else [], json.loads(m) if m else {}) for name, e, m in
                  self._conn.execute(f"SELECT name, emotives, metadata FROM patterns WHERE name {_IN_JSON}",
                                     (_to_json(list(batch.annotated)),))}
        out = {}
        for name, deltas in batch.annotated.items():
            emotives, metadata = stored.get(name, ([], {}))
            for delta in deltas:   # the same sequence of merges MemoryStore makes
                if delta.emotives:
                    emotives = merge_emotives(emotives, delta.emotives, persistence)
                if delta.metadata:
                    metadata = merge_metadata(metadata, delta.metadata, metadata_cap)
            out[name] = (_to_json(emotives) if any(d.emotives for d in deltas) else None,
                         _to_json(metadata) if any(d.metadata for d in deltas) else None)
        return out

    def _index(self, batch: _Batch, first_id: int, new_ids: list[int], symbol_ids: dict[str, int]) -> Counter:
        """Index the patterns this batch created; returns the pmf increment per symbol id."""
        if new_ids and (new_ids[-1] >> _ID_BITS or max(symbol_ids.values(), default=0) >> (63 - _ID_BITS)):
            raise StoreError(f"{str(self.path)!r} would exceed 2**32 patterns or 2**31 symbols, more than "
                             "one SQLite KB indexes; use a MongoDB store for this node")
        get_id, names, events = symbol_ids.__getitem__, batch.names, batch.events
        packed: list[int] = []
        firsts: list[int] = []
        for pattern_id in new_ids:
            pattern = events[names[pattern_id - first_id]]
            distinct = set(map(get_id, chain.from_iterable(pattern)))   # pmf counts a pattern once
            packed.extend([sid << _ID_BITS | pattern_id for sid in distinct])
            if pattern and pattern[0]:
                firsts.append(symbol_ids[pattern[0][0]] << _ID_BITS | pattern_id)
        self._conn.execute(f"INSERT INTO symbol_patterns {_INSERT_PACKED}", (_to_json(packed),))
        self._conn.execute(f"INSERT INTO first_symbol {_INSERT_PACKED}", (_to_json(firsts),))
        return Counter([value >> _ID_BITS for value in packed])

    def is_applied(self, batch_id: str) -> bool:
        return bool(self._fetch("SELECT 1 FROM applied_batches WHERE batch_id = ?", (batch_id,)))

    def clear(self) -> None:
        with self._lock, self._transaction():
            for table in ("patterns", "symbols", "symbol_patterns", "first_symbol", "applied_batches"):
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute(
                "UPDATE totals SET generation = generation + 1, total_unique_patterns = 0, "
                "total_pattern_frequencies = 0, total_symbols_in_patterns_frequencies = 0, num_symbols = 0")

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE ... COMMIT; any failure rolls back, SQLite's own become StoreError."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")   # waits up to busy_timeout_s for another writer
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._symbol_ids.clear()   # cheap to refill; never trust ids seen in a failed write
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"write to the SQLite knowledge base {str(self.path)!r} failed ({exc}); it was "
                             "rolled back and the store is unchanged") from exc

    # -- reads ------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:   # one connection: never read inside another thread's open transaction
            return self._conn.execute(sql, params).fetchall()

    def get_pattern(self, name: str) -> PatternRecord | None:
        rows = self._fetch(f"SELECT {_RECORD_COLUMNS} FROM patterns WHERE name = ?", (name,))
        return _record(rows[0]) if rows else None

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        rows = self._fetch(f"SELECT {_RECORD_COLUMNS} FROM patterns WHERE name {_IN_JSON}",
                           (_to_json(list(names)),))
        return {row[0]: _record(row) for row in rows}

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        rows = self._fetch(WITH_ANY_SQL, (_to_json(list(set(symbols))),))
        return {row[0] for row in rows}

    def patterns_starting_with(self, symbol: str) -> list[str]:
        # Pattern ids grow in learn order, so this is MemoryStore's order too.
        return [row[0] for row in self._fetch(STARTING_WITH_SQL, (symbol,))]

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_column("pmf", symbols)

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_column("frequency", symbols)

    def _symbol_column(self, column: str, symbols: Iterable[str]) -> dict[str, int]:
        symbols = list(symbols)
        found = dict(self._fetch(f"SELECT symbol, {column} FROM symbols WHERE symbol {_IN_JSON}",
                                 (_to_json(symbols),)))
        return {s: found[s] for s in symbols if s in found}

    def totals(self) -> KBTotals:
        row, = self._fetch("SELECT total_unique_patterns, total_pattern_frequencies, "
                           "total_symbols_in_patterns_frequencies, num_symbols FROM totals")
        return KBTotals(*row)

    def count(self) -> int:
        return self._fetch("SELECT total_unique_patterns FROM totals")[0][0]

    def iter_patterns(self) -> Iterator[PatternRecord]:
        # Keyset pages rather than one long cursor: a reader never pins an old WAL snapshot.
        query = f"SELECT {_RECORD_COLUMNS} FROM patterns WHERE name > ? ORDER BY name LIMIT {ITER_PAGE}"
        rows = self._fetch(f"SELECT {_RECORD_COLUMNS} FROM patterns ORDER BY name LIMIT {ITER_PAGE}")
        while rows:
            yield from map(_record, rows)
            rows = self._fetch(query, (rows[-1][0],))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _pattern_rows(batch: _Batch, first_id: int, lengths: list[int],
                  annotations: dict[str, tuple[str | None, str | None]], encode) -> list[tuple]:
    """Upsert rows; the i-th name gets id ``first_id + i`` if it is new."""
    unchanged = (None, None)
    events, counts = batch.events, batch.counts
    return [(first_id + i, name, encode(events[name]), length, counts[name], *annotations.get(name, unchanged))
            for i, (name, length) in enumerate(zip(batch.names, lengths))]


def _is_plain(symbols: Iterable) -> bool:
    """Whether every symbol is a str that JSON writes as itself between quotes."""
    symbols = list(symbols)
    return all(type(s) is str for s in symbols) and not _JSON_ESCAPED.search("".join(symbols))


def _joined_json(events: Sequence[Sequence[str]]) -> str:
    """``_to_json(events)`` for plain symbols, by joining strings (about twice as fast)."""
    return "[" + ",".join(['["' + '","'.join(event) + '"]' if event else "[]" for event in events]) + "]"


def _record(row: tuple) -> PatternRecord:
    name, pattern_data, length, frequency, emotives, metadata = row
    return PatternRecord(name, json.loads(pattern_data), length, frequency,
                         json.loads(emotives) if emotives else [], json.loads(metadata) if metadata else {})


def _connect(path: Path, kb_id: str, busy_timeout_s: float) -> sqlite3.Connection:
    """Open (creating) the file in WAL mode with the schema, checking that it holds ``kb_id``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(
            f"cannot create or open the SQLite knowledge base {str(path)!r} ({exc}); point the store URL "
            "at a writable directory (sqlite:///<dir>) or file (sqlite:///<dir>/<name>.sqlite)") from exc
    try:
        _prepare(conn, path, kb_id)
    except BaseException:
        conn.close()
        raise
    return conn


def _read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return {}
    return dict(conn.execute("SELECT key, value FROM meta"))


def _prepare(conn: sqlite3.Connection, path: Path, kb_id: str) -> None:
    try:
        conn.execute("PRAGMA page_size=16384")   # new files only: measured ~10% faster bulk loads
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        meta = _read_meta(conn)
        if "kb_id" not in meta:   # a new file: readers of an existing one never take the write lock
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('kb_id', ?)", (kb_id,))
            meta = _read_meta(conn)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot use {str(path)!r} as a SQLite knowledge base ({exc}); check that it is a writable "
            "SQLite file on a local disk, or point the store URL at a new location") from exc
    if mode.lower() != "wal":
        raise StoreError(f"{str(path)!r} cannot use SQLite's WAL mode (got {mode!r}); "
                         "put the store on a local disk")
    if meta["schema_version"] != str(SCHEMA_VERSION):
        raise StoreError(f"{str(path)!r} has knowledge-base schema version {meta['schema_version']}; this "
                         f"katoray reads version {SCHEMA_VERSION}. Use a new store URL")
    if meta["kb_id"] != kb_id:
        raise StoreError(
            f"{str(path)!r} holds knowledge base {meta['kb_id']!r}, not {kb_id!r}; give each node its own "
            "file, e.g. a directory URL sqlite:///<dir> (one <kb_id>.sqlite per node)")
