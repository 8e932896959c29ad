"""Shards and batches: positional ids, cuts at max_samples, batches closed at a size."""
from __future__ import annotations

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
