"""A sharded level (``store.sharded``) answers exactly as one knowledge base: the congruence suite
runs again with the ``kb`` fixture replaced by ``ShardedStore`` over three shards of each backend,
and MemoryStore fed the same script stays the reference."""
from __future__ import annotations

from collections import Counter
from hashlib import sha1

import pytest

from katoray.engine.naming import pattern_hash
from katoray.store import kb_id_for, open_store
from katoray.store.base import DeltaColumns, PatternDelta, ShardedKnowledgeBase, shards_of
from katoray.store.memory import MemoryStore
from katoray.store.naming import run_kb_id, run_of_kb_id, shard_kb_id
from katoray.store.sharded import ShardedStore, open_level, shard_of, split_columns
from tests.store.test_congruence import (  # noqa: F401  (collected here again, over the sharded kb below)
    Apply, assert_same_as_memory, delta, observable_state, test_aggregates,
    test_aggregates_stream_without_iter_patterns, test_apply_and_apply_columns_share_the_batch_ledger,
    test_apply_columns, test_bad_apply_knobs_are_refused_before_any_write, test_batch_ids_are_idempotent,
    test_clear_empties_everything, test_counts_and_repeated_symbols, test_delete_everything_leaves_an_empty_kb,
    test_delete_forgets_symbols_no_pattern_holds, test_delete_patterns, test_emotives_window,
    test_empty_batch_is_recorded, test_get_pattern_and_get_patterns, test_iter_patterns_sorted_by_name,
    test_many_patterns_share_symbols, test_metadata_cap_keeps_smallest, test_metadata_union, test_new_pattern,
    test_pattern_rows_are_every_pattern, test_persistence_per_apply, test_random_columns_match_memory,
    test_random_deletes_match_memory, test_random_scripts_match_memory, test_relearned_pattern_adds_frequency_not_pmf,
    test_same_name_twice_in_one_batch, test_sample_by_frequency_is_weighted_seeded_and_without_replacement,
    test_size_on_disk, test_unknown_symbols)

SHARDS = 3


@pytest.fixture
def kb(store_url, node_id):
    """Three shards of one backend, as one knowledge base (overrides conftest's ``kb`` here)."""
    store = ShardedStore([open_store(store_url, kb_id_for(f"{node_id}s{i}")) for i in range(SHARDS)])
    yield store
    store.clear()
    store.close()


# -- which shard holds a pattern --------------------------------------------------------------------
def test_a_pattern_s_shard_is_its_name_s_first_hex_digits():
    name = pattern_hash([["a"], ["b"]])
    assert shard_of(name, 1) == 0
    assert shard_of(name, 7) == int(name[:8], 16) % 7
    assert shard_of("not hex", 5) == int(sha1(b"not hex").hexdigest()[:8], 16) % 5   # no KATO name, still stable


def test_shards_fill_evenly():
    names = [pattern_hash([[str(i)], [str(i + 1)]]) for i in range(6000)]
    filled = Counter(shard_of(name, 4) for name in names)
    assert sorted(filled) == [0, 1, 2, 3] and min(filled.values()) > 1350   # 1500 each, give or take


def test_split_columns_keeps_each_row_with_its_metadata():
    rows = [delta(["a"], [str(i)], count=i + 1, metadata={"k": [f"v{i}"]} if i % 2 else None) for i in range(40)]
    columns = DeltaColumns([d.name for d in rows], [[e[0] for e in d.events] for d in rows], [d.count for d in rows],
                           {i: d.metadata for i, d in enumerate(rows) if d.metadata})
    parts = split_columns(columns, SHARDS)
    assert sum(map(len, parts)) == len(rows)
    for shard, part in enumerate(parts):
        for delta_ in part.to_deltas():
            assert shard_of(delta_.name, SHARDS) == shard
            original = next(d for d in rows if d.name == delta_.name)
            assert (delta_.events, delta_.count, delta_.metadata) == \
                (original.events, original.count, original.metadata)


# -- names of shard knowledge bases -----------------------------------------------------------------------
def test_shard_knowledge_bases_are_named_apart_and_read_back():
    assert shard_kb_id(0, "exp-1", 0, 1) == run_kb_id(0, "exp-1") == "node0_exp-1_kato"   # one shard: today's name
    names = [shard_kb_id(level, run, shard, 3) for level in (0, 1) for run in ("exp-1", "s1_exp-1")
             for shard in range(3)]
    assert names[:3] == ["node0s0_exp-1_kato", "node0s1_exp-1_kato", "node0s2_exp-1_kato"]
    assert len(set(names) | {run_kb_id(0, "exp-1"), run_kb_id(0, "s1_exp-1")}) == len(names) + 2
    assert [run_of_kb_id(name) for name in names[:4]] == [(0, "exp-1")] * 3 + [(0, "s1_exp-1")]
    with pytest.raises(ValueError, match="0..2"):
        shard_kb_id(0, "r", 3, 3)


