"""Store-agnostic knowledge-base analysis with the notebook's names.

``MongoDBAnalyzer(learner.nodes["node0"])`` works whatever the node's backend (memory, sqlite,
MongoDB), and so does ``.patterns_collection`` (a read-only view in KATO's MongoDB layout).
Statistics are computed by the store (``KnowledgeBase.frequency_histogram`` and the other
aggregate reads): nothing here loads every pattern.
``StandaloneMongoDBAnalyzer(db_name, mongo_uri)`` opens a KB by database name with no session.
"""
from __future__ import annotations

import random
from typing import Any

from katoray.analysis.cleanup import cleanup_levels
from katoray.analysis.frequencies import frequency_stats
from katoray.store import KnowledgeBase, open_store
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
        histogram = {f: n for f, n in self.get_frequency_histogram().items() if max_freq is None or f <= max_freq}
        ax.bar(list(histogram), list(histogram.values()))
        if use_log_scale and histogram and max(histogram.values()) > 100 * min(histogram.values()):
            ax.set_yscale("log")
        ax.set_xlabel("pattern frequency")
        ax.set_ylabel("number of patterns")
        ax.set_title(f"{self.kb.kb_id}: {sum(histogram.values()):,} patterns")
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


class MongoDBAnalyzer(KnowledgeBaseAnalyzer):
    """The notebook's analyzer for a node (``learner.nodes["node0"]``), any backend."""

    def __init__(self, node: Any, mongo_uri: str | None = None, timeout_ms: int = 30000) -> None:
        kb = getattr(node, "kb", None)
        if kb is None:
            raise TypeError(f"MongoDBAnalyzer needs a node session with a knowledge base (learner.nodes['node0']), "
                            f"got {type(node).__name__}")
        super().__init__(kb)


class StandaloneMongoDBAnalyzer(KnowledgeBaseAnalyzer):
    """An analyzer by database name (``node0_<run_id>_kato``) and store URL, no session needed."""

    def __init__(self, db_name: str, mongo_uri: str = "mongodb://localhost:27017/", timeout_ms: int = 30000) -> None:
        super().__init__(open_store(mongo_uri, db_name))

    def close(self) -> None:
        self.kb.close()


def analyze_all_nodes(learner) -> dict[str, dict[str, Any]]:
    """``get_stats()`` for every node of a learner."""
    return {cfg.name: KnowledgeBaseAnalyzer(kb).get_stats() for cfg, kb in zip(learner.node_configs, learner.kbs)}


def sample_pattern_by_frequency(node: Any, num_samples: int = 1, seed: int | None = None) -> list[dict[str, Any]]:
    """The notebook's helper: frequency-weighted samples from a node's knowledge base."""
    return MongoDBAnalyzer(node).sample_patterns(num_samples, seed)


def cleanup_all_nodes(learner, threshold: int = 2, verbose: bool = False) -> dict[str, int]:
    """Delete patterns with frequency < ``threshold`` at every level, keeping the hierarchy whole.

    kato-lm deleted node0 patterns that node1 patterns still referenced, so unravelling lost text.
    Here levels are cleaned top-down and a pattern stays while any remaining pattern of the level
    above uses its name; statistics and indexes are updated with the deletions
    (:func:`katoray.analysis.cleanup.cleanup_levels`, which ``katoray cleanup`` runs too).
    """
    import logging

    kbs = [kb for kb in learner.kbs if kb is not None]
    plans = cleanup_levels(kbs, [cfg.name for cfg in learner.node_configs[:len(kbs)]], threshold)
    if verbose:
        for plan in plans:
            logging.getLogger("katoray").info("%s", plan.describe(threshold, dry_run=False))
    return dict(sorted((plan.node, plan.deleted) for plan in plans))
