"""Tokenizer throughput: tokens/s of ``tokenize_batch`` on KJV paragraphs, in one process.

    python scripts/benchmarks/tokenizing.py                      # GPT-2 and the built-in default
    python scripts/benchmarks/tokenizing.py --tokenizer gpt2 --repeat 5
"""
from __future__ import annotations

import argparse
import os
import gzip
import json
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
    """Best of ``repeat`` passes of ``tokenize_batch`` over ``texts`` in batches of BATCH."""
    tokenizer = load_tokenizer(tokenizer_path)
    best, tokens = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = sum(len(pieces) for i in range(0, len(texts), BATCH)
                     for pieces in tokenizer.tokenize_batch(texts[i:i + BATCH]))
        best = min(best, time.perf_counter() - start)
    return {"tokenizer": tokenizer.name, "texts": len(texts), "chars": sum(map(len, texts)),
            "tokens": tokens, "seconds": best, "tokens_per_sec": tokens / best,
            "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "(default)")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", action="append",
                        help="name or folder (repeatable); default: GPT-2 and katoray-bytes")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    texts = kjv_paragraphs()
    for name in args.tokenizer or [str(GPT2_DIR), "katoray-bytes"]:
        result = bench_tokenize(name, texts, args.repeat)
        print(f"{result['tokenizer']}: {result['tokens']:,} tokens in {result['seconds']:.3f} s "
              f"= {result['tokens_per_sec']:,.0f} tokens/s")


if __name__ == "__main__":
    main()
