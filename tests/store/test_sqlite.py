"""SQLite-only behaviour: URL rules, WAL, persistence across reopen, rollback, errors, query plans,
the cache of stored symbols, the upgrade from schema 3."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.engine.naming import pattern_hash
from katoray.errors import ConfigError, StoreError
from katoray.store import open_store
from katoray.store.base import DeltaColumns, PatternDelta
from katoray.store.memory import MemoryStore
from katoray.store.sqlite import SqliteStore, sqlite_path
from katoray.store.sqlite_file import IN_JSON
from katoray.store.sqlite_rows import PATTERNS_NAMED_SQL, STORED_SYMBOLS_SQL, SYMBOL_STATISTICS_SQL

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


# Real SQLite failures part-way through a batch: after the patterns are written, at the symbol
# rows (updated, then created), and at the last statement (totals).
@pytest.mark.parametrize("event", ["UPDATE ON symbols", "INSERT ON symbols", "UPDATE ON totals"])
def test_failure_inside_sql_rolls_back_the_whole_batch(store, event):
    store.apply(BATCH_1, "b0")
    before = state(store)
    with sabotaged(store, event), pytest.raises(StoreError, match="injected.*rolled back"):
        store.apply(BATCH_2, "b1")
    assert state(store) == before and not store.is_applied("b1")
    assert store.apply(BATCH_2, "b1")   # the symbols of the failed batch ("d") are created afresh
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


# -- reads by key are searches, never scans ------------------------------------------------------
@pytest.mark.parametrize("sql, keys", [(STORED_SYMBOLS_SQL, ["a"]), (SYMBOL_STATISTICS_SQL, ["a", "b"]),
                                       (PATTERNS_NAMED_SQL, [BATCH_1[0].name])])
@pytest.mark.parametrize("form", ["json", "placeholders"])   # the second: keys holding NUL
def test_index_reads_use_indexes(store, sql, keys, form):
    store.apply(BATCH_1, "b0")
    if form == "json":
        query, params = sql.format(keys=IN_JSON), (json.dumps(keys),)
    else:
        query, params = sql.format(keys=f"IN ({', '.join('?' * len(keys))})"), keys
    plan = [row[3] for row in store._conn.execute("EXPLAIN QUERY PLAN " + query, params)]
    table_scans = [step for step in plan if step.startswith("SCAN") and "json_each" not in step]
    assert plan and not table_scans, plan


def test_symbols_holding_nul(tmp_path, monkeypatch):
    """SQLite's json_each ends a string at NUL: lookups of such symbols (statistics, deletion,
    the per-apply check past the cache limit) bind them as parameters instead."""
    monkeypatch.setattr("katoray.store.sqlite.SYMBOL_CACHE_MAX", 0)
    batches = [[delta(["\x00"], ["a"]), delta(["a\x00b"], ["c"])], [delta(["\x00"], ["c"])]]
    kb = SqliteStore(tmp_path / "kb.sqlite", "node0_kato")
    ref = MemoryStore()
    try:
        for i, batch in enumerate(batches):
            assert kb.apply(batch, f"b{i}") and ref.apply(batch, f"b{i}")
        symbols = ["\x00", "a\x00b", "a", "c", "a\x00"]
        assert kb.symbol_pmf(symbols) == ref.symbol_pmf(symbols) == {"\x00": 2, "a\x00b": 1, "a": 1, "c": 2}
        doomed = [d.name for d in batches[0]]
        assert kb.delete_patterns(doomed) == ref.delete_patterns(doomed) == 2
        assert kb.totals() == ref.totals() and kb.symbol_frequencies(symbols) == ref.symbol_frequencies(symbols)
        assert kb.apply(batches[0], "b2") and ref.apply(batches[0], "b2")
        assert state(kb) == state(ref) and kb.totals() == ref.totals()
    finally:
        kb.close()


def test_symbols_must_be_text(store):
    with pytest.raises(TypeError, match="symbol 1 is a int; KATO symbols are strings"):
        store.apply([PatternDelta("f" * 40, [["a"], [1]])], "b0")
    assert store.count() == 0 and not store.is_applied("b0")


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


# -- the set of stored symbols ------------------------------------------------------------------
FIRST = [delta(["a"], [s], ["a"]) for s in "bcd"]                    # "a" twice in each: pmf counts it once
SECOND = [delta(["b"], ["a"], [s]) for s in "xyz"] + [FIRST[0]]      # a re-learn creates no symbol
THIRD = [delta(["a"], ["b"], ["w"]), delta(["x"], ["q"])]


def applied_one_store_each(url: str, *batches) -> SqliteStore:
    """Apply each batch through its own newly opened store (as separate processes would, each
    reading the stored symbols afresh); returns the KB opened once more."""
    for i, batch in enumerate(batches):
        kb = SqliteStore.from_url(url, "node0_kato")
        try:
            kb.apply(batch, f"b{i}")
        finally:
            kb.close()
    return SqliteStore.from_url(url, "node0_kato")


def test_reopened_store_reads_the_stored_symbols(tmp_path):
    kb = applied_one_store_each(f"sqlite:///{tmp_path}/kb", FIRST, SECOND, THIRD)
    try:
        assert state(kb) == state(reference(FIRST, SECOND, THIRD)) and kb.totals().num_symbols == 9
        assert kb.patterns_starting_with("a") == [d.name for d in FIRST + THIRD[:1]]
    finally:
        kb.close()


def test_another_writer_voids_the_set(store):
    other = SqliteStore(store.path, store.kb_id)
    try:
        store.apply(FIRST, "b0")    # store knows a, b, c, d
        other.apply(SECOND, "b1")   # creates x, y, z behind its back
        store.apply(THIRD, "b2")    # "x" must be updated, not created again
        assert state(store) == state(other) == state(reference(FIRST, SECOND, THIRD))
        assert store.totals().num_symbols == 9
    finally:
        other.close()


def stored_symbols(kb: SqliteStore) -> set[str]:
    """The symbol table, read on a connection of its own."""
    conn = sqlite3.connect(kb.path)
    try:
        return {row[0] for row in conn.execute("SELECT symbol FROM symbols")}
    finally:
        conn.close()


def test_own_deletes_and_clears_keep_the_set_in_step(store):
    """This store's own deletion and clear update its set of stored symbols (no re-read of the
    whole table at the next apply); another writer's apply makes it ask the file per apply."""
    store.apply(FIRST, "b0")
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    store.apply(SECOND, "b1")
    store.delete_patterns([d.name for d in FIRST])          # forgets "c" and "d"
    assert store._complete and store._stored == stored_symbols(store) == set("abxyz")
    store.apply(THIRD, "b2")
    assert store._complete and store._stored == stored_symbols(store) == set("abxyzwq")
    store.clear()
    store.apply(FIRST, "b0")
    assert store._complete and store._stored == stored_symbols(store) == set("abcd")
    store._conn.set_trace_callback(None)
    assert "SELECT symbol FROM symbols" not in statements and statements   # the whole table: never re-read
    other = SqliteStore(store.path, store.kb_id)
    try:
        other.apply(THIRD, "b2")
        store.apply(SECOND, "b1")
        assert not store._complete and state(store) == state(reference(FIRST, THIRD, SECOND))
    finally:
        other.close()


