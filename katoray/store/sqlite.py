"""Embedded knowledge base: one SQLite file per KB, no server (the default backend).

Layout (schema 3): ``patterns`` (integer id in learn order, unique bare-sha1 ``name``,
``pattern_data``, ``emotives`` and ``metadata`` as JSON text), ``symbols`` (keyed by the symbol
text), ``symbol_patterns``, one ``totals`` row and ``applied_batches``. Both indexes, symbol ->
patterns holding it and symbol -> patterns starting with it, are posting lists: pattern ids packed
as little-endian uint32s, in learn order. A symbol's row holds its statistics (frequency, pmf)
and its first lists (``starting_ids``, ``pattern_ids``): those of the apply that created it, and
of later applies while they fit in ``OWN_LIST_MAX`` ids. Once they do not, each later apply adds
an overflow row to ``symbol_patterns`` with the same two lists, keyed by (symbol, the first id
that apply created). A lookup reads the symbol's row, then its overflow rows (primary-key ranges,
in apply order), then id -> name through the primary key. A list longer than ``OWN_LIST_MAX``
at creation goes to an overflow row at once, so a symbol's row stays small: every statistics
update rewrites it. Merge rules are those of :mod:`katoray.store.base`; every answer equals
:class:`MemoryStore`'s.

Why this shape (measured with ``python scripts/benchmark.py sqlite``: the KJV as training sends
it, GPT-2 tokens, 4 levels of chunk 8, 12 applies per level): lists per symbol per apply instead
of one row per (symbol, pattern) made node0's bulk loads about 2.5x faster (schema 2). Above
node0 nearly every symbol is a new ``PTRN|`` name held by one pattern (node1: 8 per pattern), so
keeping a new symbol's lists in its row writes one row per new symbol instead of three
(statistics, symbol index, first-symbol index); appending a recurring symbol's lists to its row
writes one row instead of two. With the other changes of schema 3 (blobs bound as bytearray,
fewer bound columns, JSON text checked per distinct symbol, a larger WAL between checkpoints)
node1 went from ~54 to ~28 µs of CPU per pattern and node0 from ~7.1 to ~5.4.

Whether a symbol is new needs no separate read: the store caches the own-list size of every
symbol it wrote (valid while no other process writes: ``totals.generation`` counts writes), and
inserts the others with ``INSERT OR IGNORE``, whose row count says whether any existed already
(only then one read finds which: a stored list holds only older ids, never the list just offered).

Deletion (``delete_patterns``) cuts the deleted ids out of the lists that hold them and drops
overflow rows left empty, so every read stays an exact index lookup with nothing to filter (no
tombstones). Finding those lists is indexed: new ids always exceed every stored id, so the list
holding id ``x`` is the symbol's last overflow row keyed ``<= x`` or, if there is none, the
symbol's own row; one range read per affected symbol (from the row holding its smallest deleted
id to its largest) finds them all. Ids of deleted patterns may be given again to later patterns;
no index refers to them any more.

Each ``apply`` and each ``delete_patterns`` is one ``BEGIN IMMEDIATE`` transaction holding the
deltas, the statistics and the batch-id record, so a crash never leaves half a batch. The file is
in WAL mode: other processes may read it (analysis) while a writer trains; writers are serialised
by SQLite's write lock.

Predictions search by integer id (``symbol_index``) through an in-memory view of the patterns
table, read on the first prediction and kept in step (:mod:`katoray.store.sqlite_view`).

This module is the SQL each operation runs; the file (URL rules, schema, pragmas, opening a
connection that holds the right KB) is :mod:`katoray.store.sqlite_file`. What an apply writes (a
batch's merged patterns, their JSON text, posting lists packed and grouped per symbol, frequency
increments) is computed without a connection in :mod:`katoray.store.sqlite_rows`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import Counter
from contextlib import contextmanager
from itertools import chain, compress, filterfalse
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from katoray.errors import StoreError
from katoray.store.base import (DeltaColumns, KBTotals, PatternDelta, PatternRecord, SymbolIndex, check_apply_args,
                                merge_emotives, merge_metadata)
from katoray.store.sqlite_file import BUSY_TIMEOUT_S, connect, sqlite_path
from katoray.store.sqlite_rows import (RECORD_COLUMNS, Batch, fresh_metadata_json, frequencies, group, group_firsts,
                                       is_plain, pack, pattern_upsert, record_of, symbol_rows, to_json, unpack)
from katoray.store.sqlite_view import PatternView, count_removal
from katoray.util import paused_gc

ITER_PAGE = 1000               # patterns per read in iter_patterns (keeps WAL snapshots short)
SYMBOL_CACHE_MAX = 2_000_000   # stored symbols whose own-list size is cached per store; refilled lazily
OWN_LIST_MAX = 256             # ids a symbol's own row may hold (1 KiB); later lists go to overflow rows
CLOSED = -1                    # cached own-list size of a symbol that has overflow rows
MAX_PATTERN_ID = 2**32 - 1     # posting lists hold uint32 pattern ids

# A symbol not known to be stored: created with the lists of this apply, or left as it is.
_INSERT_SYMBOL = "INSERT OR IGNORE INTO symbols VALUES (?, ?, ?, ?, ?)"
_INSERT_SYMBOL_NOT_FIRST = "INSERT OR IGNORE INTO symbols VALUES (?, ?, ?, x'', ?)"   # most symbols
_UPDATE_SYMBOL = "UPDATE symbols SET frequency = frequency + ?, pmf = pmf + ? WHERE symbol = ?"
# (|| joins as text; the cast gives the same bytes back as a blob)
_APPEND_SYMBOL = ("UPDATE symbols SET frequency = frequency + ?, pmf = pmf + ?, "
                  "starting_ids = CAST(starting_ids || ? AS BLOB), pattern_ids = CAST(pattern_ids || ? AS BLOB) "
                  "WHERE symbol = ?")
_APPEND_SYMBOL_NOT_FIRST = ("UPDATE symbols SET frequency = frequency + ?, pmf = pmf + ?, "
                            "pattern_ids = CAST(pattern_ids || ? AS BLOB) WHERE symbol = ?")
_IN_JSON = "IN (SELECT value FROM json_each(?1))"   # one bound JSON array instead of N parameters
# Index reads: a symbol's own row and its overflow rows (primary-key searches, never scans), then
# ids -> names (rowid lookups). Lists come in apply order (the symbol's own first, key 0 before
# every overflow key), ids in learn order inside a list; the list is the last column.
WITH_ANY_SQL = (f"SELECT pattern_ids FROM symbols WHERE symbol {_IN_JSON} "
                f"UNION ALL SELECT pattern_ids FROM symbol_patterns WHERE symbol {_IN_JSON}")
STARTING_WITH_SQL = ("SELECT 0, starting_ids FROM symbols WHERE symbol = ?1 "
                     "UNION ALL SELECT first_id, starting_ids FROM symbol_patterns WHERE symbol = ?1 ORDER BY 1")
NAMES_OF_IDS_SQL = f"SELECT id, name FROM patterns WHERE id {_IN_JSON}"
# Deletion: the rows of symbol ?1 that may hold ids ?2..?3 (module docstring); first_id 0 is the
# symbol's own row.
_ROWS_HOLDING_SQL = (
    "SELECT 0, starting_ids, pattern_ids FROM symbols WHERE symbol = ?1 AND NOT EXISTS "
    "(SELECT 1 FROM symbol_patterns WHERE symbol = ?1 AND first_id <= ?2) UNION ALL "
    "SELECT first_id, starting_ids, pattern_ids FROM symbol_patterns WHERE symbol = ?1 AND first_id <= ?3 AND "
    "first_id >= coalesce((SELECT max(first_id) FROM symbol_patterns WHERE symbol = ?1 AND first_id <= ?2), 0)")



class SqliteStore:
    """A knowledge base in one SQLite file; other processes may read it while it trains."""

    def __init__(self, path: str | os.PathLike, kb_id: str = "kb", *,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.kb_id = kb_id
        self.path = Path(path)
        self._lock = threading.Lock()
        # Stored symbols -> ids in their own row's list (CLOSED: it has overflow rows), as
        # committed by this process; void once another write (totals.generation) intervenes.
        self._own_sizes: dict[str, int] = {}
        self._generation = 0                    # the totals.generation that cache belongs to
        self._conn = connect(self.path, kb_id, busy_timeout_s)
        self._view = PatternView()              # patterns by integer id, for predictions
        self._view_lock = threading.Lock()

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
        with paused_gc():   # a batch allocates ~10 small containers per pattern and no cycles
            batch = Batch.of_deltas(deltas)
        return self._apply(batch, batch_id, persistence, metadata_cap)

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        """``apply(columns.to_deltas(), ...)`` without building the deltas."""
        with paused_gc():
            batch = Batch.of_columns(columns)
        return self._apply(batch, batch_id, persistence, metadata_cap)

    def _apply(self, batch: Batch, batch_id: str | None, persistence: int, metadata_cap: int | None) -> bool:
        check_apply_args(persistence, metadata_cap)
        with self._lock, paused_gc():
            with self._transaction():
                if batch_id is not None and not self._record_batch(batch_id):
                    return False
                sizes = self._write(batch, persistence, metadata_cap)
            self._own_sizes.update(sizes)   # only once committed
            self._generation += 1           # this apply's own bump (_write)
            return True

    def _record_batch(self, batch_id: str) -> bool:
        return self._conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 1

    def _write(self, batch: Batch, persistence: int, metadata_cap: int | None) -> dict[str, int]:
        """All SQL of one batch; returns the own-list sizes of the symbols whose rows it wrote."""
        conn = self._conn
        self._check_generation()
        annotations = self._merged_annotations(batch, persistence, metadata_cap)
        lengths = list(map(len, batch.symbols))
        last_id = conn.execute("SELECT coalesce(max(id), 0) FROM patterns").fetchone()[0]
        if last_id + len(lengths) > MAX_PATTERN_ID:
            raise StoreError(f"{str(self.path)!r} would exceed {MAX_PATTERN_ID} pattern ids, more than one SQLite "
                             "KB indexes; use a MongoDB store for this node")
        # Joined JSON is checked once the batch's distinct symbols are known (below), not per occurrence.
        data = batch.joined_data()
        joined = data is not None
        sql, rows = pattern_upsert(batch, data if joined else list(map(batch.encoded_data, range(len(lengths)))),
                                   lengths, annotations)
        conn.executemany(sql, rows)
        new = self._new_positions(batch, last_id)
        first_id = last_id + 1
        ids = range(first_id, first_id + len(new))
        symbols = batch.symbols if len(new) == len(lengths) else list(map(batch.symbols.__getitem__, new))
        holding, starting, repeats = group(symbols, ids, batch.events is None)
        if batch.events is not None:   # the first event may be empty: its first symbol is not symbols[0]
            starting = group_firsts(batch.first_symbols(new), ids)
        freq = frequencies(batch, new, holding, repeats)
        if joined and not is_plain([freq]):
            self._encode_escaped(batch, new, holding, first_id)
        created, sizes = self._write_symbols(freq, holding, starting, first_id)
        symbols_total = sum(map(int.__mul__, lengths, batch.counts))
        conn.execute(   # every write bumps the generation: other writers' caches are then void
            "UPDATE totals SET generation = generation + 1, total_unique_patterns = total_unique_patterns + ?1, "
            "total_pattern_frequencies = total_pattern_frequencies + ?1, "
            "total_symbols_in_patterns_frequencies = total_symbols_in_patterns_frequencies + ?2, "
            "num_symbols = num_symbols + ?3", (len(new), symbols_total, created))
        return sizes

    def _encode_escaped(self, batch: Batch, new: Sequence[int], holding: dict[str, list[int]],
                        first_id: int) -> None:
        """Rewrite, by the encoder, the joined JSON of the new patterns holding a symbol that JSON
        escapes (a re-learned pattern keeps its stored text)."""
        ids = sorted({i for s, held in holding.items() if not is_plain([[s]]) for i in held})
        self._conn.executemany("UPDATE patterns SET pattern_data = ? WHERE id = ?",
                               [(batch.encoded_data(new[i - first_id]), i) for i in ids])

    def _new_positions(self, batch: Batch, last_id: int) -> Sequence[int]:
        """Batch positions of the patterns the upsert created (their ids: last_id + 1, + 2, ...)."""
        conn = self._conn
        created = conn.execute("SELECT coalesce(max(id), 0) FROM patterns").fetchone()[0] - last_id
        if created == len(batch.names):
            return range(created)
        if created == 0:
            return []
        new_names = set(chain.from_iterable(conn.execute("SELECT name FROM patterns WHERE id > ?", (last_id,))))
        return list(compress(range(len(batch.names)), map(new_names.__contains__, batch.names)))

    def _write_symbols(self, freq: dict[str, int], holding: dict[str, list[int]], starting: dict[str, list[int]],
                       first_id: int) -> tuple[int, dict[str, int]]:
        """Symbol statistics and both indexes (layout in the module docstring). ``holding`` /
        ``starting``: symbol -> ids of this apply's new patterns holding it / starting with it (a
        pattern's first symbol is one it holds). Returns how many symbols it created and the
        own-list sizes of the rows it wrote."""
        created, stored = self._insert_symbols(freq, holding, starting, first_id)
        if len(created) == len(freq):
            return len(created), created
        written = dict(created)
        sizes = self._own_sizes
        appended, appended_first, stats_only, overflow = [], [], [], []
        for s in filterfalse(created.__contains__, freq):
            ids = holding.get(s)
            if ids is None:   # held by re-learned patterns only
                stats_only.append((freq[s], 0, s))
                continue
            size = stored[s] if s in stored else sizes[s]
            if size != CLOSED and size + len(ids) <= OWN_LIST_MAX:
                if s in starting:
                    appended_first.append((freq[s], len(ids), pack(starting[s]), pack(ids), s))
                else:
                    appended.append((freq[s], len(ids), pack(ids), s))
                written[s] = size + len(ids)
            else:
                stats_only.append((freq[s], len(ids), s))
                overflow.append((s, first_id, pack(starting[s]) if s in starting else bytearray(), pack(ids)))
                written[s] = CLOSED
        conn = self._conn
        expected = len(appended) + len(appended_first) + len(stats_only)
        updated = conn.executemany(_APPEND_SYMBOL_NOT_FIRST, appended).rowcount + \
            conn.executemany(_APPEND_SYMBOL, appended_first).rowcount + \
            conn.executemany(_UPDATE_SYMBOL, stats_only).rowcount
        if updated != expected:
            raise StoreError(f"{str(self.path)!r}: {expected - updated} symbols of stored patterns are missing from "
                             "the symbol table; the file is damaged, nothing was written. Rebuild this KB")
        conn.executemany("INSERT INTO symbol_patterns VALUES (?, ?, ?, ?)", overflow)
        return len(created), written

    def _insert_symbols(self, freq: dict[str, int], holding: dict[str, list[int]], starting: dict[str, list[int]],
                        first_id: int) -> tuple[dict[str, int], dict[str, int]]:
        """Create the symbols not known to be stored, with their lists in their own row, or in an
        overflow row when longer than OWN_LIST_MAX (a long list in the row would be copied by
        every later statistics update). Returns the own-list sizes of those created and of those
        found stored already (a cold cache)."""
        conn = self._conn
        fresh = list(filterfalse(self._own_sizes.__contains__, holding))   # one that gained no pattern is stored
        sizes = list(map(len, map(holding.__getitem__, fresh)))
        long = [s for s, size in zip(fresh, sizes) if size > OWN_LIST_MAX] if max(sizes, default=0) > OWN_LIST_MAX \
            else []
        stored = self._stored_sizes(long) if long else {}   # few: known before their rows are chosen
        short = list(compress(fresh, map(OWN_LIST_MAX.__ge__, sizes))) if long else fresh
        rows, first_rows = symbol_rows(short, freq, holding, starting)
        inserted = conn.executemany(_INSERT_SYMBOL_NOT_FIRST, rows).rowcount + \
            conn.executemany(_INSERT_SYMBOL, first_rows).rowcount
        if inserted != len(short):
            stored.update(self._stored_sizes(short, {row[0]: row[-1] for row in chain(rows, first_rows)}))
        created = dict(zip(short, map(len, map(holding.__getitem__, short))))
        if stored:
            created = {s: size for s, size in created.items() if s not in stored}
        long = [s for s in long if s not in stored]
        if long:
            conn.executemany(_INSERT_SYMBOL, [(s, freq[s], len(holding[s]), bytearray(), bytearray()) for s in long])
            conn.executemany("INSERT INTO symbol_patterns VALUES (?, ?, ?, ?)", [
                (s, first_id, pack(starting[s]) if s in starting else bytearray(), pack(holding[s])) for s in long])
            created.update(dict.fromkeys(long, CLOSED))
        return created, stored

    def _stored_sizes(self, symbols: list[str], offered: dict[str, bytearray] | None = None) -> dict[str, int]:
        """Own-list sizes (CLOSED: it has overflow rows) of those of ``symbols`` that are stored,
        leaving out those whose stored list is the ``offered`` one: the INSERT OR IGNORE just
        created them (a symbol stored before holds only older ids)."""
        rows = self._conn.execute(
            "SELECT symbol, pattern_ids, EXISTS (SELECT 1 FROM symbol_patterns AS o WHERE o.symbol = s.symbol) "
            f"FROM symbols AS s WHERE symbol {_IN_JSON}", (to_json(symbols),))
        return {s: CLOSED if closed else len(ids) // 4 for s, ids, closed in rows
                if offered is None or ids != offered[s]}

    def _check_generation(self) -> None:
        # Every write (here or in another process) bumps the generation; only this process's own
        # keep the cache valid (_apply follows them).
        generation = self._conn.execute("SELECT generation FROM totals").fetchone()[0]
        if generation != self._generation or len(self._own_sizes) > SYMBOL_CACHE_MAX:
            self._own_sizes.clear()
            self._generation = generation

    def _merged_annotations(self, batch: Batch, persistence: int,
                            metadata_cap: int | None) -> dict[str, tuple[str | None, str | None]]:
        """Final emotives/metadata JSON of each annotated pattern: stored, then one merge per learn."""
        if not batch.annotated:
            return {}
        stored = {name: (json.loads(e) if e else [], json.loads(m) if m else {}) for name, e, m in
                  self._conn.execute(f"SELECT name, emotives, metadata FROM patterns WHERE name {_IN_JSON}",
                                     (to_json(list(batch.annotated)),))}
        out = {}
        fresh: dict[str, str] = {}   # memo of fresh_metadata_json
        for name, learns in batch.annotated.items():
            if name not in stored and len(learns) == 1 and not learns[0][0]:   # training's case
                out[name] = (None, fresh_metadata_json(learns[0][1], metadata_cap, fresh))
                continue
            emotives, metadata = stored.get(name, ([], {}))
            for new_emotives, new_metadata in learns:   # the same sequence of merges MemoryStore makes
                if new_emotives:
                    emotives = merge_emotives(emotives, new_emotives, persistence)
                if new_metadata:
                    metadata = merge_metadata(metadata, new_metadata, metadata_cap)
            out[name] = (to_json(emotives) if any(e for e, _ in learns) else None,
                         to_json(metadata) if any(m for _, m in learns) else None)
        return out

    def is_applied(self, batch_id: str) -> bool:
        return bool(self._fetch("SELECT 1 FROM applied_batches WHERE batch_id = ?", (batch_id,)))

    def delete_patterns(self, names: Iterable[str]) -> int:
        """Remove these patterns as if never learned (see :meth:`KnowledgeBase.delete_patterns`),
        in one transaction; unknown names are ignored. Returns how many were deleted.

        Raises StoreError if SQLite fails or the statistics and indexes disagree with the deleted
        patterns (a damaged file); either way the transaction is rolled back, the store unchanged.
        """
        wanted = to_json([name for name in dict.fromkeys(names) if isinstance(name, str)])
        with self._lock, self._transaction():
            doomed = self._conn.execute(f"SELECT id, pattern_data, length, frequency FROM patterns "
                                        f"WHERE name {_IN_JSON} ORDER BY id", (wanted,)).fetchall()
            if doomed:
                self._delete(doomed)
                count_removal(self._conn)
        return len(doomed)

    def _delete(self, doomed: list[tuple[int, str, int, int]]) -> None:
        """All SQL of one deletion: patterns, symbol statistics, both indexes, totals."""
        conn = self._conn
        freq: Counter = Counter()            # symbol -> occurrences times frequency, to subtract
        holders: dict[str, list[int]] = {}   # symbol -> ids of the deleted patterns holding it
        firsts: dict[str, list[int]] = {}    # first symbol -> ids of the deleted patterns starting with it
        symbols_total = 0
        for pattern_id, pattern_data, length, frequency in doomed:
            events = json.loads(pattern_data)
            symbols = list(chain.from_iterable(events))
            for symbol in symbols:
                freq[symbol] += frequency
            for symbol in dict.fromkeys(symbols):
                holders.setdefault(symbol, []).append(pattern_id)
            if events and events[0]:
                firsts.setdefault(events[0][0], []).append(pattern_id)
            symbols_total += length * frequency
        conn.execute(f"DELETE FROM patterns WHERE id {_IN_JSON}", (to_json([row[0] for row in doomed]),))
        self._cut_postings(holders, firsts)
        forgotten = self._subtract_symbols(freq, holders)   # after the cuts: it drops forgotten rows
        conn.execute(   # the generation bump voids every writer's cache, this one's too
            "UPDATE totals SET generation = generation + 1, "
            "total_unique_patterns = total_unique_patterns - ?1, "
            "total_pattern_frequencies = total_pattern_frequencies - ?1, "
            "total_symbols_in_patterns_frequencies = total_symbols_in_patterns_frequencies - ?2, "
            "num_symbols = num_symbols - ?3", (len(doomed), symbols_total, forgotten))

    def _subtract_symbols(self, freq: Counter, holders: dict[str, list[int]]) -> int:
        """Undo the deleted patterns' symbol statistics; forget symbols no pattern holds any more.
        Returns how many were forgotten."""
        conn = self._conn
        changed = conn.executemany("UPDATE symbols SET frequency = frequency - ?, pmf = pmf - ? WHERE symbol = ?",
                                   [(freq[s], len(ids), s) for s, ids in holders.items()]).rowcount
        affected = to_json(list(holders))
        broken = conn.execute(f"SELECT symbol FROM symbols WHERE symbol {_IN_JSON} AND "
                              "(pmf < 0 OR frequency < 0 OR (pmf = 0 AND frequency != 0)) LIMIT 1",
                              (affected,)).fetchall()
        if changed != len(holders) or broken:
            raise StoreError(f"{str(self.path)!r}: the symbol statistics disagree with the patterns being "
                             f"deleted (e.g. symbol {broken[0][0] if broken else '?'!r}); the file is damaged, "
                             "nothing was deleted. Rebuild this KB")
        return conn.execute(f"DELETE FROM symbols WHERE pmf = 0 AND symbol {_IN_JSON}", (affected,)).rowcount

    def _cut_postings(self, holders: dict[str, list[int]], firsts: dict[str, list[int]]) -> None:
        """Rewrite the lists holding the deleted ids (``holders``/``firsts``: symbol -> deleted ids
        holding it / starting with it); overflow rows left empty go. A starting list is part of
        its row's pattern list, so only rows whose pattern list loses ids change.

        One range read per symbol: from the row holding its smallest deleted id (its last
        overflow row keyed <= that id, else its own row; module docstring) to the largest."""
        conn = self._conn
        own: list[tuple[bytearray, bytearray, str]] = []
        rewritten: list[tuple[bytearray, bytearray, str, int]] = []
        emptied: list[tuple[str, int]] = []
        for symbol, ids in holders.items():
            gone, gone_first = set(ids), set(firsts.get(symbol, ()))
            rows = conn.execute(_ROWS_HOLDING_SQL, (symbol, ids[0], ids[-1]))   # ids ascend: doomed is in id order
            cut = cut_first = 0
            for first_id, starting, holding in rows:
                held, held_first = unpack([holding]), unpack([starting])
                kept = [i for i in held if i not in gone]
                if len(kept) == len(held):
                    continue
                kept_first = [i for i in held_first if i not in gone_first]
                cut, cut_first = cut + len(held) - len(kept), cut_first + len(held_first) - len(kept_first)
                if first_id == 0:
                    own.append((pack(kept_first), pack(kept), symbol))
                elif kept:
                    rewritten.append((pack(kept_first), pack(kept), symbol, first_id))
                else:
                    emptied.append((symbol, first_id))
            if (cut, cut_first) != (len(gone), len(gone_first)):
                index, listed, wanted = (("symbol_patterns", cut, len(gone)) if cut != len(gone)
                                         else ("of first symbols", cut_first, len(gone_first)))
                raise StoreError(f"{str(self.path)!r}: the index {index} lists {listed} of the {wanted} deleted "
                                 f"patterns holding symbol {symbol!r}; the file is damaged, nothing was deleted. "
                                 "Rebuild this KB")
        conn.executemany("UPDATE symbols SET starting_ids = ?, pattern_ids = ? WHERE symbol = ?", own)
        conn.executemany("UPDATE symbol_patterns SET starting_ids = ?, pattern_ids = ? "
                         "WHERE symbol = ? AND first_id = ?", rewritten)
        conn.executemany("DELETE FROM symbol_patterns WHERE symbol = ? AND first_id = ?", emptied)

    def clear(self) -> None:
        with self._lock, self._transaction():
            for table in ("patterns", "symbols", "symbol_patterns", "applied_batches"):
                self._conn.execute(f"DELETE FROM {table}")
            count_removal(self._conn)
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
                self._own_sizes.clear()   # cheap to refill; never trust what a failed write saw
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"write to the SQLite knowledge base {str(self.path)!r} failed ({exc}); it was "
                             "rolled back and the store is unchanged") from exc

    # -- reads ------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:   # one connection: never read inside another thread's open transaction
            return self._conn.execute(sql, params).fetchall()

    def get_pattern(self, name: str) -> PatternRecord | None:
        rows = self._fetch(f"SELECT {RECORD_COLUMNS} FROM patterns WHERE name = ?", (name,))
        return record_of(rows[0]) if rows else None

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        rows = self._fetch(f"SELECT {RECORD_COLUMNS} FROM patterns WHERE name {_IN_JSON}",
                           (to_json(list(names)),))
        return {row[0]: record_of(row) for row in rows}

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        names = self._indexed_names(WITH_ANY_SQL, (to_json(list(set(symbols))),))
        return set(names)

    def patterns_starting_with(self, symbol: str) -> list[str]:
        # Posting rows in apply order, ids in learn order inside each: MemoryStore's order.
        return self._indexed_names(STARTING_WITH_SQL, (symbol,))

    def _indexed_names(self, postings_sql: str, params: Sequence) -> list[str]:
        """Names of the pattern ids in the posting lists ``postings_sql`` selects, in list order
        (first occurrence), read in one snapshot so a concurrent clear() cannot mix states."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                ids = unpack(row[-1] for row in conn.execute(postings_sql, params))   # the list: last column
                names = dict(conn.execute(NAMES_OF_IDS_SQL, ("[" + ",".join(map(str, ids)) + "]",))) if ids else {}
            finally:
                conn.execute("COMMIT")   # a read-only transaction: nothing to roll back
        return [names[i] for i in dict.fromkeys(ids)]

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_column("pmf", symbols)

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_column("frequency", symbols)

    def _symbol_column(self, column: str, symbols: Iterable[str]) -> dict[str, int]:
        symbols = list(symbols)
        found = dict(self._fetch(f"SELECT symbol, {column} FROM symbols WHERE symbol {_IN_JSON}",
                                 (to_json(symbols),)))
        return {s: found[s] for s in symbols if s in found}

    def symbol_index(self, symbols: Sequence[str]) -> SymbolIndex:
        """Patterns by integer id for ``symbols`` (``base.SymbolIndex``): predictions then search
        by id as over ``memory://``. The view is read from the file the first time and kept in
        step (:mod:`katoray.store.sqlite_view`)."""
        with self._view_lock:
            with self._lock:   # one connection: the view's read transaction must be alone on it
                view = self._view.refresh(self._conn)
            return view.symbol_index(symbols)

    def totals(self) -> KBTotals:
        row, = self._fetch("SELECT total_unique_patterns, total_pattern_frequencies, "
                           "total_symbols_in_patterns_frequencies, num_symbols FROM totals")
        return KBTotals(*row)

    def count(self) -> int:
        return self._fetch("SELECT total_unique_patterns FROM totals")[0][0]

    def iter_patterns(self) -> Iterator[PatternRecord]:
        # Keyset pages rather than one long cursor: a reader never pins an old WAL snapshot.
        query = f"SELECT {RECORD_COLUMNS} FROM patterns WHERE name > ? ORDER BY name LIMIT {ITER_PAGE}"
        rows = self._fetch(f"SELECT {RECORD_COLUMNS} FROM patterns ORDER BY name LIMIT {ITER_PAGE}")
        while rows:
            yield from map(record_of, rows)
            rows = self._fetch(query, (rows[-1][0],))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
