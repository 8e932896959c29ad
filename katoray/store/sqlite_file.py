"""The SQLite file of a knowledge base: which file a URL names, its schema, and opening it.

URL rule (SQLAlchemy's): everything after ``sqlite:///`` is the path, so ``f"sqlite:///{path}"``
always means ``path``: ``sqlite:////abs/dir`` is absolute, ``sqlite:///rel/dir`` is relative to
the current directory. A path ending in ``.sqlite`` or ``.db`` is the KB file itself; any other
path is a directory (created if missing) holding ``<kb_id>.sqlite``, one file per node. A file
remembers the ``kb_id`` it was created for and refuses another, so two nodes never mix.

A file is opened in WAL mode (other processes read while one writes), with the pragmas below,
and created with the schema of :data:`SCHEMA_VERSION` (the layout, and why it has this shape, is
in :mod:`katoray.store.sqlite`). A file of schema 3 (earlier katoray) is upgraded in place when
opened; a file of another schema version or another ``kb_id`` is refused with a message saying
what to do.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from katoray.errors import ConfigError, StoreError
from katoray.store.sqlite_rows import to_json

SCHEME = "sqlite:///"
FILE_SUFFIXES = (".sqlite", ".db")
SCHEMA_VERSION = 4
BUSY_TIMEOUT_S = 60.0          # a second writer waits this long for the write lock, then fails

if sqlite3.sqlite_version_info < (3, 38, 0):
    raise ImportError(f"katoray's SQLite store needs SQLite >= 3.38 (JSON built in); this Python has "
                      f"{sqlite3.sqlite_version}. Use Python 3.11 from python.org or a recent distribution")

_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",   # with WAL: a crash loses at most the last commits, never corrupts
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-131072",   # KiB: 128 MiB keeps the index pages hot during bulk loads
    # Pages (128 MiB at 16 KiB): a checkpoint copies each page once however many commits rewrote
    # it since the last; at SQLite's default (1000) bulk loads checkpoint after nearly every
    # commit, rewriting the same index pages each time (measured: ~5% of node0's apply CPU).
    "PRAGMA wal_autocheckpoint=8192",
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
CREATE TABLE IF NOT EXISTS patterns (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, pattern_data TEXT NOT NULL,
    length INTEGER NOT NULL, frequency INTEGER NOT NULL, emotives TEXT, metadata TEXT);
CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT PRIMARY KEY, frequency INTEGER NOT NULL, pmf INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL,
    total_unique_patterns INTEGER NOT NULL, total_pattern_frequencies INTEGER NOT NULL,
    total_symbols_in_patterns_frequencies INTEGER NOT NULL, num_symbols INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0, 0, 0, 0);
CREATE TABLE IF NOT EXISTS applied_batches (batch_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""

# Schema 3 kept symbol -> pattern posting lists in the file (katoray.store.sqlite says why they
# went); nothing else differs, so the upgrade drops them.
_UPGRADE_FROM_3 = ("DROP TABLE symbol_patterns", "ALTER TABLE symbols DROP COLUMN starting_ids",
                   "ALTER TABLE symbols DROP COLUMN pattern_ids",
                   "UPDATE meta SET value = '4' WHERE key = 'schema_version'")


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


def connect(path: Path, kb_id: str, busy_timeout_s: float) -> sqlite3.Connection:
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
        if meta.get("schema_version") == "3":
            _upgrade_from_3(conn, path)
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


def _upgrade_from_3(conn: sqlite3.Connection, path: Path) -> None:
    """Bring a schema-3 file to schema 4 in one transaction (another process may have done it
    while this one waited for the lock: then nothing is left to do)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreError(f"{str(path)!r} holds a knowledge base of an earlier katoray (schema 3) that is upgraded "
                         f"in place when opened, but another process holds its write lock ({exc}); open it again "
                         "once that process is done") from exc
    try:
        if _read_meta(conn)["schema_version"] == "3":
            for statement in _UPGRADE_FROM_3:
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# Statements over a list of keys say ``{keys}`` where ``IN (...)`` goes (``keyed_rows``): one bound
# JSON array instead of N parameters, except for keys holding NUL, which json_each cuts short.
IN_JSON = "IN (SELECT value FROM json_each(?))"
KEYS_PER_STATEMENT = 500


def keyed_rows(conn: sqlite3.Connection, sql: str, keys: list) -> list[tuple]:
    """Rows of ``sql`` with ``{keys}`` standing for ``IN`` the ``keys``."""
    text = to_json(keys)
    if "\\u0000" not in text:   # (a key holding the six characters \u0000 also takes the long way)
        return conn.execute(sql.format(keys=IN_JSON), (text,)).fetchall()
    rows: list[tuple] = []
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        part = keys[start:start + KEYS_PER_STATEMENT]
        rows += conn.execute(sql.format(keys=f"IN ({', '.join('?' * len(part))})"), part).fetchall()
    return rows


def claim_owner(conn: sqlite3.Connection, owner: str) -> str:
    """Record ``owner`` in the file's ``meta`` table unless an owner is there; the owner recorded
    (call inside a write transaction)."""
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('owner', ?)", (owner,))
    return conn.execute("SELECT value FROM meta WHERE key = 'owner'").fetchone()[0]
