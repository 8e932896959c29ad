"""Node ingest: how fast one shard actor takes a level's deltas, fed as fast as it accepts them.

The KJV is mapped once, as training maps it (GPT-2 tokens, the run's batches, 4 levels of chunk
8), and every batch's deltas are encoded per shard in advance. Then, for each level and each
shard count S, one ``NodeActor`` (the runtime's own, a Ray actor over a fresh SQLite KB) is sent
shard 0's part of every batch with two calls in flight, so it never waits for the sender.
Reported per (level, S): the actor's wall seconds, its own CPU seconds, and the rate in corpus
tokens per second: one shard of S takes 1/S of the level's patterns of every batch, so S
shards on S cores take the level's share of the corpus S times this fast when S cores are free.

``mapper_tokens_per_cpu_sec`` is the pool's cost in the same run: one process tokenizing (through
katoray's per-word cache, as a pool actor does) and mapping the same batches, per CPU second.
``table`` is the expected steady throughput for M mapper cores and S shards per level, each on
its own core: the pool gives M x the mapper rate, each level S x its per-shard rate, and the
run goes as fast as the slowest of them.

    python -m scripts.benchmarks.ingest --corpus ../shared/data/kjv/kjv_books.jsonl.gz \
        --tokenizer ../shared/tokenizers/gpt2 --shards 1 2 4
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

IN_FLIGHT = 2   # apply calls outstanding: the next batch is already queued when one returns


def mapped_batches(corpus: str | Path, tokenizer: str | Path, levels: int, chunk: int) -> tuple[list, int, float]:
    """[(batch id, tokens, [LevelDeltas per level])] of the corpus as training batches and maps
    it, the corpus' token count, and the CPU seconds per token of tokenizing + mapping them."""
    from katoray.config import Batching, HierarchyConfig
    from katoray.hierarchy.mapping import HierarchyDeltas
    from katoray.hierarchy.prepare import DocumentPreparer
    from katoray.text.shards import iter_batches, plan_shards

    config = HierarchyConfig("chunking", (chunk,) * levels, frozenset(range(1, levels)))
    preparer = DocumentPreparer(str(tokenizer), "simple", "chunking")
    batches, tokens = [], 0
    cpu = time.process_time()
    for shard in plan_shards(str(corpus)):
        for batch_id, docs in iter_batches(shard, Batching()):
            acc = HierarchyDeltas(config)
            for doc in preparer.prepare(docs):
                acc.add(doc)
            batches.append((batch_id, acc.tokens, acc.levels))
            tokens += acc.tokens
    return batches, tokens, (time.process_time() - cpu) / tokens


def ingest(batches: list, level: int, shards: int, store_dir: Path) -> dict:
    """One shard actor (shard 0 of ``shards``) fed its part of every batch of ``level``."""
    import ray

    from katoray.runtime.node import NodeActor
    from katoray.runtime.options import node_actor_options

    parts = [(batch_id, levels[level].encode_shards(shards)[0]) for batch_id, _, levels in batches]
    run_id = f"ingest-{level}-{shards}-{os.getpid()}"
    actor = ray.remote(NodeActor).options(**node_actor_options(run_id, level)).remote(
        f"sqlite:///{store_dir}", f"node{level}", None, 16, f"node{level}_{run_id}")
    ray.get(actor.ready.remote())
    cpu_before = ray.get(actor.stats.remote())["cpu_seconds"]
    started = time.perf_counter()
    pending: list = []
    for batch_id, payload in parts:
        if len(pending) >= IN_FLIGHT:
            done, pending = ray.wait(pending, num_returns=1)
            ray.get(done)
        pending.append(actor.apply_counted.remote(batch_id, payload))
    ray.get(pending)
    seconds = time.perf_counter() - started
    stats = ray.get(actor.stats.remote())
    ray.kill(actor)
    return {"level": level, "shards": shards, "patterns": stats["patterns"], "seconds": round(seconds, 3),
            "cpu_seconds": round(stats["cpu_seconds"] - cpu_before, 3)}


def bench_ingest(corpus: str | Path, tokenizer: str | Path, shard_counts: Sequence[int] = (1, 2, 4), levels: int = 4,
                 chunk: int = 8, mapper_cores: Sequence[int] = (1, 2, 4, 8, 16, 32, 64)) -> dict:
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    batches, tokens, mapper_cpu_per_token = mapped_batches(corpus, tokenizer, levels, chunk)
    rows = []
    with tempfile.TemporaryDirectory(prefix="katoray-ingest-") as tmp:
        for level in range(levels):
            for shards in shard_counts:
                row = ingest(batches, level, shards, Path(tmp) / f"l{level}s{shards}")
                row["tokens_per_sec"] = round(tokens / row["seconds"])
                row["tokens_per_cpu_sec"] = round(tokens / row["cpu_seconds"]) if row["cpu_seconds"] else None
                rows.append(row)
    mapper_rate = 1 / mapper_cpu_per_token
    return {"tokens": tokens, "batches": len(batches), "mapper_tokens_per_cpu_sec": round(mapper_rate),
            "shards": rows, "table": throughput_table(rows, mapper_rate, mapper_cores, shard_counts)}


def throughput_table(rows: list[dict], mapper_rate: float, mapper_cores: Sequence[int],
                     shard_counts: Sequence[int]) -> list[dict]:
    """Expected tokens/s for M mapper cores and S shards per level (each actor on its own core):
    min(M x mapper rate, min over levels of S x that level's per-shard rate), and what limits it."""
    by = {(r["level"], r["shards"]): r["tokens_per_cpu_sec"] or r["tokens_per_sec"] for r in rows}
    levels = sorted({r["level"] for r in rows})
    table = []
    for shards in shard_counts:
        level_limits = {level: shards * by[level, shards] for level in levels}
        slowest = min(level_limits, key=level_limits.get)
        for cores in mapper_cores:
            pool = cores * mapper_rate
            limit = min(pool, level_limits[slowest])
            table.append({"mapper_cores": cores, "shards": shards, "tokens_per_sec": round(limit),
                          "limited_by": "mappers" if pool <= level_limits[slowest] else f"node{slowest}"})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(json.dumps(bench_ingest(args.corpus, args.tokenizer, args.shards), indent=2))


if __name__ == "__main__":
    main()
