"""Embedded knowledge base: one SQLite file per KB, no server (the default backend).

Layout (schema 4): ``patterns`` (integer id in learn order, unique bare-sha1 ``name``, ``pattern_data``,
``emotives`` and ``metadata`` as JSON text), ``symbols`` (symbol text -> frequency and pmf), one ``totals`` row
and ``applied_batches``. Merge rules are those of :mod:`katoray.store.base`; every answer equals
:class:`MemoryStore`'s.

The file holds no symbol -> patterns index. What needs one (predictions, ``patterns_with_any``,
``patterns_starting_with``) reads an in-memory view of the patterns table instead: built on the first such
question from one pass over the patterns and kept in step (:mod:`katoray.store.sqlite_view`). Why (measured with
``python scripts/benchmark.py sqlite``: the KJV as training sends it, GPT-2 tokens, 4 levels of chunk 8): an
index in the file costs every apply a posting-list write per symbol, while training never reads it. Without it
node1 went from ~30 to ~19-20 µs of CPU per pattern and node0 from ~5.6 to ~4.2-4.4. (Schema 3 kept posting
lists in the symbol rows; a schema-3 file is upgraded when opened, see :mod:`katoray.store.sqlite_file`.)

Whether a symbol is new needs no read per apply: a store reads the set of every stored symbol when it first
writes, and its own applies, deletions and clears keep the set in step. Another process's write
(``totals.generation`` counts writes) voids it; so does passing ``SYMBOL_CACHE_MAX`` symbols. From then on each
apply asks the file which of its symbols are stored: one indexed read per apply, where re-reading the whole set
after every foreign write would cost a table scan.

Lists of keys are bound as one JSON array (``json_each``), except keys holding NUL, which ``json_each`` cuts
short: those go as parameters (``keyed_rows``). Symbols must be ``str``, as KATO's are; the table keys them as
text.

Deletion (``delete_patterns``) reads the deleted patterns' events, subtracts their symbol statistics and forgets
symbols no pattern holds any more. Ids of deleted patterns may be given again to later patterns (a new id is the
largest stored id + 1, so ids always follow learn order).

Each ``apply`` and each ``delete_patterns`` is one ``BEGIN IMMEDIATE`` transaction holding the deltas, the
statistics and the batch-id record, so a crash never leaves half a batch. The file is in WAL mode: other
processes may read it (analysis) while a writer trains; writers are serialised by SQLite's write lock.

This module is the SQL each operation runs; the file (URL rules, schema, pragmas, opening a connection that
holds the right KB) is :mod:`katoray.store.sqlite_file`. What an apply writes (a batch's merged patterns, their
JSON text, symbol statistics increments) is computed without a connection in :mod:`katoray.store.sqlite_rows`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import AbstractContextManager, contextmanager
from itertools import chain, compress, filterfalse
from operator import not_
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, TypeVar

from katoray.errors import StoreError
from katoray.store.base import (DeltaColumns, KBTotals, PatternDelta, PatternRecord, PatternRows, SymbolIndex,
                                check_apply_args)
from katoray.store.locking import ReadWriteLock
from katoray.store.sqlite_affinity import add_affinity, drop_affinity, read_affinity
from katoray.store.sqlite_delete import delete_rows
from katoray.store.sqlite_file import BUSY_TIMEOUT_S, claim_owner, connect, keyed_rows, sqlite_path
from katoray.store.sqlite_rows import (PATTERNS_NAMED_SQL, RECORD_COLUMNS, ROWS_AFTER_SQL, STORED_SYMBOLS_SQL,
                                       SYMBOL_STATISTICS_SQL, Batch, check_symbols_are_text, is_plain,
                                       merged_annotations, pattern_upsert, record_of, symbol_increments)
from katoray.store.sqlite_stats import SqliteAggregates
from katoray.store.sqlite_view import PatternView, SnapshotReads, count_removal
from katoray.util import paused_gc

if TYPE_CHECKING:
    from katoray.store.columns import IdView

ITER_PAGE = 1000               # patterns per read in iter_patterns (keeps WAL snapshots short)
SYMBOL_CACHE_MAX = 1_000_000   # stored symbols a store keeps in its set (~100 bytes each); past it, reads

_INSERT_SYMBOL = "INSERT INTO symbols VALUES (?, ?, ?)"
_UPDATE_SYMBOL = "UPDATE symbols SET frequency = frequency + ?, pmf = pmf + ? WHERE symbol = ?"
# A re-learned pattern's symbols: occurring once more, in no new pattern (one parameter to bind
# instead of three: measured ~15% less per row)
_COUNT_SYMBOL_ONCE = "UPDATE symbols SET frequency = frequency + 1 WHERE symbol = ?"

T = TypeVar("T")


class SqliteStore(SqliteAggregates):
    """A knowledge base in one SQLite file; other processes may read it while it trains."""

    def __init__(self, path: str | os.PathLike, kb_id: str = "kb", *,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.kb_id = kb_id
        self.path = Path(path)
        self._lock = threading.Lock()           # the one connection: one statement or transaction at a time
        self._guard = ReadWriteLock()           # this process's writes alone; predictions' reads share it
        # Stored symbols, as of totals.generation ``_generation``: every one when ``_complete``
        # (read whole when the store first writes), else those this process created since.
        self._stored: set[str] = set()
        self._complete = False
        self._generation = -1                   # the totals.generation that set belongs to
        self._conn = connect(self.path, kb_id, busy_timeout_s)
        self._snapshot = SnapshotReads(self._guard, self._lock, self._conn)
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
        with self._guard.writing(), self._lock, paused_gc():
            with self._transaction():
                if batch_id is not None and not self._record_batch(batch_id):
                    return False
                created = self._write(batch, persistence, metadata_cap)
            self._stored.update(created)   # only once committed
            self._generation += 1          # this apply's own bump (_write)
            return True

    def _record_batch(self, batch_id: str) -> bool:
        return self._conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 1

    def _write(self, batch: Batch, persistence: int, metadata_cap: int | None) -> list[str]:
        """All SQL of one batch; returns the symbols it created."""
        conn = self._conn
        self._check_generation()
        annotations = self._merged_annotations(batch, persistence, metadata_cap)
        lengths = batch.lengths()
        last_id = conn.execute("SELECT coalesce(max(id), 0) FROM patterns").fetchone()[0]
        # Joined JSON is checked once the batch's distinct symbols are known (below), not per occurrence.
        data = batch.joined_data()
        joined = data is not None
        if not joined:
            check_symbols_are_text(batch)
        sql, rows = pattern_upsert(batch, data if joined else list(map(batch.encoded_data, range(len(lengths)))),
                                   lengths, annotations)
        conn.executemany(sql, rows)
        new = self._new_positions(batch, last_id)
        freq, pmf = symbol_increments(batch, new)
        if joined and not is_plain([freq]):
            self._encode_escaped(batch, new, last_id + 1)
        created = self._write_symbols(freq, pmf)
        add_affinity(self._conn, batch)
        symbols_total = sum(map(int.__mul__, lengths, batch.counts))
        conn.execute(   # every write bumps the generation: other writers' caches are then void
            "UPDATE totals SET generation = generation + 1, total_unique_patterns = total_unique_patterns + ?1, "
            "total_pattern_frequencies = total_pattern_frequencies + ?1, "
            "total_symbols_in_patterns_frequencies = total_symbols_in_patterns_frequencies + ?2, "
            "num_symbols = num_symbols + ?3", (len(new), symbols_total, len(created)))
        return created

    def _encode_escaped(self, batch: Batch, new: Sequence[int], first_id: int) -> None:
        """Rewrite, by the encoder, the joined JSON of the new patterns holding a symbol that JSON
        escapes (a re-learned pattern keeps its stored text)."""
        escaped = [(batch.encoded_data(i), first_id + k) for k, i in enumerate(new) if not is_plain([batch.symbols[i]])]
        self._conn.executemany("UPDATE patterns SET pattern_data = ? WHERE id = ?", escaped)

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

    def _write_symbols(self, freq: dict[str, int], pmf: dict[str, int]) -> list[str]:
        """Add the increments to the symbols' statistics, creating those not stored yet (each
        held by a new pattern, so in ``pmf``). Returns the created symbols."""
        fresh = list(filterfalse(self._stored.__contains__, freq))
        if fresh and not self._complete:   # which of them are stored: ask the file
            stored = set(chain.from_iterable(keyed_rows(self._conn, STORED_SYMBOLS_SQL, fresh)))
            fresh = list(filterfalse(stored.__contains__, fresh))
        missing = list(filterfalse(pmf.__contains__, fresh))
        created = set(fresh)
        known = list(filterfalse(created.__contains__, freq))
        once = [freq[s] == 1 and s not in pmf for s in known]
        updates = [(freq[s], pmf.get(s, 0), s) for s in compress(known, map(not_, once))]
        counted = self._conn.executemany(_COUNT_SYMBOL_ONCE, zip(compress(known, once))).rowcount
        if missing or counted + self._conn.executemany(_UPDATE_SYMBOL, updates).rowcount != len(known):
            raise StoreError(f"{str(self.path)!r}: symbols of stored patterns are missing from the symbol table "
                             f"(e.g. {(missing or ['?'])[0]!r}); the file is damaged, nothing was written. "
                             "Rebuild this KB")
        self._conn.executemany(_INSERT_SYMBOL, [(s, freq[s], pmf[s]) for s in fresh])
        return fresh

    def _check_generation(self) -> None:
        """Keep the set of stored symbols while every write since it was read was this process's
        own (they keep it in step); read it whole when the store opens (or after a failed write);
        after another writer's write, drop it and ask the file per apply from then on."""
        generation, num_symbols = self._conn.execute("SELECT generation, num_symbols FROM totals").fetchone()
        if generation == self._generation:
            if len(self._stored) > SYMBOL_CACHE_MAX:
                self._stored, self._complete = set(), False
            return
        self._complete = self._generation == -1 and num_symbols <= SYMBOL_CACHE_MAX
        self._stored = set(chain.from_iterable(self._conn.execute("SELECT symbol FROM symbols"))) \
            if self._complete and num_symbols else set()
        self._generation = generation

    def _merged_annotations(self, batch: Batch, persistence: int,
                            metadata_cap: int | None) -> dict[str, tuple[str | None, str | None]]:
        """Final emotives/metadata JSON of each annotated pattern (``sqlite_rows.merged_annotations``)."""
        if not batch.annotated:
            return {}
        stored = keyed_rows(self._conn, "SELECT name, emotives, metadata FROM patterns WHERE name {keys}",
                            list(batch.annotated))
        return merged_annotations(batch, stored, persistence, metadata_cap)

    def is_applied(self, batch_id: str) -> bool:
        return bool(self._fetch("SELECT 1 FROM applied_batches WHERE batch_id = ?", (batch_id,)))

    def claim_owner(self, owner: str) -> str:
        with self._guard.writing(), self._lock, self._transaction():
            return claim_owner(self._conn, owner)

    def delete_patterns(self, names: Iterable[str]) -> int:
        """Remove these patterns as if never learned (see :meth:`KnowledgeBase.delete_patterns`),
        in one transaction; unknown names are ignored. Returns how many were deleted.

        Raises StoreError if SQLite fails or the symbol statistics disagree with the deleted
        patterns (a damaged file); either way the transaction is rolled back, the store unchanged.
        """
        wanted = [name for name in dict.fromkeys(names) if isinstance(name, str)]
        with self._guard.writing(), self._lock:
            with self._transaction():
                self._check_generation()
                doomed = sorted(keyed_rows(self._conn, "SELECT id, pattern_data, length, frequency FROM patterns "
                                                       "WHERE name {keys}", wanted))
                if doomed:
                    forgotten = delete_rows(self._conn, self.path, doomed)
                    count_removal(self._conn)
            if doomed:   # committed: this deletion's own generation bump, its forgotten symbols
                self._stored.difference_update(forgotten)
                self._generation += 1
        return len(doomed)

    def clear(self) -> None:
        with self._guard.writing(), self._lock:
            with self._transaction():
                for table in ("patterns", "symbols", "applied_batches"):
                    self._conn.execute(f"DELETE FROM {table}")
                drop_affinity(self._conn)
                self._conn.execute("DELETE FROM meta WHERE key = 'owner'")
                count_removal(self._conn)
                generation, = self._conn.execute(
                    "UPDATE totals SET generation = generation + 1, total_unique_patterns = 0, "
                    "total_pattern_frequencies = 0, total_symbols_in_patterns_frequencies = 0, num_symbols = 0 "
                    "RETURNING generation").fetchone()
            self._stored, self._complete, self._generation = set(), True, generation   # committed: nothing is stored

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
                self._generation = -1   # read the stored symbols again: never trust what a failed write saw
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"write to the SQLite knowledge base {str(self.path)!r} failed ({exc}); it was "
                             "rolled back and the store is unchanged") from exc

    # -- reads ------------------------------------------------------------------------------
    def reading(self) -> AbstractContextManager:
        """Every read inside the block sees one state (``sqlite_view.SnapshotReads``)."""
        return self._snapshot.reading()

    def _fetch(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:   # one connection: never read inside another thread's open transaction
            return self._conn.execute(sql, params).fetchall()

    def _fetch_keyed(self, sql: str, keys: list) -> list[tuple]:
        """``_fetch`` of a statement over a list of keys (``keyed_rows``)."""
        with self._lock:
            return keyed_rows(self._conn, sql, keys)

    def get_pattern(self, name: str) -> PatternRecord | None:
        rows = self._fetch(f"SELECT {RECORD_COLUMNS} FROM patterns WHERE name = ?", (name,))
        return record_of(rows[0]) if rows else None

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        rows = self._fetch_keyed(PATTERNS_NAMED_SQL, list(names))
        return {row[0]: record_of(row) for row in rows}

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        wanted = set(symbols)
        return self._ask_view(lambda view: view.holding_any(wanted))

    def patterns_starting_with(self, symbol: str) -> list[str]:
        return self._ask_view(lambda view: view.starting_with(symbol))   # in id order: learn order

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_column(2, symbols)

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_column(1, symbols)

    def _symbol_column(self, column: int, symbols: Iterable[str]) -> dict[str, int]:
        """Column ``column`` of SYMBOL_STATISTICS_SQL for the stored ones of ``symbols``, in their order."""
        symbols = list(symbols)
        found = {row[0]: row[column] for row in self._fetch_keyed(SYMBOL_STATISTICS_SQL, symbols)}
        return {s: found[s] for s in symbols if s in found}

    def stored_symbols(self) -> set[str]:
        return set(chain.from_iterable(self._fetch("SELECT symbol FROM symbols WHERE pmf > 0")))

    def symbol_index(self, symbols: Sequence[str]) -> SymbolIndex:
        """Patterns by integer id for ``symbols`` (``base.SymbolIndex``): predictions then search
        by id as over ``memory://``."""
        return self._ask_view(lambda view: view.symbol_index(symbols))

    def _ask_view(self, ask: Callable[["IdView"], T]) -> T:
        """``ask`` the in-memory view of the patterns, read from the file the first time and kept
        in step (:mod:`katoray.store.sqlite_view`)."""
        with self._view_lock:
            with self._lock:   # one connection: the view's read transaction must be alone on it
                view = self._view.refresh(self._conn)
            return ask(view)

    def symbol_affinity(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        with self._lock:
            return read_affinity(self._conn, symbols)

    def totals(self) -> KBTotals:
        row, = self._fetch("SELECT total_unique_patterns, total_pattern_frequencies, "
                           "total_symbols_in_patterns_frequencies, num_symbols FROM totals")
        return KBTotals(*row)

    def count(self) -> int:
        return self._fetch("SELECT total_unique_patterns FROM totals")[0][0]

    def iter_patterns(self) -> Iterator[PatternRecord]:
        # Keyset pages rather than one long cursor: a reader never pins an old WAL snapshot.
        query = f"SELECT {RECORD_COLUMNS} FROM patterns WHERE name > ? ORDER BY name LIMIT {ITER_PAGE}"
        rows = self._fetch_scanning(f"SELECT {RECORD_COLUMNS} FROM patterns ORDER BY name LIMIT {ITER_PAGE}")
        while rows:
            yield from map(record_of, rows)
            rows = self._fetch_scanning(query, (rows[-1][0],))

    def pattern_rows(self, page: int) -> Iterator[PatternRows]:
        """Every pattern in id order (``base.ScannableKnowledgeBase``): one read and one JSON parse
        per page, in keyset pages like ``iter_patterns``."""
        last = 0
        while rows := self._fetch(ROWS_AFTER_SQL, (last, page)):
            ids, names, data, frequencies = zip(*rows)
            yield PatternRows(list(names), json.loads("[" + ",".join(data) + "]"), list(frequencies))
            last = ids[-1]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
