"""The notebook's analysis names over ``KnowledgeBaseAnalyzer``, whatever the backend.

``MongoDBAnalyzer(learner.nodes["node0"])`` works whatever the node's backend (memory, sqlite,
MongoDB), and so does its ``.patterns_collection``; ``StandaloneMongoDBAnalyzer(db_name,
mongo_uri)`` opens a KB by database name with no session.
"""
from __future__ import annotations

from typing import Any

from katoray.analysis.analyzer import KnowledgeBaseAnalyzer
from katoray.analysis.cleanup import cleanup_levels
from katoray.store import open_store


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
    kbs = [kb for kb in learner.kbs if kb is not None]
    plans = cleanup_levels(kbs, [cfg.name for cfg in learner.node_configs[:len(kbs)]], threshold)
    if verbose:                 # the notebook prints what it cleaned
        for plan in plans:
            print(plan.describe(threshold, dry_run=False))
    return dict(sorted((plan.node, plan.deleted) for plan in plans))
