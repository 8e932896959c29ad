"""Using a trained hierarchy: next-token accuracy and speed on held-out KJV books (issue 14's split).

Every 11th book is held out (zero-based 5, 16, ..., 60: Joshua, Esther, Hosea, Malachi,
Philippians, 2 Peter); the other 60 train a run (GPT-2, 4 levels of chunk 8, ``start_run`` on a
local Ray, 2 workers). ``evaluate`` then draws 400 positions of the held-out books (seed 0, the
7 tokens before each as context) and ranks next tokens with katoray's decoder (node0 alone, and
the whole hierarchy), the most frequent token and the infinity-gram over the run's training text.
Times are per position (p50, p95) on a shared machine: compare them within one run.

    python scripts/benchmark.py use
"""
from __future__ import annotations

import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

HELD_OUT_EVERY, HELD_OUT_FROM = 11, 5
POSITIONS, SEED = 400, 0


def split(kjv_books: Path, folder: Path) -> tuple[Path, Path]:
    """(training books, held-out books) as jsonl files in ``folder``."""
    with gzip.open(kjv_books, "rt", encoding="utf-8") as rows:
        books = rows.read().splitlines()
    train, held_out = folder / "train.jsonl", folder / "held_out.jsonl"
    train.write_text("".join(b + "\n" for i, b in enumerate(books) if i % HELD_OUT_EVERY != HELD_OUT_FROM))
    held_out.write_text("".join(b + "\n" for i, b in enumerate(books) if i % HELD_OUT_EVERY == HELD_OUT_FROM))
    return train, held_out


def bench_use(kjv_books: Path, gpt2: Path) -> list[dict]:
    import katoray
    from katoray.evaluation.evaluate import CONTEXT_TOKENS, build_baseline, evaluate
    from katoray.jobs import TrainConfig, start_run

    rows = []
    with tempfile.TemporaryDirectory(prefix="katoray-use-") as tmp:
        train, held_out = split(kjv_books, Path(tmp))
        started = time.perf_counter()
        stats = start_run(TrainConfig(data=str(train), tokenizer=str(gpt2), chunk_sizes=(8, 8, 8, 8), workers=2,
                                      runs_dir=f"{tmp}/runs", run_id="kjv-use", verbose=False))
        rows.append({"step": "train", "seconds": round(time.perf_counter() - started, 1),
                     "tokens": stats["tokens_processed"],
                     "patterns": [stats[f"node{i}_patterns"] for i in range(4)]})
        with katoray.open_run("kjv-use", runs_dir=f"{tmp}/runs") as hierarchy:
            started = time.perf_counter()
            hierarchy.decoder()
            index_s = time.perf_counter() - started
            started = time.perf_counter()
            baseline = build_baseline(hierarchy)
            rows.append({"step": "build", "index_seconds": round(index_s, 2),
                         "infinigram_seconds": round(time.perf_counter() - started, 2)})
            for levels in (1, None):
                result = evaluate(hierarchy, str(held_out), positions=POSITIONS, seed=SEED, levels=levels,
                                  baseline=baseline, details=True)
                contexts = [_context(hierarchy, held_out, row, CONTEXT_TOKENS) for row in result.pop("details")]
                rows.append({"step": "eval", "decoder": "node0 alone" if levels == 1 else "whole hierarchy",
                             **result, "katoray_ms": _percentiles(lambda c: hierarchy.next_tokens(c, 5, levels=levels),
                                                                  contexts),
                             "infinigram_ms": _percentiles(lambda c: baseline.top(c, 5), contexts)})
    return rows


_STREAMS: dict = {}


def _context(hierarchy, held_out: Path, row: dict, size: int) -> list[str]:
    from katoray.text.corpora import iter_local_documents

    if held_out not in _STREAMS:
        _STREAMS[held_out] = [d.tokens() for d in hierarchy.preparer.prepare(list(iter_local_documents(held_out)))]
    return _STREAMS[held_out][row["document"]][row["offset"] - size:row["offset"]]


def _percentiles(call, contexts: list) -> dict[str, float]:
    times = []
    for context in contexts:
        started = time.perf_counter()
        call(context)
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return {"p50": round(statistics.median(times), 3), "p95": round(cuts[18], 3)}


if __name__ == "__main__":
    here = Path(__file__).resolve()
    shared = here.parents[3] / "shared"
    for row in bench_use(shared / "data" / "kjv" / "kjv_books.jsonl.gz", shared / "tokenizers" / "gpt2"):
        print(json.dumps(row))
