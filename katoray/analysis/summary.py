"""What a report says about a run, per level, computed from the stores' aggregates.

``summarize_run(manifest)`` opens the run's knowledge bases through its manifest and asks each
for its frequency and length histograms, most frequent patterns and size on disk (one scan per
question on the store's side; nothing loads every pattern), fits the Zipf exponent
(:mod:`katoray.analysis.frequencies`), takes the reuse rate from the manifest's statistics, and
decodes the most frequent patterns to text by unravelling them to node0 tokens with the run's
own tokenizer.

    summary = summarize_run(load_manifest("kjv6", "runs"))
    summary.levels[0].patterns, summary.levels[0].zipf.exponent
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from katoray.analysis.frequencies import ZipfFit, zipf_fit
from katoray.errors import KatorayError
from katoray.generation.unravel import unravel
from katoray.store import KnowledgeBase

TOP_PATTERNS = 10        # most frequent patterns decoded per level
MAX_TEXT_CHARS = 400     # a decoded pattern longer than this shows its start and says how much is left


@dataclass(frozen=True)
class TopPattern:
    """One of a level's most frequent patterns, decoded."""

    name: str          # bare sha1
    frequency: int
    length: int        # symbols (node0: tokens; node k: child pattern names)
    text: str          # decoded node0 text (whole; the report shortens what it shows)


@dataclass(frozen=True)
class LevelSummary:
    """One level of a run (``node`` is its name, ``kb_id`` its knowledge base)."""

    node: str
    kb_id: str
    patterns: int
    total_frequency: int
    frequency_histogram: dict[int, int]
    length_histogram: dict[int, int]
    zipf: ZipfFit | None             # None with fewer than two distinct frequencies
    reuse_rate: float | None         # 1 - new patterns / learn events, from the manifest (None: not recorded)
    size_on_disk: int | None         # bytes; None for memory://
    top: list[TopPattern]


@dataclass(frozen=True)
class RunSummary:
    """A run's identity and its levels."""

    run_id: str
    info: dict[str, Any]             # status, documents, tokens, store, tokenizer, chunk sizes, mode
    levels: list[LevelSummary]
    notes: list[str] = field(default_factory=list)   # what could not be done, and why


def summarize_run(manifest, top_n: int = TOP_PATTERNS, mongo_uri: str | None = None) -> RunSummary:
    """The summary of a run (``katoray.jobs.TrainingManifest``); its stores are closed after."""
    stores = manifest.open_stores(mongo_uri)
    notes: list[str] = []
    tokenizer = _run_tokenizer(manifest, notes)
    try:
        kbs = list(stores.values())
        levels = [summarize_level(kbs, level, node, tokenizer, top_n,
                                  manifest.statistics.get(f"node{level}_reuse_rate"))
                  for level, node in enumerate(stores)]
    finally:
        for kb in stores.values():
            kb.close()
    info = {"status": manifest.status, "documents": manifest.documents, "tokens": manifest.tokens,
            "store": manifest.store, "tokenizer": manifest.tokenizer.get("name"),
            "chunk_sizes": manifest.config.get("chunk_sizes"), "mode": manifest.config.get("mode"),
            "started": manifest.started, "finished": manifest.finished}
    return RunSummary(manifest.run_id, info, levels, notes)


def summarize_level(kbs: Sequence[KnowledgeBase], level: int, node: str, tokenizer=None,
                    top_n: int = TOP_PATTERNS, reuse_rate: float | None = None) -> LevelSummary:
    """The summary of ``kbs[level]`` (the levels below decode its patterns; ``tokenizer`` None:
    token pieces joined by spaces)."""
    kb = kbs[level]
    histogram = kb.frequency_histogram()
    top = [TopPattern(r.name, r.frequency, r.length, _text(kbs, level, r.name, tokenizer))
           for r in kb.most_frequent(top_n)]
    return LevelSummary(node, kb.kb_id, sum(histogram.values()), sum(f * n for f, n in histogram.items()),
                        histogram, kb.length_histogram(), zipf_fit(histogram), reuse_rate, kb.size_on_disk(), top)


def _text(kbs: Sequence[KnowledgeBase], level: int, name: str, tokenizer) -> str:
    pieces = unravel(kbs, level, name)
    return tokenizer.decode(pieces) if tokenizer is not None else " ".join(pieces)


def _run_tokenizer(manifest, notes: list[str]):
    """The run's tokenizer, or None (with a note saying why) when it cannot be loaded here."""
    from katoray.text.tokenizers import load_tokenizer

    identity = manifest.tokenizer
    source = identity.get("path") or identity.get("name")
    try:
        return load_tokenizer(source)
    except KatorayError as err:   # e.g. trained elsewhere with a folder this machine lacks
        notes.append(f"the run's tokenizer {source!r} could not be loaded here ({err}); patterns are shown as "
                     "token pieces")
        return None


def shortened(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how many more there are."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"