def test_past_the_cache_limit_each_apply_reads_its_symbols(tmp_path, monkeypatch):
    """More stored symbols than the set may hold: each apply asks the file which are stored."""
    monkeypatch.setattr("katoray.store.sqlite.SYMBOL_CACHE_MAX", 3)
    kb = SqliteStore(tmp_path / "kb.sqlite", "node0_kato")
    try:
        for i, batch in enumerate((FIRST, SECOND, THIRD)):
            kb.apply(batch, f"b{i}")
            assert kb._complete is (i == 0)   # the first apply found none stored, later ones more than 3
        assert state(kb) == state(reference(FIRST, SECOND, THIRD)) and kb.totals().num_symbols == 9
    finally:
        kb.close()


def test_frequencies_of_a_mixed_batch(store):
    """New and re-learned patterns, counts 0 to 3, symbols repeated inside a pattern: the
    frequencies count every occurrence times its count, the pmf each new pattern once."""
    first = [delta(["a"], ["b"], ["a"]), delta(["b"], ["c"], count=2)]
    second = [first[0], delta(["b"], ["c"], count=3), delta(["c"], ["c"], ["d"], count=3),
              delta(["d"], ["a"], count=0), delta(["e"], ["e"])]
    store.apply(first, "b0")
    store.apply(second, "b1")
    assert state(store) == state(reference(first, second))
    assert store.symbol_frequencies(["a", "c", "e"]) == {"a": 4, "c": 2 + 3 + 6, "e": 2}


