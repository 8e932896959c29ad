"""Tokenizing alone vs tokenizing plus the full hierarchy map, same text, one process.

The map (names by hashing, per-level counting, 4 levels of chunk 8) should cost at most half as
much as tokenizing. Cost is CPU time (``time.process_time``: every thread of this process), which
is the fair measure: ``tokenize_batch`` runs the Rust tokenizer on a thread pool (2 threads on
these machines), while the map runs on one. Wall-clock rates and ratios are reported too.
Both sides tokenize with the tokenizer itself (``tokenize_batch_direct``): the per-word cache
training uses would answer the repeated passes from memory and blur the difference.
"""
from __future__ import annotations

import time
from typing import Sequence

from katoray.config import HierarchyConfig
from katoray.hierarchy.mapping import HierarchyDeltas, TokenizedDocument
from katoray.text import load_tokenizer
from scripts.benchmarks.tokenizing import BATCH


def _timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def bench_map(tokenizer_path: str | None, texts: Sequence[str], chunk_sizes=(8, 8, 8, 8), repeat: int = 3) -> dict:
    """Best-of-``repeat`` wall and CPU seconds of tokenize-only and tokenize+map over ``texts``
    (one document each)."""
    tokenizer = load_tokenizer(tokenizer_path)
    config = HierarchyConfig("chunking", tuple(chunk_sizes))

    def tokenize() -> int:
        return sum(len(p) for i in range(0, len(texts), BATCH)
                   for p in tokenizer.tokenize_batch_direct(texts[i:i + BATCH]))

    def tokenize_and_map() -> HierarchyDeltas:
        deltas = HierarchyDeltas(config)
        for i in range(0, len(texts), BATCH):
            for j, pieces in enumerate(tokenizer.tokenize_batch_direct(texts[i:i + BATCH])):
                deltas.add(TokenizedDocument(f"d{i + j}", [[[pieces]]]))
        return deltas

    tok_wall = tok_cpu = all_wall = all_cpu = float("inf")
    tokens, deltas = 0, None
    for _ in range(repeat):
        wall, cpu, tokens = _timed(tokenize)
        tok_wall, tok_cpu = min(tok_wall, wall), min(tok_cpu, cpu)
        wall, cpu, deltas = _timed(tokenize_and_map)
        all_wall, all_cpu = min(all_wall, wall), min(all_cpu, cpu)
    map_wall, map_cpu = max(all_wall - tok_wall, 1e-9), max(all_cpu - tok_cpu, 1e-9)
    return {"tokens": tokens,
            "tokenize_tokens_per_cpu_s": tokens / tok_cpu, "map_tokens_per_cpu_s": tokens / map_cpu,
            "map_cost_vs_tokenize": map_cpu / tok_cpu,
            "tokenize_tokens_per_sec": tokens / tok_wall, "tokenize_and_map_tokens_per_sec": tokens / all_wall,
            "map_tokens_per_sec": tokens / map_wall, "map_wall_vs_tokenize_wall": map_wall / tok_wall,
            "patterns_per_level": [len(level.counts) for level in deltas.levels]}