def test_a_sharded_run_id_must_leave_room_for_its_shard_numbers():
    from katoray.config import TrainConfig, check_run_id
    from katoray.errors import ConfigError
    from katoray.store.mongo_connect import check_db_name

    check_run_id("r" * 50)                              # unsharded: 50 characters, as before
    check_db_name(shard_kb_id(999, "r" * 48, 9, 10))   # "s9": two bytes
    with pytest.raises(ConfigError, match=r"node<level>s<shard>_<run id>_kato \(10 shards\).*at most 48 characters"):
        TrainConfig(run_id="r" * 49, shards=10)
    TrainConfig(run_id="r" * 48, shards=(1, 10, 1, 1))      # the most shards of any level counts


# -- writes across shards -----------------------------------------------------------------------------
def test_a_batch_cut_short_between_shards_is_completed_once():
    """The writer died after shard 0 took its part: the retry gives the others theirs, and shard 0
    recognises the batch (each shard keeps its own ledger)."""
    shards = [MemoryStore(f"s{i}") for i in range(SHARDS)]
    sharded = ShardedStore(shards)
    deltas = [delta([str(i)], [str(i + 1)]) for i in range(30)]
    shards[0].apply([d for d in deltas if shard_of(d.name, SHARDS) == 0], "b1")
    assert not sharded.is_applied("b1")
    assert sharded.apply(deltas, "b1") is True and sharded.is_applied("b1")
    assert sharded.apply(deltas, "b1") is False
    reference = MemoryStore("reference")
    reference.apply(deltas, "b1")
    assert observable_state(sharded) == observable_state(reference)


def test_claim_owner_names_another_run_holding_any_shard():
    shards = [MemoryStore(f"s{i}") for i in range(SHARDS)]
    shards[2].claim_owner("other run")
    assert ShardedStore(shards).claim_owner("this run") == "other run"
    assert ShardedStore([MemoryStore("a"), MemoryStore("b")]).claim_owner("this run") == "this run"


def test_distinct_symbols_are_counted_again_after_any_change():
    sharded = ShardedStore([MemoryStore(f"s{i}") for i in range(SHARDS)])
    reference = MemoryStore("reference")
    for step in range(6):
        deltas = [delta([f"x{step}"], [str(i)]) for i in range(step * 3, step * 3 + 5)]
        for kb in (sharded, reference):
            kb.apply(deltas)
        assert sharded.totals() == reference.totals()
    for kb in (sharded, reference):
        kb.delete_patterns([deltas[0].name, deltas[1].name])
    assert sharded.totals() == reference.totals()


def test_distinct_symbols_are_counted_again_when_new_contents_have_the_old_totals():
    """Found by the randomised congruence test: after ``clear``, patterns of the same sizes in the
    same shards give every shard its old totals, while the symbols they share across shards differ."""
    names = {shard: next(f"{i:08x}" + "0" * 32 for i in range(4096) if shard_of(f"{i:08x}" + "0" * 32, 2) == shard)
             for shard in (0, 1)}
    sharded = ShardedStore([MemoryStore("s0"), MemoryStore("s1")])
    sharded.apply([PatternDelta(names[0], [["a"], ["b"]], 1), PatternDelta(names[1], [["c"], ["d"]], 1)])
    assert sharded.totals().num_symbols == 4
    sharded.clear()
    sharded.apply([PatternDelta(names[0], [["a"], ["b"]], 1), PatternDelta(names[1], [["a"], ["b"]], 1)])
    assert sharded.totals().num_symbols == 2


def test_open_level_is_the_one_kb_or_its_shards(tmp_path):
    url = f"sqlite:///{tmp_path}"
    single = open_level(url, ["node0_r_kato"])
    assert not isinstance(single, ShardedKnowledgeBase) and shards_of(single) == (single,)
    level = open_level(url, [f"node0s{i}_r_kato" for i in range(SHARDS)])
    assert isinstance(level, ShardedKnowledgeBase) and [kb.kb_id for kb in shards_of(level)] == [
        "node0s0_r_kato", "node0s1_r_kato", "node0s2_r_kato"]
    level.apply([PatternDelta(pattern_hash([["a"], ["b"]]), [["a"], ["b"]])])
    assert level.count() == 1 and sorted(p.name for p in tmp_path.glob("*.sqlite")) == [
        "node0_r_kato.sqlite", "node0s0_r_kato.sqlite", "node0s1_r_kato.sqlite", "node0s2_r_kato.sqlite"]
    single.close()
    level.close()
