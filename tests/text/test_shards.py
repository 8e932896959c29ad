"""Shards and batches: positional ids, cuts at max_samples, batches closed at a size."""
from __future__ import annotations

import dataclasses

from katoray.config import Batching
from katoray.text.shards import Shard, iter_batches, plan_shards


def test_plan_shards_cuts_at_max_samples(ten_books):
    shards = plan_shards(str(ten_books), max_samples=6)
    assert [(s.name, s.limit) for s in shards] == [("a.jsonl", 4), ("b.jsonl", 2)]
    assert [(s.name, s.limit) for s in plan_shards(str(ten_books))] == [("a.jsonl", None), ("b.jsonl", None),
                                                                     ("c.txt", None)]
    assert plan_shards(str(ten_books / "b.jsonl"), max_samples=3) == [
        Shard(0, "file", str((ten_books / "b.jsonl").resolve()), "b.jsonl", 3)]


def test_batches_have_positional_ids_and_close_at_a_size(ten_books):
    shard, = plan_shards(str(ten_books / "a.jsonl"))
    batches = list(iter_batches(shard, Batching(batch_size=3, batch_chars=15000)))
    sizes = [sum(len(d.text) for d in docs) for _, docs in batches]
    assert [bid for bid, _ in batches] == [f"s00000-b0000000{i}" for i in range(len(batches))]
    assert [len(docs) for _, docs in batches] == [2, 2]         # Ruth alone is 13k characters
    assert all(size >= 15000 for size in sizes[:-1])
    assert [d.doc_id for _, docs in batches for d in docs] == [f"a.jsonl#{i}" for i in range(4)]
    skipped = list(iter_batches(shard, Batching(batch_size=3, batch_chars=15000), frozenset({"s00000-b00000000"})))
    assert skipped == batches[1:]


def _corpus_of(tmp_path, docs: int, chars: int):
    import json

    path = tmp_path / "even.jsonl"
    path.write_text("".join(json.dumps({"text": f"{i:05d} " + "x" * (chars - 6)}) + "\n" for i in range(docs)))
    shard, = plan_shards(str(path))
    return shard


def test_the_first_shards_first_batches_grow_from_first_batch_chars(tmp_path):
    """The first shard's first batches close at 1, 2, 4, ... times first_batch_chars, then at
    batch_chars; the other shards' at batch_chars; where the batches fall depends on the shard and
    the batching alone (skipping some moves none)."""
    shard = _corpus_of(tmp_path, 100, 1000)
    assert shard.index == 0
    batching = Batching(batch_chars=16_000, first_batch_chars=2_000)
    assert [batching.chars_limit(0, i) for i in range(6)] == [2_000, 4_000, 8_000, 16_000, 16_000, 16_000]
    assert [batching.chars_limit(1, i) for i in range(3)] == [16_000] * 3
    batches = list(iter_batches(shard, batching))
    assert [len(docs) for _, docs in batches] == [2, 4, 8, 16, 16, 16, 16, 16, 6]
    assert [d.doc_id for _, docs in batches for d in docs] == [f"even.jsonl#{i}" for i in range(100)]
    skip = frozenset({batches[0][0], batches[2][0]})
    assert list(iter_batches(shard, batching, skip)) == [b for b in batches if b[0] not in skip]
    assert [len(docs) for _, docs in iter_batches(shard, Batching(batch_chars=16_000, first_batch_chars=None))] == \
        [16] * 6 + [4]
    assert [len(docs) for _, docs in iter_batches(shard, Batching(batch_chars=None, first_batch_chars=2_000))] == [100]
    second = dataclasses.replace(shard, index=1)
    assert [len(docs) for _, docs in iter_batches(second, batching)] == [16] * 6 + [4]
    assert Batching(batch_chars=3_000, first_batch_chars=5_000).chars_limit(0, 0) == 3_000   # never above batch_chars
    assert Batching().chars_limit(0, 10 ** 9) == Batching().batch_chars


def test_the_default_first_batches_on_the_kjv(kjv_books_path):
    """At the defaults a first batch closes at the first book past 64 KiB, and the KJV's books
    make 7 batches (4 without the ramp)."""
    shard, = plan_shards(str(kjv_books_path))
    ramped = [docs for _, docs in iter_batches(shard, Batching())]
    assert len(ramped[0]) == 1 and len(ramped) == 7
    assert len(list(iter_batches(shard, Batching(first_batch_chars=None)))) == 4


def test_the_batching_fingerprint_names_the_ramp_and_keeps_older_runs_keys(tmp_path):
    """Batch ids mean other documents with another first batch, so the idempotency keys' fingerprint
    changes with it; without a ramp it is the fingerprint katoray gave before the ramp existed (a
    resumed older run must find its own keys in the ledgers)."""
    import hashlib
    import json

    from katoray.text.shards import batching_fingerprint

    shards = [_corpus_of(tmp_path, 3, 100)]
    plain = Batching(first_batch_chars=None)
    before = {"shards": [s.identity() for s in shards], "text_field": "text", "batch_size": plain.batch_size,
              "batch_chars": plain.batch_chars}
    assert batching_fingerprint(plain, shards) == \
        hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    ramps = {batching_fingerprint(Batching(first_batch_chars=n), shards) for n in (1_000, 65_536)}
    assert len(ramps) == 2 and batching_fingerprint(plain, shards) not in ramps
