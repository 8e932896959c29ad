"""SQLite-only behaviour: URL rules, WAL, persistence across reopen, rollback, errors, query plans,
the posting-list index layout."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from katoray.engine.naming import pattern_hash
from katoray.errors import ConfigError, StoreError
from katoray.store import open_store
from katoray.store.base import DeltaColumns, PatternDelta
from katoray.store.memory import MemoryStore
from katoray.store.sqlite import NAMES_OF_IDS_SQL, STARTING_WITH_SQL, WITH_ANY_SQL, SqliteStore, sqlite_path

REPO = Path(__file__).resolve().parents[2]


def delta(*events: list[str], count: int = 1, emotives=None, metadata=None) -> PatternDelta:
    events_list = [list(event) for event in events]
    return PatternDelta(pattern_hash(events_list), events_list, count, emotives or [], metadata or {})


BATCH_1 = [delta(["a"], ["b"], ["c"], emotives=[{"joy": 1.0}], metadata={"book": ["t1"]}),
           delta(["b"], ["a"], count=2), delta(["Ġthe"], ["é", "😀"])]
BATCH_2 = [delta(["a"], ["b"], ["c"], metadata={"book": ["t0"]}), delta(["c"], ["d"]), delta(["d"], ["a"])]


def state(kb) -> tuple:
    symbols = ["a", "b", "c", "d", "Ġthe", "é", "😀", "x"]
    return ([r.to_dict() for r in kb.iter_patterns()], kb.totals(), kb.symbol_pmf(symbols),
            kb.symbol_frequencies(symbols), {s: sorted(kb.patterns_with_any([s])) for s in symbols},
            {s: kb.patterns_starting_with(s) for s in symbols})


def reference(*batches) -> MemoryStore:
    ref = MemoryStore()
    for i, batch in enumerate(batches):
        ref.apply(batch, f"b{i}")
    return ref


@pytest.fixture
def store(tmp_path):
    kb = SqliteStore.from_url(f"sqlite:///{tmp_path}/kb", "node0_kato")
    yield kb
    kb.close()


# -- URL rules -----------------------------------------------------------------------------------
@contextmanager
def sabotaged(store, event: str):
    """A trigger (from another connection) that aborts ``event`` statements: a failure inside SQL."""
    saboteur = sqlite3.connect(store.path)
    saboteur.execute(f"CREATE TRIGGER sabotage BEFORE {event} BEGIN SELECT RAISE(ABORT, 'injected'); END")
    saboteur.commit()
    try:
        yield
    finally:
        saboteur.execute("DROP TRIGGER sabotage")
        saboteur.commit()
        saboteur.close()


@pytest.mark.parametrize("url, expected", [
    ("sqlite:////data/kbs", "/data/kbs/node0_kato.sqlite"),          # four slashes: absolute
    ("sqlite:///kbs", "kbs/node0_kato.sqlite"),                      # three: relative to cwd
    ("sqlite:///runs/r1/kb.sqlite", "runs/r1/kb.sqlite"),            # .sqlite: the file itself
    ("sqlite:////data/one.db", "/data/one.db"),
    ("sqlite:////data/ONE.DB", "/data/ONE.DB"),
    ("sqlite:////data/kb.sqlite3", "/data/kb.sqlite3/node0_kato.sqlite"),   # other suffix: directory
])
def test_url_rules(url, expected):
    assert sqlite_path(url, "node0_kato") == Path(expected)


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://host/kb", "sqlite:/kb", "sqlite:kb",
                                 "sqlite:///kb.db?mode=ro"])
def test_bad_urls(url):
    with pytest.raises(ConfigError, match="sqlite:///"):
        SqliteStore.from_url(url, "node0_kato")


def test_relative_url_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kb = open_store("sqlite:///nested/kbs", "node0_kato")
    try:
        assert isinstance(kb, SqliteStore)
        kb.apply(BATCH_1, "b0")
    finally:
        kb.close()
    assert (tmp_path / "nested" / "kbs" / "node0_kato.sqlite").is_file()


def test_directory_holds_one_file_per_kb(tmp_path):
    for kb_id in ("node0_kato", "node1_kato"):
        SqliteStore.from_url(f"sqlite:///{tmp_path}/a/b", kb_id).close()
    files = sorted(p.name for p in (tmp_path / "a" / "b").glob("*.sqlite"))
    assert files == ["node0_kato.sqlite", "node1_kato.sqlite"]


def test_file_refuses_another_kb(tmp_path):
    SqliteStore.from_url(f"sqlite:///{tmp_path}/kb.db", "node0_kato").close()
    with pytest.raises(StoreError, match="holds knowledge base 'node0_kato', not 'node1_kato'"):
        SqliteStore.from_url(f"sqlite:///{tmp_path}/kb.db", "node1_kato")


# -- durability ----------------------------------------------------------------------------------
def test_wal_mode_and_normal_sync(store):
    store.apply(BATCH_1, "b0")
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1   # NORMAL
    assert Path(f"{store.path}-wal").exists()


def test_reopen_keeps_everything(tmp_path):
    url = f"sqlite:///{tmp_path}/kb"
    kb = SqliteStore.from_url(url, "node0_kato")
    kb.apply(BATCH_1, "b0")
    kb.close()
    kb = SqliteStore.from_url(url, "node0_kato")   # cold symbol cache: ids come from the file
    try:
        assert state(kb) == state(reference(BATCH_1))
        assert kb.is_applied("b0") and not kb.apply(BATCH_1, "b0")
        kb.apply(BATCH_2, "b1")
        assert state(kb) == state(reference(BATCH_1, BATCH_2))
    finally:
        kb.close()


def test_two_writers_on_one_file(store):
    other = SqliteStore(store.path, store.kb_id)   # e.g. a second session on the same node
    try:
        store.apply(BATCH_1, "b0")
        other.apply(BATCH_2, "b1")     # symbols "a".."c" were created by the other instance
        store.apply(BATCH_2, "b2")
        assert state(other) == state(store) == state(reference(BATCH_1, BATCH_2, BATCH_2))
        other.clear()                  # voids the ids the first instance has cached
        store.apply(BATCH_2, "b0")
        assert state(store) == state(other) == state(reference(BATCH_2))
    finally:
        other.close()


def test_starting_with_keeps_learn_order(store):
    ds = [delta([s], ["a"]) for s in ("b", "c")] + [delta(["a"], [s]) for s in "zyxw"]
    store.apply(ds[:3], "b0")
    store.apply(ds[3:], "b1")
    assert store.patterns_starting_with("a") == [d.name for d in ds[2:]]


def test_empty_events_match_memory(store):
    nothing = [delta(), delta([])]   # a batch without a single symbol
    odd = [delta([], ["a"]), delta(["a"], [], ["a", "b"]), delta()]
    store.apply(nothing, "b0")
    store.apply(odd, "b1")
    assert state(store) == state(reference(nothing, odd))


# -- failed applies leave the store unchanged ----------------------------------------------------
def test_unserialisable_delta_rolls_back(store):
    store.apply(BATCH_1, "b0")
    before = state(store)
    bad = BATCH_2[:2] + [PatternDelta("f" * 40, [["a"], [object()]])]
    with pytest.raises(TypeError):
        store.apply(bad, "b1")
    assert state(store) == before and not store.is_applied("b1")
    assert store.apply(BATCH_2, "b1")
    assert state(store) == state(reference(BATCH_1, BATCH_2))


# Real SQLite failures part-way through a batch: after the patterns and the symbol index are
# written, and at the last statement (totals), when everything else is.
@pytest.mark.parametrize("event", ["INSERT ON first_symbol", "UPDATE ON totals"])
def test_failure_inside_sql_rolls_back_the_whole_batch(store, event):
    store.apply(BATCH_1, "b0")
    before = state(store)
    with sabotaged(store, event), pytest.raises(StoreError, match="injected.*rolled back"):
        store.apply(BATCH_2, "b1")
    assert state(store) == before and not store.is_applied("b1")
    assert store.apply(BATCH_2, "b1")   # the symbols of the failed batch are created afresh
    assert state(store) == state(reference(BATCH_1, BATCH_2))


def test_write_lock_held_elsewhere(tmp_path):
    kb = SqliteStore(tmp_path / "kb.sqlite", "node0_kato", busy_timeout_s=0.2)
    holder = sqlite3.connect(kb.path, isolation_level=None)
    try:
        kb.apply(BATCH_1, "b0")
        before = state(kb)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="kb.sqlite.*locked.*unchanged"):
            kb.apply(BATCH_2, "b1")
        holder.execute("ROLLBACK")
        assert state(kb) == before and kb.apply(BATCH_2, "b1")
    finally:
        holder.close()
        kb.close()


# -- errors --------------------------------------------------------------------------------------
def test_uncreatable_directory(tmp_path):
    (tmp_path / "plain_file").write_text("not a directory")
    url = f"sqlite:///{tmp_path}/plain_file/kbs"
    with pytest.raises(StoreError, match=r"plain_file/kbs/node0_kato\.sqlite.*writable directory"):
        open_store(url, "node0_kato")


def test_file_that_is_not_sqlite(tmp_path):
    (tmp_path / "kb.sqlite").write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(StoreError, match=r"kb\.sqlite.*not a database"):
        SqliteStore.from_url(f"sqlite:///{tmp_path}/kb.sqlite", "node0_kato")


def test_directory_in_place_of_the_file(tmp_path):
    (tmp_path / "kb.sqlite").mkdir()
    with pytest.raises(StoreError, match=r"kb\.sqlite"):
        SqliteStore.from_url(f"sqlite:///{tmp_path}/kb.sqlite", "node0_kato")


# -- indexes are searches, never scans -----------------------------------------------------------
@pytest.mark.parametrize("sql, param", [(WITH_ANY_SQL, '["a"]'), (STARTING_WITH_SQL, "a"),
                                        (NAMES_OF_IDS_SQL, "[1, 2]")])
def test_index_reads_use_indexes(store, sql, param):
    store.apply(BATCH_1, "b0")
    plan = [row[3] for row in store._conn.execute("EXPLAIN QUERY PLAN " + sql, (param,))]
    table_scans = [step for step in plan if step.startswith("SCAN") and "json_each" not in step]
    assert plan and not table_scans, plan


# -- a second process reads while this one writes ------------------------------------------------
def test_reader_process_during_open_write_transaction(store):
    store.apply(BATCH_1, "b0")
    expected = [str(store.count()), str(store.get_pattern(BATCH_1[1].name).frequency),
                ",".join(sorted(store.patterns_with_any(["a"])))]
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")   # hold the write lock with uncommitted changes
    writer.execute("UPDATE patterns SET frequency = frequency + 100")
    reader = textwrap.dedent(f"""
        from katoray.store.sqlite import SqliteStore
        kb = SqliteStore({str(store.path)!r}, "node0_kato")
        print(kb.count(), kb.get_pattern({BATCH_1[1].name!r}).frequency,
              ",".join(sorted(kb.patterns_with_any(["a"]))))
        kb.close()
    """)
    try:
        done = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                              timeout=60, cwd=REPO)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected   # the committed state, without waiting for the writer


# -- posting lists: one index row per symbol per apply -------------------------------------------
def test_index_rows_are_posting_lists_per_apply(store):
    first = [delta(["a"], [s], ["a"]) for s in "bcd"]    # "a" twice in each: indexed once
    second = [delta(["b"], ["a"], [s]) for s in "xyz"] + [first[0]]
    store.apply(first, "b0")
    store.apply(second, "b1")
    rows = store._conn.execute("SELECT symbol, first_id, length(pattern_ids) FROM symbol_patterns "
                               "WHERE symbol IN ('a', 'b') ORDER BY symbol, first_id").fetchall()
    assert rows == [("a", 1, 3 * 4), ("a", 4, 3 * 4), ("b", 1, 4), ("b", 4, 3 * 4)]   # uint32 ids
    assert store.patterns_starting_with("a") == [d.name for d in first]   # re-learn adds no row
    assert state(store) == state(reference(first, second))


def test_apply_columns_in_one_transaction(store):
    columns = DeltaColumns([d.name for d in BATCH_2], [[e[0] for e in d.events] for d in BATCH_2],
                           [1, 1, 1], {0: {"book": ["t0"]}})
    store.apply(BATCH_1, "b0")
    before = state(store)
    with sabotaged(store, "UPDATE ON totals"), pytest.raises(StoreError, match="injected"):
        store.apply_columns(columns, "b1")
    assert state(store) == before and not store.is_applied("b1")
    assert store.apply_columns(columns, "b1") and not store.apply_columns(columns, "b1")
    assert state(store) == state(reference(BATCH_1, BATCH_2))


def test_files_of_another_schema_version_are_refused(tmp_path):
    SqliteStore(tmp_path / "kb.sqlite", "node0_kato").close()
    old = sqlite3.connect(tmp_path / "kb.sqlite")
    old.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    old.commit()
    old.close()
    with pytest.raises(StoreError, match="schema version 1; this katoray reads version 2. Use a new store URL"):
        SqliteStore(tmp_path / "kb.sqlite", "node0_kato")
