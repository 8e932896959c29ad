"""Every backend gives MemoryStore's answers: the same scripts of applies, compared state for state.

A script is a list of ``apply`` calls; ``observable_state`` is everything the protocol lets a
caller see (all records, totals, symbol statistics and both indexes for every symbol). The ``kb``
fixture runs each test on memory, sqlite and mongo; MemoryStore fed the same script is the
reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katoray.engine.naming import pattern_hash
from katoray.errors import ConfigError
from katoray.store.base import DeltaColumns, KBTotals, PatternDelta, ShardedKnowledgeBase, stored_symbols
from katoray.store.memory import MemoryStore

# Non-ASCII, quotes, backslash and control characters: every way a symbol can travel as JSON.
ALPHABET = ["a", "b", "c", "Ġthe", 'say "\\n"\t', "é", "😀", "VCTR|f00", "it's", "new\nline"]
UNKNOWN = ["zz-unknown", ""]


def delta(*events: list[str], count: int = 1, emotives=None, metadata=None) -> PatternDelta:
    events_list = [list(event) for event in events]
    return PatternDelta(pattern_hash(events_list), events_list, count, emotives or [], metadata or {})


@dataclass
class Apply:
    deltas: list[PatternDelta]
    batch_id: str | None = None
    persistence: int = 5
    metadata_cap: int | None = None
    kwargs: dict = field(init=False)

    def __post_init__(self) -> None:
        self.kwargs = {"persistence": self.persistence, "metadata_cap": self.metadata_cap}


def run(kb, script: list[Apply]) -> list[bool]:
    return [kb.apply(step.deltas, step.batch_id, **step.kwargs) for step in script]


def observable_state(kb, symbols=ALPHABET + UNKNOWN) -> dict:
    """Everything a caller can observe, in backend-independent form."""
    records = [r.to_dict() for r in kb.iter_patterns()]
    names = [r["name"][len("PTRN|"):] for r in records]
    return {
        "records": records,
        "count": kb.count(),
        "totals": kb.totals(),
        "get_pattern": {n: kb.get_pattern(n).to_dict() for n in names},
        "get_patterns": {n: r.to_dict() for n, r in kb.get_patterns(names + ["0" * 40]).items()},
        "pmf": kb.symbol_pmf(symbols),
        "freq": kb.symbol_frequencies(symbols),
        "with_any": {s: sorted(kb.patterns_with_any([s])) for s in symbols},
        "with_any_all": sorted(kb.patterns_with_any(symbols)),
        "starting_with": {s: sorted(kb.patterns_starting_with(s)) for s in symbols},
        "stored_symbols": stored_symbols(kb),
        **aggregates(kb),
    }


def aggregates(kb) -> dict:
    """The analysis reads, in backend-independent form."""
    return {
        "frequency_histogram": kb.frequency_histogram(),
        "length_histogram": kb.length_histogram(),
        "most_frequent": [r.to_dict() for r in kb.most_frequent()],
        "most_frequent_2": [r.to_dict() for r in kb.most_frequent(2, min_frequency=2)],
        "most_frequent_band": [r.name for r in kb.most_frequent(None, 2, 3)],
        "frequencies": sorted(kb.iter_frequencies()),
        "sample": [r.to_dict() for r in kb.sample_by_frequency(3, seed=7)],
    }


def assert_same_as_memory(kb, script: list[Apply]) -> list[bool]:
    reference = MemoryStore("reference")
    expected_results = run(reference, script)
    assert run(kb, script) == expected_results
    assert observable_state(kb) == observable_state(reference)
    return expected_results


# -- learning: new and re-learned patterns ------------------------------------------------------
def test_new_pattern(kb):
    d = delta(["a"], ["b"], ["c"])
    assert assert_same_as_memory(kb, [Apply([d], "b1")]) == [True]
    record = kb.get_pattern(d.name)
    assert (record.pattern_data, record.length, record.frequency) == ([["a"], ["b"], ["c"]], 3, 1)
    assert kb.totals() == KBTotals(1, 1, 3, 3)
    assert kb.symbol_pmf(["a", "b", "c", "d"]) == {"a": 1, "b": 1, "c": 1}
    assert kb.symbol_frequencies(["a", "d"]) == {"a": 1}
    assert kb.patterns_with_any(["c", "d"]) == {d.name}
    assert kb.patterns_starting_with("a") == [d.name] and kb.patterns_starting_with("b") == []


def test_relearned_pattern_adds_frequency_not_pmf(kb):
    d = delta(["a", "b"], ["c"])
    assert_same_as_memory(kb, [Apply([d], "b1"), Apply([d], "b2"), Apply([d])])
    assert kb.get_pattern(d.name).frequency == 3
    # KATO quirk: total_pattern_frequencies counts new patterns only.
    assert kb.totals() == KBTotals(1, 1, 9, 3)
    assert kb.symbol_pmf(["a"]) == {"a": 1} and kb.symbol_frequencies(["a"]) == {"a": 3}
    assert kb.patterns_with_any(["a"]) == {d.name}


def test_counts_and_repeated_symbols(kb):
    aba = delta(["a"], ["b"], ["a"], count=3)
    ab = delta(["a"], ["b"], count=2)
    assert_same_as_memory(kb, [Apply([aba, ab], "b1"), Apply([aba], "b2")])
    assert kb.get_pattern(aba.name).frequency == 6
    assert kb.symbol_frequencies(["a", "b"]) == {"a": 2 * 6 + 2, "b": 6 + 2}
    assert kb.symbol_pmf(["a", "b"]) == {"a": 2, "b": 2}
    assert kb.totals() == KBTotals(2, 2, 3 * 6 + 2 * 2, 2)


def test_same_name_twice_in_one_batch(kb):
    d = delta(["x"], ["y"])
    assert_same_as_memory(kb, [Apply([d, delta(["a"], ["b"]), d], "b1")])
    assert kb.get_pattern(d.name).frequency == 2 and kb.count() == 2


def test_many_patterns_share_symbols(kb):
    deltas = [delta([ALPHABET[i % 8]], [ALPHABET[(i * 3) % 8]], [str(i)]) for i in range(60)]
    assert_same_as_memory(kb, [Apply(deltas[:40], "b1"), Apply(deltas[20:], "b2")])
    assert kb.count() == 60


# -- emotives and metadata ----------------------------------------------------------------------
def test_emotives_window(kb):
    d = delta(["a"], ["b"])
    script = [
        Apply([delta(["a"], ["b"], emotives=[{"joy": 1.0}, {"joy": 0.5, "fear": -2.0}])], "b1", persistence=3),
        Apply([d], "b2", persistence=3),                                  # no emotives: unchanged
        Apply([delta(["a"], ["b"], emotives=[{"joy": 3.0}])], "b3", persistence=3),
        Apply([delta(["a"], ["b"], emotives=[{"fear": 4.0}]),
               delta(["a"], ["b"], emotives=[{"joy": 5.0}])], "b4", persistence=3),
    ]
    assert_same_as_memory(kb, script)
    assert kb.get_pattern(d.name).emotives == [{"joy": 3.0}, {"fear": 4.0}, {"joy": 5.0}]


def test_persistence_per_apply(kb):
    script = [Apply([delta(["a"], ["b"], emotives=[{"e": float(i)}])], f"b{i}", persistence=p)
              for i, p in enumerate([5, 5, 5, 2, 4])]
    assert_same_as_memory(kb, script)
    assert kb.get_pattern(pattern_hash([["a"], ["b"]])).emotives == [{"e": 2.0}, {"e": 3.0}, {"e": 4.0}]


def test_metadata_union(kb):
    script = [
        Apply([delta(["a"], ["b"], metadata={"book": ["t2", "t1"]})], "b1"),
        Apply([delta(["a"], ["b"], metadata={"book": ["t1", "t3"], "author": ["Smith"]})], "b2"),
        Apply([delta(["a"], ["b"])], "b3"),
    ]
    assert_same_as_memory(kb, script)
    expected = {"author": ["Smith"], "book": ["t1", "t2", "t3"]}
    assert kb.get_pattern(pattern_hash([["a"], ["b"]])).metadata == expected


def test_metadata_cap_keeps_smallest(kb):
    script = [
        Apply([delta(["a"], ["b"], metadata={"book": ["m", "z"]})], "b1", metadata_cap=2),
        Apply([delta(["a"], ["b"], metadata={"book": ["c", "y"]}),
               delta(["a"], ["b"], metadata={"book": ["a"], "src": ["s"]})], "b2", metadata_cap=2),
    ]
    assert_same_as_memory(kb, script)
    assert kb.get_pattern(pattern_hash([["a"], ["b"]])).metadata == {"book": ["a", "c"], "src": ["s"]}


# -- exactly once --------------------------------------------------------------------------------
def test_batch_ids_are_idempotent(kb):
    d = delta(["a"], ["b"], emotives=[{"joy": 1.0}], metadata={"k": ["v"]})
    results = assert_same_as_memory(kb, [Apply([d], "b1"), Apply([d], "b1"), Apply([d, d], "b1"),
                                         Apply([d], None), Apply([d], None)])
    assert results == [True, False, False, True, True]
    assert kb.is_applied("b1") and not kb.is_applied("b2")
    assert kb.get_pattern(d.name).frequency == 3


def test_empty_batch_is_recorded(kb):
    assert assert_same_as_memory(kb, [Apply([], "empty"), Apply([delta(["a"], ["b"])], "empty")]) == [True, False]
    assert kb.count() == 0 and kb.is_applied("empty")


@pytest.mark.parametrize("knobs", [{"persistence": 0}, {"persistence": True}, {"persistence": "5"},
                                   {"metadata_cap": -1}, {"metadata_cap": 2.5}])
def test_bad_apply_knobs_are_refused_before_any_write(kb, knobs):
    d = delta(["a"], ["b"], metadata={"k": ["v"]})
    name = next(iter(knobs))
    with pytest.raises(ConfigError, match=name):
        kb.apply([d], "b1", **knobs)
    with pytest.raises(ConfigError, match=name):
        kb.apply_columns(columns_of([(["a", "b"], 1, {"k": ["v"]})]), "b2", **knobs)
    assert kb.count() == 0 and not kb.is_applied("b1") and not kb.is_applied("b2")


# -- reads ---------------------------------------------------------------------------------------
def test_get_pattern_and_get_patterns(kb):
    ds = [delta(["a"], ["b"]), delta(["b"], ["c"], metadata={"k": ["v"]})]
    kb.apply(ds, "b1")
    assert kb.get_pattern("0" * 40) is None
    got = kb.get_patterns([ds[1].name, "0" * 40, ds[0].name])
    assert set(got) == {ds[0].name, ds[1].name}
    assert got[ds[1].name].metadata == {"k": ["v"]} and got[ds[0].name].name == ds[0].name
    assert kb.get_patterns([]) == {}


def test_iter_patterns_sorted_by_name(kb):
    ds = [delta([s], ["x"]) for s in ALPHABET]
    kb.apply(ds, "b1")
    names = [r.name for r in kb.iter_patterns()]
    assert names == sorted(d.name for d in ds)


@pytest.mark.parametrize("page", [1, 3, 1000])
def test_pattern_rows_are_every_pattern(kb, page):
    """The bulk read (``base.pattern_rows``: memory and sqlite natively, MongoDB through
    iter_patterns) gives each pattern's name, events and frequency once, after deletions too."""
    from katoray.store.base import pattern_rows

    kb.apply([delta([s, "x"], ["y", s]) for s in ALPHABET], "b1")
    kb.apply([delta(["a", "x"], ["y", "a"], count=2)], "b2")
    kb.delete_patterns([delta(["b", "x"], ["y", "b"]).name])
    rows = [(name, events, freq) for p in pattern_rows(kb, page)
            for name, events, freq in zip(p.names, p.events, p.frequencies)]
    assert all(len(p.names) <= page for p in pattern_rows(kb, page))
    assert sorted(rows) == [(r.name, r.pattern_data, r.frequency) for r in kb.iter_patterns()]


