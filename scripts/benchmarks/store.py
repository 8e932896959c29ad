"""Knowledge-base write throughput on real text: distinct new patterns applied per second.

Patterns are what node0 learns in chunking mode: runs of 8 GPT-2 tokens of the KJV, one token per
event, named with KATO's hash. Each store gets ``n_patterns`` distinct new patterns in batches of
``batch_size`` deltas (one ``apply`` = one transaction on SQLite), then the same patterns again
(re-learn: frequency updates only). Tokenizing is not timed; only ``apply`` is.

    python -m scripts.benchmarks.store --corpus ../shared/data/kjv/kjv_books.jsonl.gz \
        --tokenizer ../shared/tokenizers/gpt2 --stores memory:// sqlite:////tmp/kb_bench
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import time
from pathlib import Path

from katoray.engine.naming import pattern_hash
from katoray.store import open_store
from katoray.store.base import PatternDelta

CHUNK = 8          # tokens per pattern (the notebook's node0 chunk size)
KB_ID = "bench_node0_kato"


@functools.lru_cache(maxsize=2)
def _book_tokens(corpus_path: str, tokenizer_path: str) -> tuple[tuple[str, ...], ...]:
    """GPT-2 token strings of every book in a ``{"text": ...}`` jsonl.gz corpus."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    with gzip.open(corpus_path, "rt", encoding="utf-8") as lines:
        return tuple(tuple(tokenizer.tokenize(json.loads(line)["text"])) for line in lines)


def kjv_patterns(corpus_path: str | Path, tokenizer_path: str | Path, n_patterns: int) -> list[PatternDelta]:
    """``n_patterns`` distinct 8-token patterns, in text order.

    Chunks start at offset 0 of each book; if that is not enough, at offsets 1..7 (other chunk
    boundaries give other patterns).
    """
    books = _book_tokens(str(corpus_path), str(tokenizer_path))
    chunks = (tokens[start:start + CHUNK] for offset in range(CHUNK) for tokens in books
              for start in range(offset, len(tokens) - CHUNK + 1, CHUNK))
    return distinct_deltas(chunks, n_patterns, str(corpus_path))


def distinct_deltas(chunks, n_patterns: int, source: str) -> list[PatternDelta]:
    """The first ``n_patterns`` distinct patterns of ``chunks`` (one token per event), in order."""
    deltas: dict[str, PatternDelta] = {}
    for chunk in chunks:
        events = [[token] for token in chunk]
        name = pattern_hash(events)
        if name not in deltas:
            deltas[name] = PatternDelta(name, events)
            if len(deltas) == n_patterns:
                return list(deltas.values())
    raise ValueError(f"{source} gives only {len(deltas)} distinct {CHUNK}-token patterns; "
                     f"ask for n_patterns <= {len(deltas)}")


def _timed_applies(store, deltas: list[PatternDelta], batch_size: int, tag: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time stays meaningful on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(deltas), batch_size):
        store.apply(deltas[i:i + batch_size], batch_id=f"{tag}-{i:09d}")
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_store(store_url: str, n_patterns: int, batch_size: int, *,
                corpus_path: str | Path, tokenizer_path: str | Path) -> dict:
    """Apply throughput of the (empty) store at ``store_url`` for real-text patterns.

    Returns a JSON-ready dict: ``new_per_s`` (distinct new patterns per wall-clock second),
    ``relearn_per_s`` (the same patterns again), the same per CPU second of this process
    (``*_per_cpu_s``), their seconds, and the sizes involved.

    Raises:
        ValueError: the store already holds patterns (a benchmark never writes into real data),
            or the corpus has fewer than ``n_patterns`` distinct patterns.
    """
    deltas = kjv_patterns(corpus_path, tokenizer_path, n_patterns)
    store = open_store(store_url, KB_ID)
    try:
        if store.count():
            raise ValueError(f"store {store_url!r} (kb {KB_ID}) is not empty; benchmark into a new location")
        new_s, new_cpu = _timed_applies(store, deltas, batch_size, "new")
        relearn_s, relearn_cpu = _timed_applies(store, deltas, batch_size, "again")
        if store.count() != n_patterns:
            raise AssertionError(f"{store_url}: {store.count()} patterns stored, expected {n_patterns}")
    finally:
        store.close()
    return {"store": store_url, "n_patterns": n_patterns, "batch_size": batch_size,
            "new_seconds": round(new_s, 3), "new_per_s": round(n_patterns / new_s),
            "new_per_cpu_s": round(n_patterns / new_cpu),
            "relearn_seconds": round(relearn_s, 3), "relearn_per_s": round(n_patterns / relearn_s),
            "relearn_per_cpu_s": round(n_patterns / relearn_cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="jsonl.gz with a 'text' field per line")
    parser.add_argument("--tokenizer", required=True, help="Hugging Face tokenizer directory or name")
    parser.add_argument("--stores", nargs="+", default=["memory://"], help="empty store URLs to test")
    parser.add_argument("--n-patterns", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    args = parser.parse_args()
    for url in args.stores:
        print(json.dumps(bench_store(url, args.n_patterns, args.batch_size,
                                     corpus_path=args.corpus, tokenizer_path=args.tokenizer)))


if __name__ == "__main__":
    main()