def test_pattern_data_is_the_encoders_text(store):
    """Joined JSON for plain symbols, the encoder's for the new patterns holding a symbol it
    escapes; a re-learned pattern's stored text is left as it is."""
    plain = [delta(["é"], ["😀"], ["\x7f"], ["\u2028"]), delta(["a"], ["b", "c"], [])]
    escaped = [delta(['say "hi"'], ["a"]), delta(["back\\slash"], ["tab\t"]), plain[0], delta(["a"], ["z"])]
    store.apply(plain, "b0")
    store.apply(escaped, "b1")
    stored = dict(store._conn.execute("SELECT name, pattern_data FROM patterns"))
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    assert stored == {d.name: encode(d.events) for d in plain + escaped}
    assert state(store) == state(reference(plain, escaped))


def wire_columns(deltas: list[PatternDelta]):
    """``deltas`` as a node actor receives them from a mapper: the wire's joined form, decoded."""
    from katoray.store.wire import JoinedSymbols, decode_payload, encode_deltas

    columns = decode_payload(encode_deltas(deltas))
    assert isinstance(columns.symbols, JoinedSymbols)   # the form the store reads without splitting
    return columns


@pytest.fixture(params=["arrays", "counters"])
def joined_path(request, monkeypatch):
    """Both ways a joined batch's symbols are counted: numpy from the first pattern, or never."""
    monkeypatch.setattr("katoray.store.sqlite_rows.JOINED_ARRAYS_MIN", 0 if request.param == "arrays" else 10**9)


def test_wire_batches_match_memory(store, joined_path):
    """The joined form the wire delivers (one symbol per event) is applied by its own path
    (``sqlite_rows.joined_increments``, the JSON text from the joined string): the same store as
    the deltas give MemoryStore: re-learns, counts 0 to 3, symbols repeated in a pattern, symbols
    JSON escapes, one-symbol patterns, the empty-string symbol and an empty batch."""
    first = [delta(["a"], ["b"], ["a"]), delta(["b"], ["c"], count=2), delta(['say "hi"'], ["tab\t"]),
             delta(["é"], ["😀"], ["\u2028"])]
    second = [first[0], delta(["b"], ["c"], count=3), delta(["c"], ["c"], ["d"], ["c"], count=3),
              delta(["d"], ["a"], count=0), delta(["e"], ["e"]), delta(["x"]), delta([""], ["a"]),
              delta(["back\\slash"], ["a"], count=0), first[2]]
    for batch_id, batch, applied in (("b0", first, True), ("b1", [], True), ("b2", second, True), ("b2", second, False)):
        assert store.apply_columns(wire_columns(batch), batch_id) == applied   # a re-sent batch changes nothing
    assert state(store) == state(reference(first, [], second))
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    stored = dict(store._conn.execute("SELECT name, pattern_data FROM patterns"))
    assert stored == {d.name: encode(d.events) for d in first + second}
    assert store.symbol_frequencies(["c", "e", ""]) == {"c": 2 + 3 + 3 * 3, "e": 2, "": 1}
    assert store.symbol_pmf(["c", "a", "back\\slash"]) == {"c": 2, "a": 4, "back\\slash": 1}


_WIRE_SYMBOLS = ["a", "b", "c", "d", '"', ""]
_WIRE_PATTERN = st.lists(st.sampled_from(_WIRE_SYMBOLS), min_size=1, max_size=5)


def wire_state(kb) -> tuple:
    return state(kb) + (kb.symbol_pmf(_WIRE_SYMBOLS), kb.symbol_frequencies(_WIRE_SYMBOLS))


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(_WIRE_PATTERN, st.integers(0, 3)), max_size=8), min_size=1, max_size=4),
       arrays=st.booleans())
def test_random_wire_batches_match_memory(batches, arrays):
    """Random batches of one-symbol events through the joined wire form, counted with numpy or
    not: SQLite answers as MemoryStore does after each."""
    import tempfile
    from unittest import mock

    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch("katoray.store.sqlite_rows.JOINED_ARRAYS_MIN", 0 if arrays else 10**9):
        kb, ref = SqliteStore(Path(tmp) / "kb.sqlite", "node0_kato"), MemoryStore()
        try:
            for i, batch in enumerate(batches):
                deltas = list({d.name: d for d in (delta(*[[s] for s in p], count=n) for p, n in batch)}.values())
                kb.apply_columns(wire_columns(deltas), f"b{i}")
                ref.apply(deltas, f"b{i}")
                assert wire_state(kb) == wire_state(ref)
        finally:
            kb.close()