def test_unknown_symbols(kb):
    kb.apply([delta(["a"], ["b"])], "b1")
    assert kb.symbol_pmf(UNKNOWN) == {} and kb.symbol_frequencies(UNKNOWN) == {}
    assert kb.patterns_with_any(UNKNOWN) == set() and kb.patterns_with_any([]) == set()
    assert kb.patterns_starting_with("zz-unknown") == []


def test_clear_empties_everything(kb):
    script = [Apply([delta(["a"], ["b"], metadata={"k": ["v"]})], "b1"), Apply([delta(["b"], ["c"])], "b2")]
    run(kb, script)
    kb.clear()
    empty = MemoryStore("empty")
    assert observable_state(kb) == observable_state(empty)
    assert kb.totals() == KBTotals() and not kb.is_applied("b1")
    # Usable after clear, and the old batch ids apply again.
    assert_same_as_memory(kb, script)


# -- aggregates for analysis ---------------------------------------------------------------------
def test_aggregates(kb):
    heavy = delta(["a"], ["b"], count=5)
    mid = [delta(["c"], [s], ["a"], count=2) for s in ALPHABET[:3]]
    light = [delta([s], ["x"]) for s in ALPHABET]
    assert_same_as_memory(kb, [Apply([heavy, *mid], "b1"), Apply(light, "b2")])
    assert kb.frequency_histogram() == {1: len(ALPHABET), 2: 3, 5: 1}
    assert kb.length_histogram() == {2: 1 + len(ALPHABET), 3: 3}
    top = kb.most_frequent(2)
    assert [r.name for r in top] == [heavy.name, min(d.name for d in mid)] and top[0].frequency == 5
    assert [r.frequency for r in kb.most_frequent(None, 2, 2)] == [2, 2, 2]
    assert kb.most_frequent(0) == [] and len(kb.most_frequent()) == kb.count()
    assert dict(kb.iter_frequencies()) == {r.name: r.frequency for r in kb.iter_patterns()}
    with pytest.raises(ValueError, match="limit"):
        kb.most_frequent(-1)
    # Answers follow later writes and deletions (SQLite keeps its histograms until the file changes).
    kb.apply([heavy, delta(["a"], ["b"], ["c"], ["d"])], "b3")
    kb.delete_patterns([mid[0].name])
    assert kb.frequency_histogram() == {1: len(ALPHABET) + 1, 2: 2, 10: 1}
    assert kb.length_histogram() == {2: 1 + len(ALPHABET), 3: 2, 4: 1}


