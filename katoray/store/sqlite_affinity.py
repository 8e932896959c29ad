"""Symbol affinity in a SQLite knowledge base (``base``: KATO's per-symbol emotive sums).

Table ``affinity (symbol, emotive, value)``, made by the first learn with emotives (a file that
never saw one has none, and older katoray files need no upgrade). Each function runs inside the
caller's transaction or connection hold.
"""
from __future__ import annotations

import sqlite3
from typing import Iterable

from katoray.store.base import affinity_increments
from katoray.store.sqlite_file import keyed_rows
from katoray.store.sqlite_rows import Batch

AFFINITY_TABLE = ("CREATE TABLE IF NOT EXISTS affinity (symbol TEXT NOT NULL, emotive TEXT NOT NULL, "
                  "value REAL NOT NULL, PRIMARY KEY (symbol, emotive)) WITHOUT ROWID")
_ADD = "INSERT INTO affinity VALUES (?, ?, ?) ON CONFLICT (symbol, emotive) DO UPDATE SET value = value + excluded.value"
_ROWS = "SELECT symbol, emotive, value FROM affinity"


def has_affinity(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'affinity'").fetchone() is not None


def add_affinity(conn: sqlite3.Connection, batch: Batch) -> None:
    """Add the batch's learns with emotives (patterns in batch order, as every backend sums them)."""
    annotated = batch.annotated
    if not any(emotives for learns in annotated.values() for emotives, _ in learns):
        return   # training's batches: metadata at most (the scan below would visit every pattern)
    learns = [(batch.pattern_events(i), emotives) for i, name in enumerate(batch.names)
              for emotives, _ in annotated.get(name, ()) if emotives]
    if not learns:
        return
    conn.execute(AFFINITY_TABLE)
    conn.executemany(_ADD, [(symbol, key, value) for symbol, sums in affinity_increments(learns).items()
                            for key, value in sums.items()])


def read_affinity(conn: sqlite3.Connection, symbols: Iterable[str] | None) -> dict[str, dict[str, float]]:
    if not has_affinity(conn):
        return {}
    rows = (conn.execute(_ROWS + " ORDER BY symbol, emotive").fetchall() if symbols is None
            else keyed_rows(conn, _ROWS + " WHERE symbol {keys}", list(symbols)))
    out: dict[str, dict[str, float]] = {}
    for symbol, key, value in rows:
        out.setdefault(symbol, {})[key] = value
    return out


def forget_affinity(conn: sqlite3.Connection, symbols: list[str]) -> None:
    """Symbols no pattern holds any more are forgotten with their affinity."""
    if symbols and has_affinity(conn):
        keyed_rows(conn, "DELETE FROM affinity WHERE symbol {keys}", symbols)


def drop_affinity(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS affinity")
