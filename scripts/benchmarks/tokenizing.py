"""Tokenizer throughput: tokens/s of ``tokenize_batch`` on KJV paragraphs, in one process.

    python scripts/benchmarks/tokenizing.py                      # GPT-2 and the built-in default
    python scripts/benchmarks/tokenizing.py --tokenizer gpt2 --repeat 5
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import time
from pathlib import Path
from typing import Sequence

from katoray.text import load_tokenizer, split_paragraphs

SHARED = Path(__file__).resolve().parents[3] / "shared"
KJV_BOOKS = SHARED / "data" / "kjv" / "kjv_books.jsonl.gz"
GPT2_DIR = SHARED / "tokenizers" / "gpt2"
BATCH = 256                         # paragraphs per tokenize_batch call


def kjv_paragraphs(path: Path = KJV_BOOKS) -> list[str]:
    """Every paragraph of the KJV (a chapter's verses are one paragraph): 1,189 texts, 4.1 MB."""
    with gzip.open(path, "rt", encoding="utf-8") as rows:
        books = [json.loads(line)["text"] for line in rows]
    return [p for text in books for p in split_paragraphs(text).paragraphs
            if not p.startswith("CHAPTER ")]


def bench_tokenize(tokenizer_path: str | None, texts: Sequence[str], repeat: int = 3) -> dict:
    """Best of ``repeat`` passes over ``texts`` in batches of BATCH: of the tokenizer itself
    (``tokenize_batch_direct``), and of ``tokenize_batch`` through the per-word cache, starting
    empty (``cold``: each pass on a fresh copy) and full (``warm``: the KJV's words known).
    Rates per wall second and per CPU second (the Rust tokenizer runs on a thread pool, the
    cache's lookups on one thread)."""
    tokenizer = load_tokenizer(tokenizer_path)
    row = {"tokenizer": tokenizer.name, "texts": len(texts), "chars": sum(map(len, texts)),
           "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "(default)")}
    for key, make in (("direct", lambda: tokenizer.tokenize_batch_direct),
                      ("cached_cold", lambda: pickle.loads(pickle.dumps(tokenizer)).tokenize_batch),
                      ("cached_warm", lambda: tokenizer.tokenize_batch)):
        tokens, wall, cpu = timed_tokenize(make, texts, repeat)
        if row.setdefault("tokens", tokens) != tokens:
            raise AssertionError(f"{tokenizer.name}: {key} gave {tokens} tokens, the tokenizer {row['tokens']}")
        row[key] = {"seconds": wall, "tokens_per_sec": tokens / wall, "tokens_per_cpu_sec": tokens / cpu}
    return row


def timed_tokenize(make_tokenize, texts: Sequence[str], repeat: int = 1,
                   batch: int = BATCH) -> tuple[int, float, float]:
    """(tokens, best wall seconds, best CPU seconds of this process) of ``repeat`` passes over
    ``texts`` in calls of ``batch`` texts, each pass with a ``make_tokenize()`` made untimed."""
    best_wall = best_cpu = float("inf")
    tokens = 0
    for _ in range(repeat):
        tokenize_batch = make_tokenize()
        wall, cpu = time.perf_counter(), time.process_time()
        tokens = sum(len(pieces) for i in range(0, len(texts), batch)
                     for pieces in tokenize_batch(texts[i:i + batch]))
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    return tokens, best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", action="append",
                        help="name or folder (repeatable); default: GPT-2 and katoray-bytes")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    texts = kjv_paragraphs()
    for name in args.tokenizer or [str(GPT2_DIR), "katoray-bytes"]:
        result = bench_tokenize(name, texts, args.repeat)
        rates = ", ".join(f"{key} {result[key]['tokens_per_sec']:,.0f}/s ({result[key]['tokens_per_cpu_sec']:,.0f}"
                          f"/CPU s)" for key in ("direct", "cached_cold", "cached_warm"))
        print(f"{result['tokenizer']}: {result['tokens']:,} tokens; {rates}")


if __name__ == "__main__":
    main()