def test_sample_by_frequency_is_weighted_seeded_and_without_replacement(kb):
    heavy = delta(["h"], ["h"], count=400)
    light = [delta([s], ["y"]) for s in ALPHABET]
    kb.apply([heavy, *light], "b1")
    draws = [kb.sample_by_frequency(1, seed) for seed in range(60)]
    # P(heavy first) = 400 / 410 per seed: 60 seeds without it in first place would be a bug.
    assert sum(d[0].name == heavy.name for d in draws) >= 50
    everything = kb.sample_by_frequency(100, seed=3)
    assert sorted(r.name for r in everything) == sorted(r.name for r in kb.iter_patterns())
    assert kb.sample_by_frequency(4, seed=3) == everything[:4] != kb.sample_by_frequency(4, seed=4)
    assert kb.sample_by_frequency(0) == []


def test_size_on_disk(kb, store_url):
    before = kb.size_on_disk()
    kb.apply([delta([s], ["x"], [str(i)]) for i, s in enumerate(ALPHABET * 20)], "b1")
    if store_url == "memory://":
        assert before is None and kb.size_on_disk() is None
    else:
        assert kb.size_on_disk() > 0


def test_aggregates_stream_without_iter_patterns(kb, monkeypatch):
    """Analysis never reads every record: histograms, top-N and samples work with iter_patterns gone."""
    kb.apply([delta([s], ["x"], count=1 + i) for i, s in enumerate(ALPHABET)], "b1")
    monkeypatch.setattr(kb, "iter_patterns", None, raising=False)
    assert sum(kb.frequency_histogram().values()) == len(ALPHABET) == sum(kb.length_histogram().values())
    assert len(kb.most_frequent(3)) == 3 and len(kb.sample_by_frequency(3, seed=1)) == 3


