"""SQLite bulk apply per hierarchy level: the writes training sends to node0 and node1.

The batches are training's own: the KJV cut into training batches (``iter_batches``, default
``Batching``), each mapped by ``HierarchyMapper.map_batch`` (GPT-2 tokens, 4 levels of chunk 8,
metadata on levels 1-3) into the wire payloads a ``NodeActor`` receives, decoded to
``DeltaColumns`` as the node does: 12 batches per level, node0's of ~10k patterns of 8 GPT-2
tokens, node1's of ~1.3k patterns of 8 ``PTRN|<sha1>`` names (nearly all new symbols) with
metadata (source, doc_id, title).

Each level's batches go, in order and with batch ids, through ``apply_columns`` into a fresh
file; only the applies are timed. Reported per level: patterns/s (wall) and CPU µs per pattern
(this process; meaningful on a shared machine), best of ``repeat`` fresh files.

    python -m scripts.benchmarks.sqlite_levels --corpus ../shared/data/kjv/kjv_books.jsonl.gz \
        --tokenizer ../shared/tokenizers/gpt2
"""
from __future__ import annotations

import argparse
import functools
import gc
import json
import pickle
import tempfile
import time
from pathlib import Path

from katoray.store.base import DeltaColumns
from katoray.store.sqlite import SqliteStore

LEVELS = (0, 1)


@functools.lru_cache(maxsize=1)
def training_columns(corpus_path: str, tokenizer_path: str) -> tuple[list[DeltaColumns], ...]:
    """Per level (0, 1, ...), the ``DeltaColumns`` of every training batch, in batch order."""
    from katoray.config import HierarchyConfig
    from katoray.runtime.mapper import HierarchyMapper
    from katoray.store.wire import decode_payload
    from katoray.text.shards import encode_documents, iter_batches, plan_shards

    mapper = HierarchyMapper(HierarchyConfig(), tokenizer_path, "simple", "", run_id=None)
    levels: tuple[list[DeltaColumns], ...] = tuple([] for _ in range(mapper.config.num_levels))
    for shard in plan_shards(corpus_path):
        for batch_id, docs in iter_batches(shard):
            payloads = pickle.loads(mapper.map_batch(batch_id, encode_documents(docs))["deltas"])
            for columns, payload in zip(levels, payloads):
                columns.append(decode_payload(payload))
    return levels


def _timed_applies(path: Path, batches: list[DeltaColumns]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of applying ``batches`` into a new file."""
    store = SqliteStore(path, "bench_kato")
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for i, columns in enumerate(batches):
            if not store.apply_columns(columns, f"b{i:08d}"):
                raise AssertionError(f"{path}: batch {i} looked applied already; the file was not new")
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        store.close()


def bench_sqlite_levels(corpus_path: str | Path, tokenizer_path: str | Path, levels=LEVELS,
                        repeat: int = 3) -> list[dict]:
    """One JSON-ready row per level: best-of-``repeat`` apply rate and CPU µs per pattern."""
    columns = training_columns(str(corpus_path), str(tokenizer_path))
    # The inputs stay alive for the whole run; freezing keeps the collector from re-scanning them
    # (a node actor's heap holds one batch, not the map of the whole corpus).
    gc.collect()
    gc.freeze()
    try:
        with tempfile.TemporaryDirectory(prefix="katoray-bench-") as tmp:
            return [_level_row(level, columns[level], Path(tmp), repeat) for level in levels]
    finally:
        gc.unfreeze()


def _level_row(level: int, batches: list[DeltaColumns], tmp: Path, repeat: int) -> dict:
    patterns = sum(map(len, batches))
    runs = [_timed_applies(tmp / f"node{level}-{r}.sqlite", batches) for r in range(repeat)]
    wall, cpu = min(run[0] for run in runs), min(run[1] for run in runs)
    return {"level": level, "batches": len(batches), "patterns": patterns,
            "patterns_per_apply": round(patterns / len(batches)),
            "symbols_per_pattern": round(sum(len(s) for b in batches for s in b.symbols) / patterns, 2),
            "patterns_per_s": round(patterns / wall), "cpu_us_per_pattern": round(1e6 * cpu / patterns, 2),
            "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="jsonl.gz with a 'text' field per line")
    parser.add_argument("--tokenizer", required=True, help="Hugging Face tokenizer directory")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for row in bench_sqlite_levels(args.corpus, args.tokenizer, tuple(args.levels), args.repeat):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
