"""Deleting patterns from a SQLite knowledge base as if they were never learned: the SQL one
``SqliteStore.delete_patterns`` runs inside its transaction (moved here to keep ``sqlite`` small)."""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from itertools import chain
from pathlib import Path

from katoray.errors import StoreError
from katoray.store.sqlite_affinity import forget_affinity
from katoray.store.sqlite_file import IN_JSON, keyed_rows
from katoray.store.sqlite_rows import to_json


def delete_rows(conn: sqlite3.Connection, path: Path, doomed: list[tuple[int, str, int, int]]) -> list[str]:
    """All SQL of one deletion of ``doomed`` (id, pattern_data JSON, length, frequency): patterns,
    symbol statistics, totals. Returns the symbols it forgot (no pattern holds them any more)."""
    freq: Counter = Counter()   # symbol -> occurrences times frequency, to subtract
    pmf: Counter = Counter()    # symbol -> deleted patterns holding it
    symbols_total = 0
    for _, pattern_data, length, frequency in doomed:
        symbols = list(chain.from_iterable(json.loads(pattern_data)))
        for symbol in symbols:
            freq[symbol] += frequency
        pmf.update(set(symbols))
        symbols_total += length * frequency
    conn.execute(f"DELETE FROM patterns WHERE id {IN_JSON}", (to_json([row[0] for row in doomed]),))
    forgotten = _subtract_symbols(conn, path, freq, pmf)
    conn.execute(   # the generation bump voids other writers' caches (delete_patterns follows it)
        "UPDATE totals SET generation = generation + 1, "
        "total_unique_patterns = total_unique_patterns - ?1, "
        "total_pattern_frequencies = total_pattern_frequencies - ?1, "
        "total_symbols_in_patterns_frequencies = total_symbols_in_patterns_frequencies - ?2, "
        "num_symbols = num_symbols - ?3", (len(doomed), symbols_total, len(forgotten)))
    return forgotten


def _subtract_symbols(conn: sqlite3.Connection, path: Path, freq: Counter, pmf: Counter) -> list[str]:
    """Undo the deleted patterns' symbol statistics; forget symbols no pattern holds any more
    (with their affinity). Returns those forgotten."""
    changed = conn.executemany("UPDATE symbols SET frequency = frequency - ?, pmf = pmf - ? WHERE symbol = ?",
                               [(freq[s], n, s) for s, n in pmf.items()]).rowcount
    affected = list(pmf)
    broken = keyed_rows(conn, "SELECT symbol FROM symbols WHERE symbol {keys} AND "
                              "(pmf < 0 OR frequency < 0 OR (pmf = 0 AND frequency != 0))", affected)
    if changed != len(pmf) or broken:
        raise StoreError(f"{str(path)!r}: the symbol statistics disagree with the patterns being "
                         f"deleted (e.g. symbol {broken[0][0] if broken else '?'!r}); the file is damaged, "
                         "nothing was deleted. Rebuild this KB")
    forgotten = [row[0] for row in keyed_rows(conn, "DELETE FROM symbols WHERE pmf = 0 AND symbol {keys} "
                                                    "RETURNING symbol", affected)]
    forget_affinity(conn, forgotten)
    return forgotten