# -- property: random scripts --------------------------------------------------------------------
symbols = st.sampled_from(ALPHABET[:5])
events = st.lists(symbols, min_size=1, max_size=3, unique=True).map(sorted)
emotive = st.dictionaries(st.sampled_from(["joy", "fear"]), st.floats(-4, 4, allow_nan=False, width=32),
                          min_size=1)
metadata = st.dictionaries(st.sampled_from(["book", "author"]),
                           st.lists(st.sampled_from(["t1", "t2", "t3", "Smith"]), max_size=3), max_size=2)


@st.composite
def deltas(draw):
    pattern = draw(st.lists(events, min_size=1, max_size=4))
    return delta(*pattern, count=draw(st.integers(1, 3)),
                 emotives=draw(st.lists(emotive, max_size=2)), metadata=draw(metadata))


steps = st.builds(Apply, st.lists(deltas(), max_size=6), st.sampled_from(["b0", "b1", "b2", "b3", None]),
                  st.integers(1, 4), st.none() | st.integers(1, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(steps, min_size=1, max_size=5))
def test_random_scripts_match_memory(kb, script):
    kb.clear()
    assert_same_as_memory(kb, script)
    records = list(kb.iter_patterns())
    for subset in ([], ALPHABET[:1], ALPHABET[1:3], ALPHABET[:5]):
        full_scan = {r.name for r in records if {s for e in r.pattern_data for s in e} & set(subset)}
        assert kb.patterns_with_any(subset) == full_scan
    for symbol in ALPHABET[:5]:
        full_scan = [r.name for r in records if r.pattern_data and r.pattern_data[0][:1] == [symbol]]
        assert sorted(kb.patterns_starting_with(symbol)) == sorted(full_scan)


# -- the columnar form: apply_columns == apply(columns.to_deltas()) ------------------------------
def columns_of(patterns: list[tuple[list[str], int, dict]]) -> DeltaColumns:
    """Columns for (symbols, count, metadata) rows, named with KATO's hash of one symbol per event."""
    names = [pattern_hash([[s] for s in symbols]) for symbols, _, _ in patterns]
    return DeltaColumns(names, [list(symbols) for symbols, _, _ in patterns], [c for _, c, _ in patterns],
                        {i: meta for i, (_, _, meta) in enumerate(patterns) if meta})


def assert_columns_same_as_memory(kb, script: list[tuple[DeltaColumns, str | None, int | None]]) -> None:
    reference = MemoryStore("reference")
    for columns, batch_id, cap in script:
        expected = reference.apply(columns.to_deltas(), batch_id, metadata_cap=cap)
        assert kb.apply_columns(columns, batch_id, metadata_cap=cap) is expected
    assert observable_state(kb) == observable_state(reference)


def test_apply_columns(kb):
    first = columns_of([(["a", "b", "a"], 3, {"book": ["t2", "t1"]}), (ALPHABET[3:7], 1, {}),
                        (["c", "d"], 1, {}), (["b", "c"], 2, {"book": ["t0"]})])
    again = columns_of([(["c", "d"], 2, {"book": ["t9"]}), (["a", "b", "a"], 1, {}), (ALPHABET[6:], 1, {})])
    repeated = columns_of([(["x", "y"], 1, {"k": ["v"]}), (["a", "b"], 1, {}), (["x", "y"], 2, {"k": ["u"]})])
    assert_columns_same_as_memory(kb, [(first, "b1", None), (again, "b2", 1), (again, "b2", 1),
                                       (repeated, None, None), (columns_of([]), "b3", None)])


def test_apply_and_apply_columns_share_the_batch_ledger(kb):
    columns = columns_of([(["a", "b"], 1, {})])
    assert kb.apply(columns.to_deltas(), "b1") and not kb.apply_columns(columns, "b1")
    assert kb.apply_columns(columns, "b2") and not kb.apply(columns.to_deltas(), "b2")
    assert kb.get_pattern(columns.names[0]).frequency == 2


def test_delta_columns_checks_its_shape():
    with pytest.raises(ValueError, match="one entry per pattern"):
        DeltaColumns(["n"], [["a"], ["b"]], [1])
    with pytest.raises(ValueError, match="row numbers 0..0"):
        DeltaColumns(["n"], [["a"]], [1], {1: {"k": ["v"]}})
    assert columns_of([(["a", "b"], 2, {"k": ["v"]})]).to_deltas() == [delta(["a"], ["b"], count=2, metadata={"k": ["v"]})]


column_rows = st.tuples(st.lists(symbols, min_size=1, max_size=4), st.integers(1, 3), metadata)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(st.tuples(st.lists(column_rows, max_size=6).map(columns_of),
                                 st.sampled_from(["b0", "b1", None]), st.none() | st.integers(1, 3)),
                       min_size=1, max_size=4))
