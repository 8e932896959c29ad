"""Predictions and pattern searches over a SQLite knowledge base: an ``IdView`` of its patterns
table (the file holds no symbol index of its own).

The view is built the first time a prediction or a search asks (one pass over every pattern's
name and events) and then kept in step: a refresh reads only the patterns learned since (a new
pattern's id is larger than every stored id), and a deletion or a clear, which the file counts
in ``meta.removals``, makes the next refresh start over. While nothing changed a refresh is one
``SELECT``. Frequencies and symbol statistics are not in the view: predictions read them from
the tables.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from katoray.store.columns import IdView
    from katoray.store.locking import ReadWriteLock

READ_PAGE = 20_000   # patterns per read while building (bounds the rows held at once)

# Every deletion and clear counts itself here (inside its own transaction); with totals.generation
# (every write) it marks a version of the file: equal marks, same patterns (MARKS_SQL).
_COUNT_REMOVAL = ("INSERT INTO meta VALUES ('removals', '1') ON CONFLICT(key) DO UPDATE SET "
                  "value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)")
MARKS_SQL = "SELECT generation, (SELECT value FROM meta WHERE key = 'removals') FROM totals"
_PATTERNS_AFTER = "SELECT id, name, pattern_data FROM patterns WHERE id > ? ORDER BY id"


def count_removal(conn: sqlite3.Connection) -> None:
    """Record, in the caller's transaction, that patterns left the store (views start over)."""
    conn.execute(_COUNT_REMOVAL)


class PatternView:
    """An ``IdView`` of one SQLite file's patterns and the marks it was read at."""

    def __init__(self) -> None:
        self.view: IdView | None = None
        self._marks: tuple | None = None    # (totals.generation, meta.removals) of ``view``; None with it
        self._last_id = 0                   # largest pattern id in the view

    def refresh(self, conn: sqlite3.Connection) -> IdView:
        """The view, brought up to date in one read transaction (the caller holds the connection;
        inside the store's ``reading()`` the view is read from that block's transaction)."""
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")   # deferred: a consistent snapshot of the marks and the rows
        try:
            marks = conn.execute(MARKS_SQL).fetchone()
            if marks != self._marks:
                self._catch_up(conn, marks)
        except BaseException:
            self.view = self._marks = None   # a half-read view is never used: start over next time
            raise
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
        return self.view

    def _catch_up(self, conn: sqlite3.Connection, marks: tuple) -> None:
        # Imported here: the columns need numpy, which a training node never otherwise loads.
        from katoray.store.columns import IdView, NewPatterns

        if self._marks is None or marks[1] != self._marks[1]:   # never read, or patterns left
            self.view, self._last_id = IdView(), 0
        cursor = conn.execute(_PATTERNS_AFTER, (self._last_id,))
        while rows := cursor.fetchmany(READ_PAGE):
            ids, names, data = zip(*rows)
            self.view.add(NewPatterns.of_events(list(names), json.loads("[" + ",".join(data) + "]")))
            self._last_id = ids[-1]
        self._marks = marks


class SnapshotReads:
    """``SqliteStore.reading()``: every read inside the block sees one state. The read side of
    the store's readers-writer lock keeps this process's writes out; the readers share one read
    transaction on the connection (one WAL snapshot), opened by the first and committed by the
    last, so other processes' writes stay out too."""

    def __init__(self, guard: "ReadWriteLock", conn_lock: threading.Lock, conn: sqlite3.Connection) -> None:
        self._guard, self._conn_lock, self._conn = guard, conn_lock, conn
        self._readers = 0   # blocks open now (nested ones included)

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._guard.reading():
            with self._conn_lock:
                self._readers += 1
                if self._readers == 1 and not self._conn.in_transaction:
                    self._conn.execute("BEGIN")   # deferred: the snapshot is taken by the first read
            try:
                yield
            finally:
                with self._conn_lock:
                    self._readers -= 1
                    if not self._readers and self._conn.in_transaction:
                        self._conn.execute("COMMIT")
