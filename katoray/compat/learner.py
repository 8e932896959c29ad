"""The notebook's ``HierarchicalConceptLearner``: a hierarchy of KATO nodes over one run's knowledge bases.

``learner.nodes["node0"]`` is a working KATO session on level 0's knowledge base (observe, learn,
get_predictions, get_stm, clear_stm); ``learner.kbs[i]`` is level i's knowledge base. A learner
belongs to one run (``learner.run_id``: given, from ``create_training_run_nodes``, or new), and
its knowledge bases are that run's (``node{i}_<run_id>_kato``): by default SQLite files in
``runs/<run_id>/kb``, where the notebook's training functions write the run's manifest too. So
the learner, the run's manifest and ``katoray runs`` all see the same knowledge bases.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from katoray.api.session import KatoSession
from katoray.compat.nodes import HierarchicalNode, hierarchy_of, validate_nodes
from katoray.checks import check_int
from katoray.config import (DEFAULT_CHUNK_SIZE, DEFAULT_METADATA_CAP, DEFAULT_RUNS_DIR, KB_FILES_DIR, HierarchyConfig,
                            check_run_id, new_run_id)
from katoray.runspec import node_id as run_node_id
from katoray.store import KnowledgeBase, open_store, run_kb_id
from katoray.store.urls import absolute_store_url, redact_url


class TokenProcessor:
    """The notebook's ``learner.token_processor``: tokenize and decode with the learner's tokenizer."""

    def __init__(self, tokenizer_name: str | None = None) -> None:
        from katoray.text.tokenizers import load_tokenizer

        self.tokenizer = load_tokenizer(tokenizer_name)
        self.tokenizer_name = self.tokenizer.name

    def tokenize_segment(self, text: str, max_tokens: int | None = None) -> list[str]:
        """The tokenizer's string pieces for ``text``; never truncated unless ``max_tokens`` asks."""
        pieces = self.tokenizer.tokenize(text)
        return pieces if max_tokens is None else pieces[:max_tokens]

    def decode(self, pieces: Sequence[str]) -> str:
        return self.tokenizer.decode(pieces)


def default_store(run_id: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> str:
    """A run's default knowledge-base URL: SQLite files in ``<runs_dir>/<run_id>/kb`` (absolute)."""
    return f"sqlite:///{(Path(runs_dir).expanduser().resolve() / run_id / KB_FILES_DIR).as_posix()}"


class HierarchicalConceptLearner:
    """A hierarchy of KATO nodes (node0 learns tokens, node k learns node k-1 pattern names).

    Args:
        nodes: per-level ``HierarchicalNode`` list; if None, ``num_nodes`` uniform nodes.
        num_nodes, chunk_size, segmentation_mode, base_url: the uniform hierarchy when ``nodes``
            is None (``base_url``: a remote KATO server for every node; None = the built-in engine).
        tokenizer_name: a Hugging Face tokenizer name or local path; None = the built-in default.
        node0_batch_size: documents mapped per knowledge-base flush in sequential training.
        store: knowledge-base URL (``sqlite:///dir``, ``mongodb://...``, ``memory://``); None =
            the run's default, SQLite files in ``runs/<run_id>/kb``.
        run_id: the run these knowledge bases belong to; None = the nodes' (from
            ``create_training_run_nodes``), else a new one.
        metadata_cap: values kept per metadata key per pattern.
    """

    def __init__(self, nodes: Sequence[HierarchicalNode] | None = None, num_nodes: int = 4,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, tokenizer_name: str | None = None, node0_batch_size: int = 64,
                 store: str | None = None, segmentation_mode: str = "chunking", run_id: str | None = None,
                 metadata_cap: int = DEFAULT_METADATA_CAP, verbose_init: bool = False,
                 base_url: str | None = None) -> None:
        if nodes is None:
            nodes = [HierarchicalNode(f"node{i}", chunk_size=chunk_size, mode=segmentation_mode, base_url=base_url)
                     for i in range(num_nodes)]
        self.node_configs = validate_nodes(nodes)
        self.num_nodes = len(self.node_configs)
        check_int("node0_batch_size", node0_batch_size, 1)
        self.node0_batch_size = node0_batch_size
        self.run_id = run_id or getattr(nodes, "run_id", None) or new_run_id()
        check_run_id(self.run_id)
        self.store = absolute_store_url(store) if store is not None else default_store(self.run_id)
        self.metadata_cap = metadata_cap
        self.hierarchy_config()  # validate early
        self.token_processor = TokenProcessor(tokenizer_name)
        self.tokenizer_name = self.token_processor.tokenizer_name
        self.open(self.store)

    def open(self, store: str) -> None:
        """(Re)open every local level's knowledge base at ``store`` and a session on each; used
        after training a ``memory://`` learner into its run's durable store."""
        self.store = store
        # Level i's knowledge base; None for a node served by a remote KATO server (base_url).
        self.kbs: list[KnowledgeBase | None] = [None if cfg.base_url else open_store(store, run_kb_id(i, self.run_id))
                                                for i, cfg in enumerate(self.node_configs)]
        self.nodes: dict[str, Any] = {cfg.name: self._session(i, cfg) for i, cfg in enumerate(self.node_configs)}

    def node_id(self, level: int) -> str:
        """KATO node id of a level: ``node{i}_<run_id>``."""
        return run_node_id(level, self.run_id)

    def hierarchy_config(self, num_levels: int | None = None) -> HierarchyConfig:
        return hierarchy_of(self.node_configs, num_levels, self.metadata_cap)

    def _session(self, level: int, cfg: HierarchicalNode):
        if cfg.base_url:
            from katoray.api.remote import RemoteKatoSession

            return RemoteKatoSession(cfg.base_url, self.node_id(level), cfg.session_config.to_dict())
        return KatoSession(self.node_id(level), self.kbs[level], cfg.session_config, self.metadata_cap)

    @property
    def is_remote(self) -> bool:
        """Whether any node lives on a remote KATO server."""
        return any(cfg.base_url for cfg in self.node_configs)

    def get_node_stats(self) -> dict[str, dict[str, int]]:
        """Patterns and KATO totals per local level."""
        out = {}
        for cfg, kb in zip(self.node_configs, self.kbs):
            if kb is None:
                continue
            totals = kb.totals()
            out[cfg.name] = {"patterns": kb.count(), "total_symbols_in_patterns_frequencies":
                             totals.total_symbols_in_patterns_frequencies, "symbols": totals.num_symbols}
        return out

    def close(self) -> None:
        for kb in self.kbs:
            if kb is not None:
                kb.close()

    def __repr__(self) -> str:
        sizes = ",".join(str(c.chunk_size) for c in self.node_configs)
        return (f"HierarchicalConceptLearner(run_id={self.run_id!r}, num_nodes={self.num_nodes}, chunk_sizes=[{sizes}], "
                f"mode={self.node_configs[0].mode!r}, tokenizer={self.tokenizer_name!r}, store={redact_url(self.store)!r})")
