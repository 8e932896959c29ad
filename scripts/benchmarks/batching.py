"""What the batch size costs: the same training under several batchings, on long and short documents.

A batch is one knowledge-base write per level, and a write has costs that do not grow with the
batch (each symbol it touches is updated once, one transaction, one Ray task and acknowledgement
per level), so small batches pay them per few tokens. Two corpora, both the KJV: its 66 books
(long documents: the characters limit closes a batch) and its 31,102 verses, one document each
(short rows, as wikitext or web text: the documents limit closes it). For each batching
(documents, characters), one training run (GPT-2 tokens, 4 levels of chunk 8, SQLite, 2 workers,
one Ray for all runs, a warm-up run first): batches, seconds end to end, seconds to the first
batch, CPU seconds per role and CPU us per token in all. Each corpus is one shard, so its first
batches are the ramp of ``Batching.first_batch_chars`` where a batching has one.

    python -m scripts.benchmarks.batching --books ../shared/data/kjv/kjv_books.jsonl.gz \
        --verses ../shared/data/kjv/kjv_verses.txt.gz --tokenizer ../shared/tokenizers/gpt2
"""
from __future__ import annotations

import argparse
import gzip
import json
import tempfile
from pathlib import Path
from typing import Sequence

from katoray.config import DEFAULT_BATCH_CHARS, DEFAULT_BATCH_SIZE, DEFAULT_FIRST_BATCH_CHARS

# (documents, characters, characters of a shard's first batch) per batch: katoray's defaults before
# this benchmark, today's sizes without and with smaller first batches (today's defaults), and larger.
BATCHINGS = ((64, 262_144, None), (DEFAULT_BATCH_SIZE, DEFAULT_BATCH_CHARS, None),
             (DEFAULT_BATCH_SIZE, DEFAULT_BATCH_CHARS, DEFAULT_FIRST_BATCH_CHARS),
             (4 * DEFAULT_BATCH_SIZE, 4 * DEFAULT_BATCH_CHARS, DEFAULT_FIRST_BATCH_CHARS))
DEFAULTS = (DEFAULT_BATCH_SIZE, DEFAULT_BATCH_CHARS, DEFAULT_FIRST_BATCH_CHARS)


def verses_as_documents(verses: str | Path, dest: Path) -> Path:
    """``kjv_verses.txt.gz`` (``Ge1:1 In the beginning ...``, one verse per line) as a jsonl.gz of
    one document per verse, the reference dropped."""
    with gzip.open(verses, "rt", encoding="utf-8") as src, gzip.open(dest, "wt", encoding="utf-8") as out:
        for line in src:
            _reference, _, text = line.strip().partition(" ")
            if text:
                out.write(json.dumps({"text": text}) + "\n")
    return dest


def bench_batching(books: str | Path, verses: str | Path, tokenizer: str | Path,
                   batchings: Sequence[tuple[int, int, int | None]] = BATCHINGS, workers: int = 2,
                   levels: int = 4) -> list[dict]:
    from scripts.benchmarks.train import cpu_by_role, ensure_local_ray, train_once

    ensure_local_ray(levels, workers)
    root = Path(tempfile.mkdtemp(prefix="katoray-batching-"))
    corpora = {"books": Path(books), "verses": verses_as_documents(verses, root / "verses.jsonl.gz")}
    train_once(corpora["books"], tokenizer, workers, levels, 8, root / "warm-up", None, None, 1)
    rows = []
    for corpus, path in corpora.items():
        for documents, chars, first in batchings:
            stats = train_once(path, tokenizer, workers, levels, 8, root / f"{corpus}-{documents}-{chars}-{first}",
                               documents, chars, first_batch_chars=first)
            cpu = cpu_by_role(stats, levels)
            rows.append({"corpus": corpus, "batch_size": documents, "batch_chars": chars, "first_batch_chars": first,
                         "default": (documents, chars, first) == DEFAULTS,
                         "batches": stats["batches_processed"], "tokens": stats["tokens_processed"],
                         "seconds": round(stats["total_time_seconds"], 2),
                         "first_batch_seconds": round(stats["first_batch_seconds"], 2), **cpu,
                         "cpu_us_per_token": round(cpu["cpu_seconds"]["total"] / stats["tokens_processed"] * 1e6, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--books", required=True)
    parser.add_argument("--verses", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for row in bench_batching(args.books, args.verses, args.tokenizer, workers=args.workers):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
