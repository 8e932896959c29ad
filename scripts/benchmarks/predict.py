"""Prediction latency on real text: ``predict`` (symbol index + exact bounds) vs ``predict_full_scan``.

The KB holds what node0 learns in chunking mode: runs of 8 GPT-2 tokens of the KJV, one token per
event, named with KATO's hash, in a ``memory://`` store and in a SQLite file (which predicts
through an id view read from the file on the first call). Chunks are taken from every book at
offsets 0..7 (every 8-token window of the text), then from the verse file (one verse at a time,
reference included), until ``n_patterns`` distinct patterns exist. Queries are STMs of 8 tokens
(one per event) from windows at seeded random positions of the books. Only the prediction call is
timed; the default ``SessionConfig`` applies (recall_threshold 0.1, max_predictions 100).

    python -m scripts.benchmarks.predict --sizes 10000 100000 1000000 --queries 50
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Iterator

from katoray.engine.config import SessionConfig
from katoray.engine.predict import predict, predict_full_scan
from katoray.store.base import PatternDelta
from katoray.store.memory import MemoryStore
from katoray.store.sqlite import SqliteStore
from scripts.benchmarks.store import distinct_deltas

SHARED = Path(__file__).resolve().parents[3] / "shared"
KJV_BOOKS = SHARED / "data" / "kjv" / "kjv_books.jsonl.gz"
KJV_VERSES = SHARED / "data" / "kjv" / "kjv_verses.txt.gz"
GPT2 = SHARED / "tokenizers" / "gpt2"
CHUNK = 8           # tokens per pattern and per query STM
APPLY_BATCH = 10_000


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def book_tokens(books_path: Path = KJV_BOOKS, tokenizer_path: Path = GPT2) -> list[list[str]]:
    tokenizer = _tokenizer(tokenizer_path)
    with gzip.open(books_path, "rt", encoding="utf-8") as lines:
        return [tokenizer.tokenize(json.loads(line)["text"]) for line in lines]


def verse_tokens(verses_path: Path = KJV_VERSES, tokenizer_path: Path = GPT2) -> list[list[str]]:
    tokenizer = _tokenizer(tokenizer_path)
    with gzip.open(verses_path, "rt", encoding="utf-8") as lines:
        return [tokenizer.tokenize(line.rstrip("\n")) for line in lines if line.strip()]


def _chunks(texts: list[list[str]]) -> Iterator[list[str]]:
    for offset in range(CHUNK):
        for tokens in texts:
            for start in range(offset, len(tokens) - CHUNK + 1, CHUNK):
                yield tokens[start:start + CHUNK]


def kjv_deltas(n_patterns: int, books: list[list[str]], verses: list[list[str]]) -> list[PatternDelta]:
    """``n_patterns`` distinct 8-token patterns (one token per event), books first, then verses."""
    chunks = (chunk for texts in (books, verses) for chunk in _chunks(texts))
    return distinct_deltas(chunks, n_patterns, "the KJV")


def build_kb(deltas: list[PatternDelta], backend: str = "memory", directory: Path | None = None):
    """The KB of ``deltas`` in a ``memory`` store, or a ``sqlite`` file in ``directory``."""
    kb = MemoryStore("bench_predict_kato") if backend == "memory" else \
        SqliteStore(Path(directory) / f"predict-{len(deltas)}.sqlite", "bench_predict_kato")
    for i in range(0, len(deltas), APPLY_BATCH):
        kb.apply(deltas[i:i + APPLY_BATCH])
    return kb


def query_stms(books: list[list[str]], n_queries: int, seed: int = 0) -> list[list[list[str]]]:
    """``n_queries`` STMs of 8 consecutive book tokens, one per event, at seeded positions."""
    rng = random.Random(seed)
    weights = [max(0, len(tokens) - CHUNK + 1) for tokens in books]
    stms = []
    for _ in range(n_queries):
        tokens = rng.choices(books, weights=weights)[0]
        start = rng.randrange(len(tokens) - CHUNK + 1)
        stms.append([[token] for token in tokens[start:start + CHUNK]])
    return stms


def _timed(fn, kb, stms, config) -> dict:
    """Wall-clock p50/p95 and CPU p50 (process time: robust on a shared machine) in ms."""
    wall, cpu = [], []
    for stm in stms:
        started, started_cpu = time.perf_counter(), time.process_time()
        fn(kb, stm, config)
        wall.append((time.perf_counter() - started) * 1000.0)
        cpu.append((time.process_time() - started_cpu) * 1000.0)
    wall.sort()
    return {"p50_ms": round(statistics.median(wall), 2),
            "p95_ms": round(wall[min(len(wall) - 1, int(0.95 * len(wall)))], 2),
            "cpu_p50_ms": round(statistics.median(cpu), 2), "n": len(wall)}


def bench_predict(n_patterns_list=(10_000, 100_000, 1_000_000), n_queries: int = 50,
                  full_scan_queries: int = 5, full_scan_max_patterns: int = 100_000,
                  config: SessionConfig | None = None, seed: int = 0,
                  backends: tuple[str, ...] = ("memory", "sqlite")) -> list[dict]:
    """p50/p95 latency of ``predict`` and ``predict_full_scan`` per KB size and backend.

    ``predict`` runs ``n_queries`` STMs twice: an untimed cold pass (its total seconds are
    reported, and for SQLite the first call's: it reads the file's id view) and the timed pass.
    ``predict_full_scan`` runs the first ``full_scan_queries`` of them, only for KBs of at most
    ``full_scan_max_patterns`` (it scores every pattern). Each size also checks that both return
    equal results on the STMs both ran. Returns one JSON-ready dict per size and backend.
    """
    config = config or SessionConfig()
    books, verses = book_tokens(), verse_tokens()
    stms = query_stms(books, n_queries, seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="katoray-bench-") as tmp:
        for n_patterns in n_patterns_list:
            deltas = kjv_deltas(n_patterns, books, verses)
            for backend in backends:
                kb = build_kb(deltas, backend, Path(tmp))
                rows.append(_size_row(kb, backend, n_patterns, stms, config, full_scan_queries,
                                      full_scan_max_patterns))
                kb.close()
                del kb
    return rows


def _size_row(kb, backend: str, n_patterns: int, stms, config, full_scan_queries: int,
              full_scan_max_patterns: int) -> dict:
    gc.collect()
    gc.freeze()  # the KB is long-lived: keep the collector from rescanning it on every query
    try:
        started = time.perf_counter()
        predict(kb, stms[0], config)
        first_call_s = time.perf_counter() - started
        for stm in stms[1:]:  # cold pass
            predict(kb, stm, config)
        row = {"backend": backend, "n_patterns": n_patterns, "first_call_s": round(first_call_s, 2),
               "cold_pass_s": round(time.perf_counter() - started, 1), "predict": _timed(predict, kb, stms, config)}
        if n_patterns <= full_scan_max_patterns and full_scan_queries:
            few = stms[:full_scan_queries]
            row["full_scan"] = _timed(predict_full_scan, kb, few, config)
            row["predict_same_stms"] = _timed(predict, kb, few, config)
            row["speedup_cpu_p50"] = round(row["full_scan"]["cpu_p50_ms"] / row["predict_same_stms"]["cpu_p50_ms"], 1)
            row["equal"] = all(predict(kb, s, config) == predict_full_scan(kb, s, config) for s in few)
        return row
    finally:
        gc.unfreeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--full-scan-queries", type=int, default=5)
    parser.add_argument("--full-scan-max", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for row in bench_predict(args.sizes, args.queries, args.full_scan_queries, args.full_scan_max,
                             seed=args.seed):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
