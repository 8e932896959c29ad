"""Tokenizing alone vs tokenizing plus the full hierarchy map, same text, one process.

The map (names by hashing, per-level counting, 4 levels of chunk 8) should cost at most half as
much as tokenizing: reported as tokens/s of each and the ratio of their times, measured in one run.
"""
from __future__ import annotations

import time
from typing import Sequence

from katoray.hierarchy.config import HierarchyConfig
from katoray.hierarchy.mapping import HierarchyDeltas, TokenizedDocument
from katoray.text import load_tokenizer
from scripts.benchmarks.tokenizing import BATCH


def bench_map(tokenizer_path: str | None, texts: Sequence[str], chunk_sizes=(8, 8, 8, 8), repeat: int = 3) -> dict:
    """Best-of-``repeat`` seconds for tokenize-only and tokenize+map over ``texts`` (one document each)."""
    tokenizer = load_tokenizer(tokenizer_path)
    config = HierarchyConfig("chunking", tuple(chunk_sizes))
    best_tok = best_all = float("inf")
    tokens = 0
    for _ in range(repeat):
        start = time.perf_counter()
        batches = [tokenizer.tokenize_batch(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)]
        best_tok = min(best_tok, time.perf_counter() - start)
        start = time.perf_counter()
        deltas = HierarchyDeltas(config)
        for i in range(0, len(texts), BATCH):
            for j, pieces in enumerate(tokenizer.tokenize_batch(texts[i:i + BATCH])):
                deltas.add(TokenizedDocument(f"d{i + j}", [[[pieces]]]))
        best_all = min(best_all, time.perf_counter() - start)
        tokens = sum(len(p) for batch in batches for p in batch)
    map_only = max(best_all - best_tok, 1e-9)
    return {"tokens": tokens, "tokenize_tokens_per_sec": tokens / best_tok,
            "tokenize_and_map_tokens_per_sec": tokens / best_all, "map_tokens_per_sec": tokens / map_only,
            "map_cost_vs_tokenize": map_only / best_tok,
            "patterns_per_level": [len(level.patterns) for level in deltas.levels]}