@pytest.fixture
def first_two(store):
    """FIRST and SECOND applied to ``store`` and to a MemoryStore reference."""
    store.apply(FIRST, "b0")
    store.apply(SECOND, "b1")
    return store, reference(FIRST, SECOND)


def test_deletes_match_memory(first_two):
    store, ref = first_two
    for doomed in ([FIRST[1]], [FIRST[0], FIRST[2]], SECOND[:3]):
        names = [d.name for d in doomed]
        assert store.delete_patterns(names) == ref.delete_patterns(names)
        assert state(store) == state(ref)
    assert store._conn.execute("SELECT count(*) FROM symbols").fetchone() == (0,)
    assert store.totals() == ref.totals()


def test_symbol_row_emptied_by_deletes_lives_on(first_two):
    store, ref = first_two
    names = [d.name for d in FIRST]
    store.delete_patterns(names)
    ref.delete_patterns(names)
    assert state(store) == state(ref)   # "a" lives on in SECOND
    third = [delta(["a"], ["q"]), delta(["c"], ["a"])]   # "c" was forgotten: created again
    store.apply(third, "b2")
    ref.apply(third, "b2")
    assert state(store) == state(ref)
    assert store.patterns_starting_with("a") == ref.patterns_starting_with("a") == [third[0].name]


def test_ids_freed_at_the_end_are_given_again(first_two):
    """Deleting the newest patterns lets the next apply reuse their ids (still in learn order)."""
    store, ref = first_two
    names = [d.name for d in SECOND[:3]]
    store.delete_patterns(names)
    ref.delete_patterns(names)
    again = [delta(["b"], ["a"], ["w"]), delta(["a"], ["b"])]
    store.apply(again, "b2")
    ref.apply(again, "b2")
    assert store._conn.execute("SELECT max(id) FROM patterns").fetchone()[0] == 5
    assert state(store) == state(ref)
    store.delete_patterns([again[0].name])
    ref.delete_patterns([again[0].name])
    assert state(store) == state(ref)


@pytest.mark.parametrize("batch", [SECOND, [FIRST[0]]], ids=["in-a-new-pattern", "once-more-by-a-relearn"])
def test_stored_symbol_missing_from_its_table_is_refused(store, batch):
    """Whichever update counts the missing symbol (the general one, or the one for a symbol
    occurring once more in no new pattern), the apply is refused whole."""
    store.apply(FIRST, "b0")
    before = state(store)
    other = sqlite3.connect(store.path)
    other.execute("DELETE FROM symbols WHERE symbol = 'b'")   # damage the file behind the cache's back
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="symbols of stored patterns are missing.*nothing was written"):
        store.apply(batch, "b1")
    assert not store.is_applied("b1") and state(store)[0] == before[0]


def test_metadata_of_new_patterns_merged_once_per_distinct_value(store):
    """The merge of a new pattern's metadata is shared by equal metadata only: values that print
    alike but differ (1, 1.0, "1", ("1",)) each merge on their own, as MemoryStore does."""
    names = [pattern_hash([[str(i)], ["m"]]) for i in range(8)]
    metadata = {0: {"book": ["b", "a"]}, 1: {"book": ["a", "b"]}, 2: {"book": ["b", "a"]}, 3: {"book": [1]},
                4: {"book": [1.0]}, 5: {"book": ["1"]}, 6: {"book": ("1",)}, 7: {"book": "ab", "k": ["v"]}}
    columns = DeltaColumns(names, [[str(i), "m"] for i in range(8)], [1] * 8, metadata)
    store.apply_columns(columns, "b0", metadata_cap=1)
    ref = MemoryStore()
    ref.apply_columns(columns, "b0", metadata_cap=1)
    assert state(store) == state(ref)
    assert [store.get_pattern(n).metadata for n in names[3:7]] == [{"book": ["1"]}, {"book": ["1.0"]},
                                                                   {"book": ["1"]}, {"book": ["1"]}]


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
    with pytest.raises(StoreError, match="schema version 1; this katoray reads version 4. Use a new store URL"):
        SqliteStore(tmp_path / "kb.sqlite", "node0_kato")


