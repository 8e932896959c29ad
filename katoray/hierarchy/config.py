"""Hierarchy configuration: the notebook's ``HierarchicalNode``, validated up front.

Two modes (all nodes share one):
- ``chunking``: node0 learns each run of ``chunk_size`` tokens of the document (one token per
  event); node k learns each run of ``chunk_size`` names from node k-1.
- ``structure``: learning at the text's own boundaries: node0 sentences, node1 paragraphs
  (sentence names), node2 sections or chapters (paragraph names), node3 documents (section
  names). At most 4 levels; ``chunk_size`` is unused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from katoray.engine.config import SessionConfig
from katoray.errors import ConfigError

MODES = ("chunking", "structure")
STRUCTURE_UNITS = ("sentence", "paragraph", "section", "document")
DEFAULT_METADATA_CAP = 16  # values kept per metadata key per pattern (the smallest, sorted)


class HierarchicalNode:
    """One level of the hierarchy (kato-lm's name and arguments).

    Args:
        name: ``node0``, ``node1``, ... in order.
        chunk_size: chunking mode: tokens (node0) or child names (node k) per pattern; >= 2.
        mode: ``chunking`` or ``structure``.
        base_url: a remote KATO server for this node (``http://host:8000``); None = built-in engine.
        record_metadata: record document metadata (source, doc_id, title) on this level's
            patterns; None = every level but node0 (node0 patterns are the most numerous).
        **session_config: KATO session settings (recall_threshold, max_predictions, persistence,
            process_predictions, ...), used for the node's interactive session.
    """

    def __init__(self, name: str, chunk_size: int = 8, mode: str = "chunking", base_url: str | None = None,
                 record_metadata: bool | None = None, **session_config: Any) -> None:
        self.name = name
        self.chunk_size = chunk_size
        self.mode = mode
        self.base_url = base_url
        self.record_metadata = record_metadata
        self.session_config = SessionConfig.from_dict(session_config)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.startswith("node") or not self.name[4:].isdigit():
            raise ConfigError(f"node name {self.name!r} must be node0, node1, ...")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 2:
            raise ConfigError(f"{self.name}: chunk_size must be an integer >= 2 (KATO learns nothing shorter "
                              f"than 2 symbols), got {self.chunk_size!r}")
        if self.mode == "sentences":
            raise ConfigError(f"{self.name}: mode 'sentences' is called 'structure' in katoray "
                              "(node0 sentences, node1 paragraphs, node2 sections, node3 documents)")
        if self.mode not in MODES:
            raise ConfigError(f"{self.name}: mode must be one of {MODES}, got {self.mode!r}")
        if self.session_config.max_pattern_length != 0:
            raise ConfigError(f"{self.name}: max_pattern_length must be 0 for hierarchical training "
                              "(levels learn at chunk or structure boundaries; auto-learn would split them)")

    @property
    def level(self) -> int:
        return int(self.name[4:])

    @property
    def node_id(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "chunk_size": self.chunk_size, "mode": self.mode, "base_url": self.base_url,
                "record_metadata": self.record_metadata, "session_config": self.session_config.to_dict()}

    def __repr__(self) -> str:
        return f"HierarchicalNode({self.name!r}, chunk_size={self.chunk_size}, mode={self.mode!r})"


@dataclass(frozen=True)
class HierarchyConfig:
    """What the pure map needs: mode, chunk sizes per level, which levels record metadata."""

    mode: str = "chunking"
    chunk_sizes: tuple[int, ...] = (8, 8, 8, 8)
    metadata_levels: frozenset[int] = field(default_factory=lambda: frozenset({1, 2, 3}))
    metadata_cap: int = DEFAULT_METADATA_CAP

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.chunk_sizes:
            raise ConfigError("a hierarchy needs at least one node (node0)")
        for level, size in enumerate(self.chunk_sizes):
            if isinstance(size, bool) or not isinstance(size, int) or size < 2:
                raise ConfigError(f"node{level}: chunk_size must be an integer >= 2, got {size!r}")
        if self.mode == "structure" and len(self.chunk_sizes) > len(STRUCTURE_UNITS):
            raise ConfigError(f"structure mode has {len(STRUCTURE_UNITS)} levels ({', '.join(STRUCTURE_UNITS)}); "
                              f"got {len(self.chunk_sizes)} nodes: use num_levels <= 4 or chunking mode")
        if isinstance(self.metadata_cap, bool) or not isinstance(self.metadata_cap, int) or self.metadata_cap < 1:
            raise ConfigError(f"metadata_cap must be an integer >= 1, got {self.metadata_cap!r}")

    @property
    def num_levels(self) -> int:
        return len(self.chunk_sizes)

    @classmethod
    def from_nodes(cls, nodes: Sequence[HierarchicalNode], num_levels: int | None = None,
                   metadata_cap: int = DEFAULT_METADATA_CAP) -> "HierarchyConfig":
        """Validate a node list (names node0..nodeN in order, one mode) and take its first levels."""
        nodes = validate_nodes(nodes)
        levels = check_num_levels(num_levels, len(nodes))
        used = nodes[:levels]
        meta = frozenset(n.level for n in used if (n.record_metadata if n.record_metadata is not None else n.level > 0))
        return cls(used[0].mode, tuple(n.chunk_size for n in used), meta, metadata_cap)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "chunk_sizes": list(self.chunk_sizes),
                "metadata_levels": sorted(self.metadata_levels), "metadata_cap": self.metadata_cap}


def validate_nodes(nodes: Sequence[HierarchicalNode]) -> list[HierarchicalNode]:
    nodes = list(nodes)
    if not nodes:
        raise ConfigError("a hierarchy needs at least one node: nodes=[HierarchicalNode('node0'), ...]")
    for i, node in enumerate(nodes):
        if not isinstance(node, HierarchicalNode):
            raise ConfigError(f"nodes[{i}] must be a HierarchicalNode, got {type(node).__name__}")
        if node.name != f"node{i}":
            raise ConfigError(f"nodes must be named node0..node{len(nodes) - 1} in order; "
                              f"position {i} holds {node.name!r}: rename it to 'node{i}'")
    modes = {n.mode for n in nodes}
    if len(modes) > 1:
        raise ConfigError(f"all nodes must use the same mode; got {sorted(modes)}: pick chunking or structure")
    return nodes


def check_num_levels(num_levels: int | None, num_nodes: int) -> int:
    if num_levels is None:
        return num_nodes
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or not 1 <= num_levels <= num_nodes:
        raise ConfigError(f"num_levels must be between 1 and the number of nodes ({num_nodes}), got {num_levels!r}")
    return num_levels
