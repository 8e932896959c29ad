"""Where a batch's deltas go: the run's node actors (the mappers send them; the driver reads
their statistics: pattern counts, live and final) and what the run started, released at its end.
A run's knowledge bases outlive the process (``TrainConfig`` refuses ``memory://``), so a node
actor per level (or shard) always owns them.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

from katoray.errors import ConfigError, KatorayError

if TYPE_CHECKING:
    from katoray.runspec import RunSpec

NODE_STATS_INTERVAL_S = 2.0    # live pattern counts are asked of the node actors this often
RELEASE_CHECK_TIMEOUT_S = 10.0  # at the end, node actors not up by then are ended anyway


def check_stores(spec: "RunSpec") -> None:
    """Open each level's knowledge base and claim it for this run, before anything is written: an
    unusable store fails here, naming itself, and so does a knowledge base another run owns."""
    from katoray.store import open_store

    for kb_id in spec.all_kb_ids:
        kb = open_store(spec.store, kb_id)
        try:
            check_owner(kb, spec)
        finally:
            kb.close()


def check_owner(kb, spec: "RunSpec") -> None:
    """Claim ``kb`` for ``spec``'s run; ConfigError naming the owner if another run has it."""
    from katoray.store.naming import describe_owner
    from katoray.store.urls import redact_url

    owner = kb.claim_owner(spec.claim)
    if owner != spec.claim:
        raise ConfigError(f"knowledge base {kb.kb_id!r} at {redact_url(spec.store)} belongs to another run "
                          f"({describe_owner(owner)}); run {spec.run_id!r} cannot train into it. Resume that run "
                          "instead, or train with another store or run id")


class NodeSink:
    """Deltas go to named node actors (mappers send them); the driver only reads their stats."""

    def __init__(self, spec: "RunSpec", detached: bool) -> None:
        from katoray.runtime.node import start_shards

        check_stores(spec)   # an unusable store fails here, clearly, before any actor starts
        self.run_id, self.kb_ids = spec.run_id, spec.all_kb_ids
        # Not waited for: they start while the pool loads its tokenizers; each mapper checks
        # them (up, serving spec.kb_ids) before its first send.
        self.levels = start_shards(spec.run_id, spec.store, spec.node_ids, spec.session_configs, spec.kb_ids,
                                   spec.hierarchy.metadata_cap, detached, wait=False)
        self.handles = [handle for level in self.levels for handle in level]   # level by level, shard by shard
        self._pending: list | None = None
        self._latest: list[int] | None = None
        self._asked = 0.0

    def node_stats(self) -> list[dict[str, Any]]:
        """Each level's ``NodeActor.stats()`` (a sharded level's added up: patterns, totals and
        CPU seconds summed, the largest peak memory)."""
        import ray

        return self._per_level(ray.get([h.stats.remote() for h in self.handles]))

    def _per_level(self, stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = iter(stats)
        return [merge_node_stats([next(answers) for _ in level]) for level in self.levels]

    def live_pattern_counts(self) -> list[int] | None:
        """Latest counts without blocking: ask now and then, read answers when they are in."""
        import ray

        if self._pending is not None and not ray.wait(self._pending, num_returns=len(self._pending), timeout=0)[1]:
            self._latest = [s["patterns"] for s in self._per_level(ray.get(self._pending))]
            self._pending = None
        if self._pending is None and time.monotonic() - self._asked >= NODE_STATS_INTERVAL_S:
            self._pending = [h.stats.remote() for h in self.handles]
            self._asked = time.monotonic()
        return self._latest

    def accept(self, row: Mapping[str, Any], key: str) -> None:
        pass   # the mapper already made the batch durable at every node

    def release(self, keep: bool, detached: bool) -> None:
        from katoray.runtime.node import check_nodes, keep_nodes, stop_nodes

        if detached:
            return
        try:
            check_nodes(self.run_id, self.handles, self.kb_ids, RELEASE_CHECK_TIMEOUT_S)
        except KatorayError:
            return           # get_if_exists handed us another configuration's actors: not ours to end
        except Exception:    # dead or never up (the run's own error says why): end what is left
            pass
        if keep:
            keep_nodes(self.run_id, self.handles)
        else:
            stop_nodes(self.handles)


def merge_node_stats(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's ``NodeActor.stats()`` from its shards': counts and CPU seconds add up (each
    pattern is in one shard), peak memory is the largest process's; ``shards`` says how many."""
    if len(shards) == 1:
        return shards[0]
    out = dict(shards[0], kb_id=[s["kb_id"] for s in shards], shards=len(shards))
    for key in ("patterns", "total_pattern_frequencies", "total_symbols_in_patterns_frequencies",
                "batches_applied_here", "cpu_seconds"):
        out[key] = sum(s[key] for s in shards)
    out["symbols"] = None        # distinct symbols are not a sum over shards (store.sharded counts them)
    peaks = [s["peak_rss_mb"] for s in shards if s["peak_rss_mb"] is not None]
    out["peak_rss_mb"] = max(peaks) if peaks else None
    return out
