"""Store-agnostic knowledge-base analysis: statistics, histograms, plots and sampling.

The notebook's names over it (``MongoDBAnalyzer``, ``StandaloneMongoDBAnalyzer``,
``analyze_all_nodes``, ...) are in :mod:`katoray.compat.analyzers`.
"""
from __future__ import annotations

import random
import statistics
from collections import Counter
from typing import Any

from katoray.store import KnowledgeBase

# kato-lm's frequency buckets for get_stats()["frequency_ranges"]
FREQUENCY_RANGES = (("1", 1, 1), ("2-5", 2, 5), ("6-10", 6, 10), ("11-50", 11, 50), (">50", 51, None))


class KnowledgeBaseAnalyzer:
    """Statistics, histograms, plots and sampling over one knowledge base."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    def get_frequency_histogram(self) -> dict[int, int]:
        """``{frequency: number of patterns}``, sorted by frequency."""
        counts = Counter(record.frequency for record in self.kb.iter_patterns())
        return dict(sorted(counts.items()))

    def get_patterns_by_frequency(self, min_freq: int = 1, max_freq: int | None = None) -> list[dict[str, Any]]:
        """Patterns with ``min_freq <= frequency <= max_freq``, most frequent first (ties by name)."""
        out = [{"name": r.name, "frequency": r.frequency, "pattern_data": r.pattern_data,
                "length": len(r.pattern_data), "metadata": r.metadata}
               for r in self.kb.iter_patterns()
               if r.frequency >= min_freq and (max_freq is None or r.frequency <= max_freq)]
        out.sort(key=lambda p: (-p["frequency"], p["name"]))
        return out

    def get_stats(self) -> dict[str, Any]:
        """Totals and frequency summary (both kato-lm spellings of the average are present)."""
        histogram = self.get_frequency_histogram()
        frequencies = [f for f, n in histogram.items() for _ in range(n)]
        total = len(frequencies)
        stats: dict[str, Any] = {"total_patterns": total, "total_frequency": sum(frequencies)}
        if total:
            avg = stats["total_frequency"] / total
            stats.update(avg_frequency=avg, average_frequency=avg, max_frequency=max(frequencies),
                         min_frequency=min(frequencies), median_frequency=statistics.median(frequencies))
        else:
            stats.update(avg_frequency=0.0, average_frequency=0.0, max_frequency=0, min_frequency=0, median_frequency=0)
        stats["frequency_ranges"] = {label: sum(n for f, n in histogram.items() if f >= lo and (hi is None or f <= hi))
                                     for label, lo, hi in FREQUENCY_RANGES}
        return stats

    def visualize_frequency_distribution(self, max_freq: int | None = None, use_log_scale: bool = True, ax=None):
        """Bar chart of the frequency histogram (log y-axis when counts span > 100x); returns the Figure."""
        if ax is None:
            import matplotlib.pyplot as plt  # lazy: plotting is optional; pyplot picks Agg when headless

            fig, ax = plt.subplots(figsize=(8, 4))
        else:
            fig = ax.figure
        histogram = {f: n for f, n in self.get_frequency_histogram().items() if max_freq is None or f <= max_freq}
        ax.bar(list(histogram), list(histogram.values()))
        if use_log_scale and histogram and max(histogram.values()) > 100 * min(histogram.values()):
            ax.set_yscale("log")
        ax.set_xlabel("pattern frequency")
        ax.set_ylabel("number of patterns")
        ax.set_title(f"{self.kb.kb_id}: {sum(histogram.values()):,} patterns")
        return fig

    def sample_patterns(self, num_samples: int = 1, seed: int | None = None) -> list[dict[str, Any]]:
        """Draw patterns without replacement with probability proportional to frequency."""
        records = list(self.kb.iter_patterns())
        rng = random.Random(seed)
        chosen = []
        for _ in range(min(num_samples, len(records))):
            pick = rng.choices(range(len(records)), weights=[r.frequency for r in records])[0]
            r = records.pop(pick)
            chosen.append({"name": r.name, "pattern_data": r.pattern_data, "frequency": r.frequency})
        return chosen

    @property
    def patterns_collection(self):
        """The raw pymongo collection (MongoDB knowledge bases only)."""
        collection = getattr(self.kb, "patterns_collection", None)
        if collection is None:
            raise AttributeError(f"{self.kb.kb_id} is not a MongoDB knowledge base; use get_patterns_by_frequency() "
                                 "or kb.iter_patterns() instead of patterns_collection")
        return collection

    def close(self) -> None:
        """Kept for the notebook; the knowledge base stays open for its owner."""
