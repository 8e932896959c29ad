"""Store-agnostic knowledge-base analysis: statistics, histograms, plots and sampling.

The notebook's names over it (``MongoDBAnalyzer``, ``StandaloneMongoDBAnalyzer``,
``analyze_all_nodes``, ...) are in :mod:`katoray.compat.analyzers`. Statistics are computed by
the store (``KnowledgeBase.frequency_histogram`` and the other aggregate reads): nothing here
loads every pattern. ``patterns_collection`` is a read-only view in KATO's MongoDB layout, on
every backend.
"""
from __future__ import annotations

import random
from typing import Any

from katoray.analysis.frequencies import frequency_stats
from katoray.store import KnowledgeBase
from katoray.store.collection import PatternsCollection


class KnowledgeBaseAnalyzer:
    """Statistics, histograms, plots and sampling over one knowledge base."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    def get_frequency_histogram(self) -> dict[int, int]:
        """``{frequency: number of patterns}``, sorted by frequency (counted by the store)."""
        return self.kb.frequency_histogram()

    def get_patterns_by_frequency(self, min_freq: int = 1, max_freq: int | None = None,
                                  limit: int | None = None) -> list[dict[str, Any]]:
        """Patterns with ``min_freq <= frequency <= max_freq``, most frequent first (ties by name);
        at most ``limit`` of them (None: all, which reads every matching pattern)."""
        return [{"name": r.name, "frequency": r.frequency, "pattern_data": r.pattern_data,
                 "length": len(r.pattern_data), "metadata": r.metadata}
                for r in self.kb.most_frequent(limit, min_freq, max_freq)]

    def get_stats(self) -> dict[str, Any]:
        """Totals and frequency summary (both kato-lm spellings of the average are present), from
        the store's frequency histogram: no pattern is read."""
        return frequency_stats(self.get_frequency_histogram())

    def visualize_frequency_distribution(self, max_freq: int | None = None, use_log_scale: bool = True, ax=None):
        """Bar chart of the frequency histogram (log y-axis when counts span > 100x); returns the Figure."""
        if ax is None:
            import matplotlib.pyplot as plt  # lazy: plotting is optional; pyplot picks Agg when headless

            fig, ax = plt.subplots(figsize=(8, 4))
        else:
            fig = ax.figure
        full = self.get_frequency_histogram()
        histogram = {f: n for f, n in full.items() if max_freq is None or f <= max_freq}
        ax.bar(list(histogram), list(histogram.values()))
        if use_log_scale and histogram and max(histogram.values()) > 100 * min(histogram.values()):
            ax.set_yscale("log")
        ax.set_xlabel("pattern frequency")
        ax.set_ylabel("number of patterns")
        total, shown = sum(full.values()), sum(histogram.values())   # the title counts the whole KB
        ax.set_title(f"{self.kb.kb_id}: {total:,} patterns" + (f" ({shown:,} with frequency <= {max_freq} shown)"
                                                               if shown != total else ""))
        return fig

    def sample_patterns(self, num_samples: int = 1, seed: int | None = None) -> list[dict[str, Any]]:
        """Draw patterns without replacement with probability proportional to frequency, in draw
        order (``kb.sample_by_frequency``: one streamed pass, memory O(k)). The same ``seed`` gives
        the same sample on every backend; None draws a fresh seed each call."""
        if seed is None:
            seed = random.SystemRandom().getrandbits(63)
        return [{"name": r.name, "pattern_data": r.pattern_data, "frequency": r.frequency}
                for r in self.kb.sample_by_frequency(num_samples, seed)]

    @property
    def patterns_collection(self) -> PatternsCollection:
        """The patterns as a read-only, pymongo-shaped collection on any backend (``find`` with an
        equality filter and a projection, ``find_one``, ``count_documents``); names are found with
        or without their ``PTRN|`` prefix (:mod:`katoray.store.collection`)."""
        return PatternsCollection(self.kb)

    def close(self) -> None:
        """Kept for the notebook; the knowledge base stays open for its owner."""