def test_random_columns_match_memory(kb, script):
    kb.clear()
    assert_columns_same_as_memory(kb, script)


# -- deletion: as if the deleted patterns had never been learned -------------------------------------
def survivors_only(script: list[Apply], deleted: set[str], after: list[Apply] = ()) -> MemoryStore:
    """MemoryStore fed only the surviving patterns' deltas of the applies that took effect in
    ``script``, then every effective apply of ``after`` (learned after the deletes)."""
    probe, reference = MemoryStore("probe"), MemoryStore("survivors")
    for step in script:
        if probe.apply(step.deltas, step.batch_id, **step.kwargs):
            reference.apply([d for d in step.deltas if d.name not in deleted], **step.kwargs)
    for step in after:
        if probe.apply(step.deltas, step.batch_id, **step.kwargs):
            reference.apply(step.deltas, **step.kwargs)
    return reference


def assert_deletes_match(kb, script: list[Apply], deletes: list[list[str]], after: list[Apply] = (),
                         symbols=ALPHABET + UNKNOWN) -> list[int]:
    """Run ``script``, the ``deletes`` and ``after`` on ``kb`` and on MemoryStore, and compare both,
    and a MemoryStore that never learned the deleted patterns, state for state."""
    same = MemoryStore("same-deletes")
    run(same, script)
    run(kb, script)
    learned = {r.name for r in same.iter_patterns()}
    counts = [kb.delete_patterns(names) for names in deletes]
    assert counts == [same.delete_patterns(names) for names in deletes]
    deleted = learned & {name for names in deletes for name in names}
    assert sum(counts) == len(deleted)
    assert run(kb, list(after)) == run(same, list(after))
    state = observable_state(kb, symbols)
    assert state == observable_state(same, symbols)
    assert state == observable_state(survivors_only(script, deleted, after), symbols)
    # Learning order survives deletion (observable_state compares sorted lists); a sharded level
    # keeps it within each shard only (no clock spans its shards).
    if not isinstance(kb, ShardedKnowledgeBase):
        assert {s: kb.patterns_starting_with(s) for s in symbols} == {s: same.patterns_starting_with(s) for s in symbols}
    return counts


