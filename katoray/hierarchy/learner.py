"""The notebook's ``HierarchicalConceptLearner``: a hierarchy of KATO nodes over knowledge bases.

``learner.nodes["node0"]`` is a working KATO session on level 0's knowledge base (observe, learn,
get_predictions, get_stm, clear_stm); ``learner.kbs[i]`` is level i's knowledge base. Training
goes through the pure map (``train_hierarchical_single_pass`` here, or the Ray runtime), which
writes the same knowledge bases the sessions read.
"""
from __future__ import annotations

from typing import Any, Sequence

from katoray.hierarchy.config import DEFAULT_METADATA_CAP, HierarchicalNode, HierarchyConfig, validate_nodes
from katoray.api.session import KatoSession
from katoray.store import KnowledgeBase, kb_id_for, open_store, redact_url


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


class HierarchicalConceptLearner:
    """A hierarchy of KATO nodes (node0 learns tokens, node k learns node k-1 pattern names).

    Args:
        nodes: per-level ``HierarchicalNode`` list; if None, ``num_nodes`` uniform nodes.
        num_nodes, chunk_size, segmentation_mode, base_url: the uniform hierarchy when ``nodes``
            is None (``base_url``: a remote KATO server for every node; None = the built-in engine).
        tokenizer_name: a Hugging Face tokenizer name or local path; None = the built-in default.
        node0_batch_size: documents mapped per knowledge-base flush in sequential training.
        store: knowledge-base URL (``memory://``, ``sqlite:///dir``, ``mongodb://...``).
        run_id: isolates this run's knowledge bases (node ids ``node{i}_<run_id>``).
        metadata_cap: values kept per metadata key per pattern.
    """

    def __init__(self, nodes: Sequence[HierarchicalNode] | None = None, num_nodes: int = 4, chunk_size: int = 8,
                 tokenizer_name: str | None = None, node0_batch_size: int = 64, store: str = "memory://",
                 segmentation_mode: str = "chunking", run_id: str | None = None,
                 metadata_cap: int = DEFAULT_METADATA_CAP, verbose_init: bool = False,
                 base_url: str | None = None) -> None:
        if nodes is None:
            nodes = [HierarchicalNode(f"node{i}", chunk_size=chunk_size, mode=segmentation_mode, base_url=base_url)
                     for i in range(num_nodes)]
        self.node_configs = validate_nodes(nodes)
        self.num_nodes = len(self.node_configs)
        if isinstance(node0_batch_size, bool) or not isinstance(node0_batch_size, int) or node0_batch_size < 1:
            raise ValueError(f"node0_batch_size must be an integer >= 1, got {node0_batch_size!r}")
        self.node0_batch_size = node0_batch_size
        self.store = store
        # create_training_run_nodes(run_id=...) returns nodes that carry their run id
        self.run_id = run_id if run_id is not None else getattr(nodes, "run_id", None)
        self.metadata_cap = metadata_cap
        self.hierarchy_config()  # validate early
        self.token_processor = TokenProcessor(tokenizer_name)
        self.tokenizer_name = self.token_processor.tokenizer_name
        # Level i's knowledge base; None for a node served by a remote KATO server (base_url).
        self.kbs: list[KnowledgeBase | None] = [None if cfg.base_url else open_store(store, kb_id_for(self.node_id(i)))
                                                for i, cfg in enumerate(self.node_configs)]
        self.nodes: dict[str, Any] = {cfg.name: self._session(i, cfg) for i, cfg in enumerate(self.node_configs)}

    def node_id(self, level: int) -> str:
        """KATO node id of a level: ``node{i}``, or ``node{i}_<run_id>`` for an isolated run."""
        return f"node{level}" if not self.run_id else f"node{level}_{self.run_id}"

    def hierarchy_config(self, num_levels: int | None = None) -> HierarchyConfig:
        return HierarchyConfig.from_nodes(self.node_configs, num_levels, self.metadata_cap)

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
        return (f"HierarchicalConceptLearner(num_nodes={self.num_nodes}, chunk_sizes=[{sizes}], "
                f"mode={self.node_configs[0].mode!r}, tokenizer={self.tokenizer_name!r}, store={redact_url(self.store)!r})")
