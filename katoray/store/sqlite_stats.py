"""Aggregate reads of the SQLite store (``base.KnowledgeBase``'s analysis half), in SQL.

Each is one statement over the ``patterns`` table that SQLite answers in a single scan with
bounded memory: ``GROUP BY`` for the histograms (a few thousand groups), ``ORDER BY ... LIMIT``
for the most frequent patterns (SQLite keeps only the best ``LIMIT`` rows while it scans), and a
paged read of (name, frequency) for the weighted sample. The table has no index on frequency or
length on purpose: training never pays for one (see :mod:`katoray.store.sqlite`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

from katoray.store.base import PatternRecord, check_limit, sample_records
from katoray.store.sqlite_rows import RECORD_COLUMNS, record_of

FREQUENCY_PAGE = 50_000   # (name, frequency) rows per read of iter_frequencies (~5 MB)
_MOST_FREQUENT = f"SELECT {RECORD_COLUMNS} FROM patterns WHERE frequency >= ? AND frequency <= ? " \
                 "ORDER BY frequency DESC, name"


class SqliteAggregates:
    """Mixed into ``SqliteStore``: needs its ``_fetch(sql, params)``, ``get_patterns`` and ``path``."""

    path: Path
    _fetch: Callable[..., list[tuple]]

    def frequency_histogram(self) -> dict[int, int]:
        return dict(self._fetch("SELECT frequency, count(*) FROM patterns GROUP BY frequency ORDER BY frequency"))

    def length_histogram(self) -> dict[int, int]:
        return dict(self._fetch("SELECT length, count(*) FROM patterns GROUP BY length ORDER BY length"))

    def most_frequent(self, limit: int | None = None, min_frequency: int = 1,
                      max_frequency: int | None = None) -> list[PatternRecord]:
        check_limit(limit)
        sql = _MOST_FREQUENT + ("" if limit is None else f" LIMIT {limit}")
        upper = max_frequency if max_frequency is not None else 2 ** 63 - 1
        return list(map(record_of, self._fetch(sql, (min_frequency, upper))))

    def iter_frequencies(self) -> Iterator[tuple[str, int]]:
        # Pages by id (the rowid: a range read), so no read transaction stays open between pages.
        last = 0
        while rows := self._fetch("SELECT id, name, frequency FROM patterns WHERE id > ? ORDER BY id "
                                  f"LIMIT {FREQUENCY_PAGE}", (last,)):
            last = rows[-1][0]
            yield from (row[1:] for row in rows)

    def sample_by_frequency(self, num_samples: int, seed: int = 0) -> list[PatternRecord]:
        return sample_records(self, num_samples, seed)

    def size_on_disk(self) -> int | None:
        """The file and its write-ahead log, in bytes."""
        return sum(os.path.getsize(p) for p in _files(self.path) if os.path.exists(p))


def _files(path: Path) -> Sequence[str]:
    return [str(path), f"{path}-wal"]