def test_delete_patterns(kb):
    shared = [delta([ALPHABET[i % 6]], [ALPHABET[(i * 5) % 7], "x"], [str(i % 4)], count=1 + i % 3) for i in range(24)]
    special = [delta(["a"], ["b"], ["a"], count=2, emotives=[{"joy": 1.0}], metadata={"book": ["t1"]}),
               delta(["new\nline"], ['say "\\n"\t'], count=3), delta(["😀", "é"], ["é"])]
    script = [Apply(shared[:12], "b1"), Apply(shared[8:] + special, "b2"), Apply(shared[:3], "b1"),
              Apply([special[0], shared[5]], None, persistence=2, metadata_cap=1)]
    doomed = [d.name for d in shared[::3]] + [special[1].name, special[2].name]
    deletes = [doomed[:4] + ["0" * 40, doomed[0]], doomed[2:], doomed[:2], [], ["f" * 40]]
    # After the deletes: re-learn a deleted pattern, a survivor, and new patterns (fresh ids).
    after = [Apply([special[2], shared[1], delta(["a"], ["zz"])], "b3"), Apply([shared[0]], "b1")]
    symbols = ALPHABET + UNKNOWN + ["x", "zz"] + [str(i) for i in range(4)]
    counts = assert_deletes_match(kb, script, deletes, after, symbols)
    assert counts == [4, len(doomed) - 4, 0, 0, 0]