def as_schema_3(path: Path) -> None:
    """Give a KB file the layout katoray's schema 3 had: posting lists in the symbol rows and an
    overflow table."""
    old = sqlite3.connect(path)
    old.executescript("""
        ALTER TABLE symbols ADD COLUMN starting_ids BLOB NOT NULL DEFAULT x'01000000';
        ALTER TABLE symbols ADD COLUMN pattern_ids BLOB NOT NULL DEFAULT x'01000000';
        CREATE TABLE symbol_patterns (symbol TEXT NOT NULL, first_id INTEGER NOT NULL, starting_ids BLOB NOT NULL,
            pattern_ids BLOB NOT NULL, PRIMARY KEY (symbol, first_id)) WITHOUT ROWID;
        INSERT INTO symbol_patterns VALUES ('a', 4, x'', x'04000000');
        UPDATE meta SET value = '3' WHERE key = 'schema_version';""")
    old.close()


def test_a_schema_3_file_is_upgraded_in_place(tmp_path):
    """Schema 3 had posting lists in the symbol rows and an overflow table; opening drops them
    and keeps every pattern, statistic and applied batch."""
    path = tmp_path / "kb.sqlite"
    kb = SqliteStore(path, "node0_kato")
    kb.apply(FIRST, "b0")
    kb.apply(SECOND, "b1")
    kb.close()
    as_schema_3(path)
    kb = SqliteStore(path, "node0_kato")
    try:
        columns = [row[1] for row in kb._conn.execute("PRAGMA table_info(symbols)")]
        tables = {row[0] for row in kb._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert columns == ["symbol", "frequency", "pmf"] and "symbol_patterns" not in tables
        assert state(kb) == state(reference(FIRST, SECOND)) and not kb.apply(SECOND, "b1")
        kb.apply(THIRD, "b2")
        assert state(kb) == state(reference(FIRST, SECOND, THIRD))
        assert kb._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("4",)
    finally:
        kb.close()


def test_an_upgrade_waiting_for_the_write_lock_says_so(tmp_path):
    path = tmp_path / "kb.sqlite"
    SqliteStore(path, "node0_kato").close()
    as_schema_3(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="earlier katoray \\(schema 3\\).*another process holds its write lock"):
            SqliteStore(path, "node0_kato", busy_timeout_s=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    SqliteStore(path, "node0_kato").close()   # the file was left as it was: it upgrades now


# -- property: two writers, deletes, clears, a small symbol set ----------------------------------
LETTERS = list("abcdef")
_PATTERN = st.lists(st.lists(st.sampled_from(LETTERS), min_size=0, max_size=2, unique=True).map(sorted),
                    min_size=1, max_size=4)
_STEP = st.one_of(
    st.tuples(st.just("apply"), st.integers(0, 1), st.lists(st.tuples(_PATTERN, st.integers(0, 3)), max_size=6),
              st.sampled_from(["b0", "b1", "b2", None])),
    st.tuples(st.just("delete"), st.integers(0, 1), st.integers(0, 4), st.none()),
    st.tuples(st.just("clear"), st.integers(0, 1), st.none(), st.none()))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(_STEP, min_size=1, max_size=8), cache_max=st.sampled_from([2, 1_000_000]))
def test_two_writers_match_memory(steps, cache_max):
    """Random applies (counts 0-3, empty events), deletions and clears through two stores on one
    file, with a set of stored symbols that fits or not: after each step both stores answer as
    MemoryStore does, starting lists in learn order included."""
    import tempfile
    from unittest import mock

    with tempfile.TemporaryDirectory() as tmp, mock.patch("katoray.store.sqlite.SYMBOL_CACHE_MAX", cache_max):
        stores = [SqliteStore(Path(tmp) / "kb.sqlite", "node0_kato") for _ in range(2)]
        ref = MemoryStore()
        try:
            for kind, who, arg, batch_id in steps:
                writer = stores[who]
                if kind == "apply":
                    batch = [delta(*events, count=count) for events, count in arg]
                    assert writer.apply(batch, batch_id) == ref.apply(batch, batch_id)
                elif kind == "delete":
                    doomed = [record.name for record in ref.iter_patterns()][arg::2]
                    assert writer.delete_patterns(doomed) == ref.delete_patterns(doomed)
                else:
                    writer.clear()
                    ref.clear()
                for kb in stores:
                    assert state(kb) == state(ref)
        finally:
            for kb in stores:
                kb.close()
