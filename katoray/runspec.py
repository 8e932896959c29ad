"""``RunSpec``: what the Ray runtime needs to train one run, derived from a ``TrainConfig``.

    TrainConfig (the user's, the manifest's) --RunSpec.from_config--> RunSpec --> runtime.run_training

Small, frozen and picklable: the driver, the mapper pool and the node actors receive parts of it
as they are (the hierarchy, the session configs), never converted to dicts on the way.
"""
from __future__ import annotations

from dataclasses import dataclass

from katoray.config import DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_WORKERS, Batching, HierarchyConfig, TrainConfig
from katoray.engine.config import SessionConfig
from katoray.errors import ConfigError
from katoray.store.naming import shard_kb_id


def node_id(level: int, run_id: str) -> str:
    """KATO node id of a run's level: ``node{level}_<run_id>`` (its KB: ``run_kb_id(level, run_id)``)."""
    return f"node{level}_{run_id}"


def level_kb_ids(level: int, run_id: str, shards: int) -> tuple[str, ...]:
    """The knowledge bases of a run's level, shard by shard (one: ``run_kb_id(level, run_id)``)."""
    return tuple(shard_kb_id(level, run_id, shard, shards) for shard in range(shards))


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs besides its corpus."""

    run_id: str
    store: str                                   # knowledge-base URL (absolute paths for sqlite)
    hierarchy: HierarchyConfig
    session_configs: tuple[SessionConfig, ...]   # KATO session settings per level
    tokenizer: str | None                        # name or absolute folder; None = built-in default
    segment_method: str = "simple"
    batching: Batching = Batching()              # documents per batch (per row, per node write)
    workers: int = DEFAULT_WORKERS               # mapper pool actors
    checkpoint_interval: int | None = DEFAULT_CHECKPOINT_INTERVAL   # documents between checkpoint calls
    verbose: bool = True                         # one live progress line
    kb_ids: tuple[tuple[str, ...], ...] = ()     # per level, its shards' knowledge bases; () = level_kb_ids
    owner: str = ""                              # who claims the KBs (store.base.KnowledgeBase.claim); "" = run_id
    shards: tuple[int, ...] = ()                 # knowledge bases (node actors) per level; () = one each

    def __post_init__(self) -> None:
        shards = self.shards or (1,) * self.num_levels
        object.__setattr__(self, "shards", tuple(shards))
        if not self.kb_ids:
            object.__setattr__(self, "kb_ids", tuple(level_kb_ids(i, self.run_id, n) for i, n in enumerate(shards)))
        object.__setattr__(self, "kb_ids", tuple(tuple(ids) for ids in self.kb_ids))
        if len(self.kb_ids) != self.num_levels or len(self.session_configs) != self.num_levels \
                or len(self.shards) != self.num_levels:
            raise ConfigError(f"need knowledge bases, a session config and a shard count per level ({self.num_levels})")
        found = tuple(map(len, self.kb_ids))
        if found != self.shards:
            raise ConfigError(f"run {self.run_id!r} has {list(found)} knowledge bases per level, but its shards are "
                              f"{list(self.shards)}")

    @classmethod
    def from_config(cls, config: TrainConfig, kb_ids: tuple[tuple[str, ...], ...] = (), owner: str = "") -> "RunSpec":
        """The spec of a config that has its run id and store (``TrainConfig.for_run``); ``kb_ids``
        (a resumed run's, per level as its manifest recorded them) and ``owner`` as ``RunSpec`` takes them."""
        if config.run_id is None or config.store is None:
            raise ConfigError("RunSpec.from_config needs config.for_run(run_id): a run id and a store")
        return cls(config.run_id, config.store, config.hierarchy,
                   tuple(config.session_config(i) for i in range(config.levels)), config.tokenizer,
                   config.segment_method, config.batching, config.workers, config.checkpoint_interval,
                   config.verbose, tuple(kb_ids), owner, tuple(config.shards))

    @property
    def node_ids(self) -> tuple[str, ...]:
        """KATO node id per level (the sessions' ``processor_id``)."""
        return tuple(node_id(i, self.run_id) for i in range(self.num_levels))

    @property
    def claim(self) -> str:
        """What this run records as the owner of its knowledge bases."""
        return self.owner or self.run_id

    @property
    def all_kb_ids(self) -> tuple[str, ...]:
        """Every knowledge base of the run, level by level and shard by shard."""
        return tuple(kb_id for ids in self.kb_ids for kb_id in ids)

    @property
    def num_levels(self) -> int:
        return self.hierarchy.num_levels