def test_delete_forgets_symbols_no_pattern_holds(kb):
    lone, kept = delta(["q"], ["r"], ["a"], count=2), delta(["a"], ["b"])
    kb.apply([lone, kept], "b1")
    assert kb.totals() == KBTotals(2, 2, 3 * 2 + 2, 4)
    assert kb.delete_patterns([lone.name, lone.name]) == 1
    assert kb.totals() == KBTotals(1, 1, 2, 2)
    assert kb.symbol_frequencies(["q", "r", "a"]) == {"a": 1} and kb.symbol_pmf(["q", "a"]) == {"a": 1}
    assert kb.patterns_with_any(["q", "r"]) == set() and kb.patterns_starting_with("q") == []
    assert kb.get_pattern(lone.name) is None and kb.count() == 1
    # A forgotten symbol learned again is new again (num_symbols counts it once more).
    kb.apply([delta(["q"], ["a"])], "b2")
    assert kb.totals().num_symbols == 3 and kb.symbol_pmf(["q"]) == {"q": 1}


def test_delete_everything_leaves_an_empty_kb(kb):
    ds = [delta([s], ["x"], [s]) for s in ALPHABET]
    kb.apply(ds, "b1")
    assert kb.delete_patterns(d.name for d in ds) == len(ds)
    assert observable_state(kb) == observable_state(MemoryStore("empty"))
    assert kb.totals() == KBTotals() and kb.is_applied("b1")
    assert kb.delete_patterns([d.name for d in ds]) == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(steps, min_size=1, max_size=4), after=st.lists(steps, max_size=2), data=st.data())
def test_random_deletes_match_memory(kb, script, after, data):
    kb.clear()
    reference = MemoryStore("names")
    run(reference, script)
    pool = sorted(r.name for r in reference.iter_patterns()) + ["0" * 40]
    deletes = data.draw(st.lists(st.lists(st.sampled_from(pool), max_size=6), min_size=1, max_size=3))
    assert_deletes_match(kb, script, deletes, after)


