"""Aggregate reads of the SQLite store (``base.KnowledgeBase``'s analysis half), in SQL.

Each is a statement over the ``patterns`` table that SQLite answers in one scan with bounded
memory: one ``GROUP BY frequency, length`` gives both histograms (a few thousand groups; kept
until the store changes, so ``get_stats`` after ``frequency_histogram`` costs nothing),
``ORDER BY ... LIMIT`` the most frequent patterns (SQLite keeps only the best ``LIMIT`` rows as
it scans), and ranges of ids (the rowid: range reads, no read transaction held between them)
stream (name, frequency) for the weighted sample. The table has no index on frequency or length
on purpose: training never pays for one (see :mod:`katoray.store.sqlite`).

A scan reads each page once, so it runs with a small page cache (``SCAN_CACHE_KIB``) instead of
the 128 MiB that bulk loads keep hot: without that, analysing (or exporting, ``iter_patterns``)
a 1M-pattern file grows the process by the whole cache.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from katoray.store.base import PatternRecord, check_limit
from katoray.store.sampling import sample_records
from katoray.store.sqlite_rows import RECORD_COLUMNS, record_of
from katoray.store.sqlite_view import MARKS_SQL

FREQUENCY_PAGE = 50_000    # ids per read of iter_frequencies (~5 MB of rows)
SCAN_CACHE_KIB = 8192      # page cache while an aggregate scans (the connection's own: 128 MiB)
_MOST_FREQUENT = f"SELECT {RECORD_COLUMNS} FROM patterns WHERE frequency >= ? AND frequency <= ? " \
                 "ORDER BY frequency DESC, name"
_HISTOGRAMS = "SELECT frequency, length, count(*) FROM patterns GROUP BY frequency, length"


class SqliteAggregates:
    """Mixed into ``SqliteStore``: needs its ``_conn``, ``_lock``, ``_fetch``, ``get_patterns`` and ``path``."""

    path: Path
    _conn: sqlite3.Connection
    _lock: threading.Lock
    _histograms_at: tuple | None = None      # (marks, frequency histogram, length histogram)

    def frequency_histogram(self) -> dict[int, int]:
        return self._histograms()[0]

    def length_histogram(self) -> dict[int, int]:
        return self._histograms()[1]

    def _histograms(self) -> tuple[dict[int, int], dict[int, int]]:
        """Both histograms from one scan, read again only once the store has changed."""
        with self._lock:
            self._conn.execute("BEGIN")   # the marks and the scan from one snapshot
            try:
                marks = self._conn.execute(MARKS_SQL).fetchone()
                if self._histograms_at is None or self._histograms_at[0] != marks:
                    frequencies: dict[int, int] = {}
                    lengths: dict[int, int] = {}
                    for frequency, length, count in self._scan(_HISTOGRAMS):
                        frequencies[frequency] = frequencies.get(frequency, 0) + count
                        lengths[length] = lengths.get(length, 0) + count
                    self._histograms_at = (marks, dict(sorted(frequencies.items())), dict(sorted(lengths.items())))
            finally:
                self._conn.execute("COMMIT")
            return dict(self._histograms_at[1]), dict(self._histograms_at[2])

    def _scan(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a statement that reads many pages once, through a small page cache (the caller
        holds the lock)."""
        cache, = self._conn.execute("PRAGMA cache_size").fetchone()
        self._conn.execute(f"PRAGMA cache_size = -{SCAN_CACHE_KIB}")
        try:
            return self._conn.execute(sql, params).fetchall()
        finally:
            self._conn.execute(f"PRAGMA cache_size = {int(cache)}")

    def most_frequent(self, limit: int | None = None, min_frequency: int = 1,
                      max_frequency: int | None = None) -> list[PatternRecord]:
        check_limit(limit)
        sql = _MOST_FREQUENT + ("" if limit is None else f" LIMIT {limit}")
        upper = max_frequency if max_frequency is not None else 2 ** 63 - 1
        with self._lock:
            rows = self._scan(sql, (min_frequency, upper))
        return list(map(record_of, rows))

    def iter_frequencies(self) -> Iterator[tuple[str, int]]:
        last, = self._fetch("SELECT coalesce(max(id), 0) FROM patterns")[0]   # later patterns are left out
        for start in range(0, last, FREQUENCY_PAGE):
            yield from self._fetch_scanning("SELECT name, frequency FROM patterns WHERE id > ? AND id <= ?",
                                            (start, start + FREQUENCY_PAGE))

    def _fetch_scanning(self, sql: str, params: tuple = ()) -> list[tuple]:
        """``_fetch`` for one page of a scan (``iter_patterns`` too): the small page cache."""
        with self._lock:
            return self._scan(sql, params)

    def sample_by_frequency(self, num_samples: int, seed: int = 0) -> list[PatternRecord]:
        return sample_records(self, num_samples, seed)

    def size_on_disk(self) -> int | None:
        """The file and its write-ahead log, in bytes."""
        return sum(os.path.getsize(p) for p in (str(self.path), f"{self.path}-wal") if os.path.exists(p))
