"""kato-lm's ``HierarchicalNode`` and ``create_training_run_nodes``, validated up front.

A list of nodes describes a hierarchy the way the notebook writes it; ``hierarchy_of`` turns it
into katoray's ``HierarchyConfig`` (all nodes share one mode; see ``katoray.config``).
"""
from __future__ import annotations

from typing import Any, Sequence

from katoray.checks import check_choice, check_int
from katoray.config import DEFAULT_CHUNK_SIZE, DEFAULT_METADATA_CAP, MODES, HierarchyConfig, check_run_id, new_run_id
from katoray.engine.config import SessionConfig
from katoray.errors import ConfigError


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

    def __init__(self, name: str, chunk_size: int = DEFAULT_CHUNK_SIZE, mode: str = "chunking",
                 base_url: str | None = None, record_metadata: bool | None = None, **session_config: Any) -> None:
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
        check_int(f"{self.name}: chunk_size", self.chunk_size, 2, unit="KATO learns nothing shorter than 2 symbols")
        if self.mode == "sentences":
            raise ConfigError(f"{self.name}: mode 'sentences' is called 'structure' in katoray "
                              "(node0 sentences, node1 paragraphs, node2 sections, node3 documents)")
        check_choice(f"{self.name}: mode", self.mode, MODES)
        if self.session_config.max_pattern_length != 0:
            raise ConfigError(f"{self.name}: max_pattern_length must be 0 for hierarchical training "
                              "(levels learn at chunk or structure boundaries; auto-learn would split them)")

    @property
    def level(self) -> int:
        return int(self.name[4:])

    @property
    def node_id(self) -> str:
        return self.name

    @property
    def records_metadata(self) -> bool:
        return self.record_metadata if self.record_metadata is not None else self.level > 0

    def __repr__(self) -> str:
        return f"HierarchicalNode({self.name!r}, chunk_size={self.chunk_size}, mode={self.mode!r})"


def validate_nodes(nodes: Sequence[HierarchicalNode]) -> list[HierarchicalNode]:
    """Names node0..nodeN in order, one mode; returns them as a list."""
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
    """kato-lm's ``num_levels``: the first levels of the node list to use (None = all)."""
    if num_levels is None:
        return num_nodes
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or not 1 <= num_levels <= num_nodes:
        raise ConfigError(f"num_levels must be between 1 and the number of nodes ({num_nodes}), got {num_levels!r}")
    return num_levels


def used_nodes(nodes: Sequence[HierarchicalNode], num_levels: int | None = None) -> list[HierarchicalNode]:
    """The validated first ``num_levels`` nodes."""
    nodes = validate_nodes(nodes)
    return nodes[:check_num_levels(num_levels, len(nodes))]


def hierarchy_of(nodes: Sequence[HierarchicalNode], num_levels: int | None = None,
                 metadata_cap: int = DEFAULT_METADATA_CAP) -> HierarchyConfig:
    """The ``HierarchyConfig`` of a node list's first ``num_levels`` levels."""
    used = used_nodes(nodes, num_levels)
    return HierarchyConfig(used[0].mode, tuple(n.chunk_size for n in used),
                           frozenset(n.level for n in used if n.records_metadata), metadata_cap)


class TrainingRunNodes(list):
    """A list of ``HierarchicalNode`` that also carries the run id they were made for."""

    def __init__(self, nodes: list, run_id: str) -> None:
        super().__init__(nodes)
        self.run_id = run_id


def create_training_run_nodes(run_id: str | None = None, num_nodes: int = 4, chunk_size: int = DEFAULT_CHUNK_SIZE,
                              mode: str = "chunking", base_url: str | None = None) -> TrainingRunNodes:
    """Nodes for an isolated training run (kato-lm's function, which raised ``TypeError``: B1).

    Node names stay ``node0`` ... (the hierarchy's levels); the run id isolates the knowledge bases
    once it reaches the learner, which names them ``node{i}_<run_id>_kato``::

        nodes = create_training_run_nodes(run_id="baseline_8chunks")
        learner = HierarchicalConceptLearner(nodes=nodes, run_id=nodes.run_id, store="sqlite:///kb")

    Args:
        run_id: the run's id; None = a new one (UTC time + random suffix).
        num_nodes, chunk_size, mode: a uniform hierarchy.
        base_url: a remote KATO server for every node (None = the built-in engine).
    """
    run_id = run_id or new_run_id()
    check_run_id(run_id)
    check_int("num_nodes", num_nodes, 1)
    nodes = [HierarchicalNode(f"node{i}", chunk_size=chunk_size, mode=mode, base_url=base_url) for i in range(num_nodes)]
    return TrainingRunNodes(nodes, run_id)