# -- SQLite: a deletion is one transaction --------------------------------------------------------
def failing_on(path, table: str) -> None:
    """Make every later UPDATE and DELETE of ``table`` fail inside SQLite (a real mid-way error)."""
    import sqlite3

    conn = sqlite3.connect(path)
    for op in ("UPDATE", "DELETE"):
        conn.execute(f"CREATE TRIGGER fail_{op.lower()}_{table} BEFORE {op} ON {table} "
                     "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("table", ["patterns", "symbols", "totals"])
def test_sqlite_delete_is_transactional(tmp_path, table):
    import sqlite3

    from katoray.errors import StoreError
    from katoray.store.sqlite import SqliteStore

    path = tmp_path / "kb.sqlite"
    kb = SqliteStore(path, "kb")
    ds = [delta(["a"], ["b"]), delta(["b"], ["c"], ["a"]), delta(["c"], ["a"]), delta(["q"], ["b"])]
    kb.apply(ds[:2], "b1")
    kb.apply(ds[2:], "b2")
    before = observable_state(kb, ALPHABET + ["q"])
    # Deleting ds[1:] updates symbol statistics, forgets "q", and updates every table.
    doomed = [d.name for d in ds[1:]]
    failing_on(path, table)
    with pytest.raises(StoreError, match="rolled back"):
        kb.delete_patterns(doomed)
    assert observable_state(kb, ALPHABET + ["q"]) == before
    conn = sqlite3.connect(path)
    conn.executescript(f"DROP TRIGGER fail_update_{table}; DROP TRIGGER fail_delete_{table};")
    conn.close()
    assert [kb.delete_patterns(doomed), kb.delete_patterns(doomed)] == [3, 0]
    reference = survivors_only([Apply(ds[:2], "b1"), Apply(ds[2:], "b2")], set(doomed))
    assert observable_state(kb, ALPHABET + ["q"]) == observable_state(reference, ALPHABET + ["q"])
    kb.close()


def test_sqlite_delete_refuses_damaged_statistics(tmp_path):
    import sqlite3

    from katoray.errors import StoreError
    from katoray.store.sqlite import SqliteStore

    path = tmp_path / "kb.sqlite"
    kb = SqliteStore(path, "kb")
    ds = [delta(["a"], ["b"]), delta(["b"], ["c"])]
    kb.apply(ds, "b1")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE symbols SET frequency = 0 WHERE symbol = 'c'")   # ds[1] no longer counted under "c"
    conn.commit()
    conn.close()
    damaged = observable_state(kb)
    with pytest.raises(StoreError, match="statistics disagree.*symbol 'c'.*nothing was deleted"):
        kb.delete_patterns([ds[1].name])
    assert observable_state(kb) == damaged   # the deletion left everything as it was
    kb.close()


# -- MongoDB: a deletion without transactions ---------------------------------------------------------
def mongo_kb(mongo_uri: str, node_id: str):
    from katoray.store import kb_id_for
    from katoray.store.mongo import MongoStore

    return MongoStore.from_url(mongo_uri, kb_id_for(node_id))


def encode_plan(plan, token: str, kb_id: str, chunk: int):
    from katoray.store.mongo_batch import encode_plan

    return encode_plan(plan, token, kb_id, chunk)


MONGO_SCRIPT = [Apply([delta(["a"], ["b"], ["a"], count=2), delta(["q"], ["b"]), delta(["c"], ["r"], ["q"])], "b1"),
                Apply([delta(["a"], ["b"], ["a"]), delta(["b"], ["c"], metadata={"k": ["v"]}), delta(["r"])], "b2")]


@pytest.mark.parametrize("crash_after", range(5))
def test_mongo_interrupted_delete_is_finished_by_the_next(mongo_uri, node_id, crash_after):
    """A deletion that stopped after any of its steps is finished, exactly, by the next call."""
    kb = mongo_kb(mongo_uri, node_id)
    try:
        run(kb, MONGO_SCRIPT)
        doomed = [d.name for d in MONGO_SCRIPT[0].deltas[1:]] + [MONGO_SCRIPT[1].deltas[2].name]
        plan = kb._deletion_plan(doomed)
        token = "~delete-crashed"
        kb._pending_deletions.insert_one({"_id": token, "plan": encode_plan(plan, token, kb.kb_id, kb.DELETE_CHUNK)})
        for step in kb._deletion_steps(token, plan)[:crash_after]:
            step()
        resumed = mongo_kb(mongo_uri, node_id)   # a new process: only the database remembers
        assert resumed.delete_patterns([]) == 0 and resumed.delete_patterns([doomed[0]]) == 0
        symbols = ALPHABET + ["q", "r"]
        assert observable_state(resumed, symbols) == observable_state(survivors_only(MONGO_SCRIPT, set(doomed)), symbols)
        resumed.close()
    finally:
        kb.clear()
        kb.close()


def test_mongo_delete_in_chunks(mongo_uri, node_id):
    kb = mongo_kb(mongo_uri, node_id)
    kb.DELETE_CHUNK = 2
    try:
        names = [d.name for step in MONGO_SCRIPT for d in step.deltas]
        others = [name for name in names if name != names[0]]   # 4 patterns in 3 chunks, aba stays
        assert_deletes_match(kb, MONGO_SCRIPT, [["0" * 40] + others + others[:1]], symbols=ALPHABET + ["q", "r"])
        assert kb.count() == 1 and not list(kb._pending_deletions.find({}))
    finally:
        kb.clear()
        kb.close()
