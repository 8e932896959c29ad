"""``NodeActor``: the owner of one hierarchy level's knowledge base, as a named Ray actor.

Trainers send each level's merged deltas to that level's node actor (``apply``, idempotent by
batch id); people and analysis scripts talk KATO to it (``observe``, ``learn``,
``get_predictions``...). Constructor arguments are small (a store URL, a node id, a config dict)
and the store is reopened in ``__init__``, so a Ray restart of the actor is safe.

Deltas arrive in the columnar wire form of :mod:`katoray.store.wire`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from katoray.engine.config import SessionConfig
from katoray.errors import ConfigError
from katoray.runtime.usage import process_usage
from katoray.api.session import KatoSession
from katoray.store import kb_id_for, open_store
from katoray.store.urls import redact_url
from katoray.store.wire import apply_payload
from katoray.util import paused_gc


class NodeActor:
    """One level's knowledge base and a KATO session over it (made remote by ``start_nodes``).

    Args:
        store: knowledge-base URL (``sqlite:///dir``, ``mongodb://...``; ``memory://`` lives in
            this actor's process only).
        node_id: KATO node id.
        kb_id: the knowledge base; None = KATO's ``kb_id_for(node_id)`` (``node0_kato``). A run's
            levels pass theirs (``store.naming.run_kb_id``).
        session_config: KATO session settings for the interactive session and ``persistence``.
        metadata_cap: values kept per metadata key per pattern.
    """

    def __init__(self, store: str, node_id: str, session_config: SessionConfig | Mapping[str, Any] | None = None,
                 metadata_cap: int | None = None, kb_id: str | None = None) -> None:
        self.node_id = node_id
        self.store_url = store
        self.kb = open_store(store, kb_id or kb_id_for(node_id))
        self.metadata_cap = metadata_cap
        self.session = KatoSession(node_id, self.kb, session_config, metadata_cap)
        self.config = self.session.config
        self.num_applied = 0     # batches this process applied (a restart starts again at 0)

    def __repr__(self) -> str:
        return f"NodeActor({self.node_id!r}, store={redact_url(self.store_url)!r})"

    def ready(self) -> dict[str, Any]:
        """Cheap liveness check: who this actor is."""
        return {"node_id": self.node_id, "kb_id": self.kb.kb_id, "pid": os.getpid()}

    # -- training ---------------------------------------------------------------------------
    def apply(self, batch_id: str, deltas: bytes | Sequence) -> bool:
        """Merge one batch's deltas in one transaction; False if ``batch_id`` was applied before."""
        return self.apply_counted(batch_id, deltas)["applied"]

    def apply_counted(self, batch_id: str, deltas: bytes | Sequence) -> dict[str, Any]:
        """``apply``, also reporting how many patterns the batch created (``new_patterns``; exact
        unless another process writes this knowledge base at the same moment)."""
        with paused_gc():
            before = self.kb.count()
            applied = apply_payload(self.kb, deltas, batch_id, persistence=self.config.persistence,
                                    metadata_cap=self.metadata_cap)
            new = self.kb.count() - before if applied else 0
        self.num_applied += applied
        return {"applied": applied, "new_patterns": new}

    def is_applied(self, batch_id: str) -> bool:
        return self.kb.is_applied(batch_id)

    def stats(self) -> dict[str, Any]:
        """Unique patterns and KATO's totals for this level; this process's CPU seconds and peak
        memory in MiB (since the actor started)."""
        totals = self.kb.totals()
        return {"node_id": self.node_id, "kb_id": self.kb.kb_id, "patterns": totals.total_unique_patterns,
                "total_pattern_frequencies": totals.total_pattern_frequencies,
                "total_symbols_in_patterns_frequencies": totals.total_symbols_in_patterns_frequencies,
                "symbols": totals.num_symbols, "batches_applied_here": self.num_applied, **process_usage()}

    # -- the KATO session (interactive use) ----------------------------------------------------
    def observe(self, strings=None, vectors=None, emotives=None, metadata=None, unique_id=None) -> dict[str, Any]:
        return self.session.observe(strings, vectors, emotives, metadata, unique_id)

    def observe_sequence(self, observations, learn_after_each: bool = False, learn_at_end: bool = False,
                         clear_stm_between: bool = False) -> dict[str, Any]:
        return self.session.observe_sequence(observations, learn_after_each, learn_at_end, clear_stm_between)

    def learn(self) -> str:
        return self.session.learn()

    def get_predictions(self) -> list[dict[str, Any]]:
        return self.session.get_predictions()

    def get_stm(self) -> list[list[str]]:
        return self.session.get_stm()

    def clear_stm(self) -> dict[str, str]:
        return self.session.clear_stm()

    def get_pattern(self, name: str) -> dict[str, Any] | None:
        return self.session.get_pattern(name)

    def close(self) -> None:
        self.kb.close()


# -- lifecycle ---------------------------------------------------------------------------------
READY_TIMEOUT_S = 120.0   # a node actor that is not up by then will not come up (resources)


def start_nodes(run_id: str, store: str, node_ids: Sequence[str], session_configs: Sequence[SessionConfig],
                metadata_cap: int | None = None, detached: bool = False, wait: bool = True,
                timeout_s: float = READY_TIMEOUT_S, kb_ids: Sequence[str] | None = None) -> list:
    """Start (or re-attach to) one named node actor per level in the run's namespace.

    Returns actor handles, level order. An actor that already exists under the name is reused;
    it must serve the same knowledge bases (``kb_ids``; default KATO's ``kb_id_for`` of each node
    id), or this raises ``ConfigError``. With ``wait=False`` the actors start in the background and
    nothing is checked here (``check_nodes`` does it).
    """
    import ray

    from katoray.runtime.options import node_actor_options

    kb_ids = list(kb_ids) if kb_ids is not None else [kb_id_for(node_id) for node_id in node_ids]
    remote = ray.remote(NodeActor)
    handles = [remote.options(**node_actor_options(run_id, level, detached))
               .remote(store, node_id, cfg, metadata_cap, kb_id)
               for level, (node_id, cfg, kb_id) in enumerate(zip(node_ids, session_configs, kb_ids))]
    if wait:
        try:
            check_nodes(run_id, handles, kb_ids, timeout_s)
        except TimeoutError:
            for handle in handles:
                ray.kill(handle, no_restart=True)
            raise
    return handles


def check_nodes(run_id: str, handles: Sequence, kb_ids: Sequence[str], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until the node actors are up and check they serve ``kb_ids`` (level order)."""
    expected = list(kb_ids)
    found = [info["kb_id"] for info in wait_ready(handles, timeout_s)]
    if found != expected:
        raise ConfigError(f"run {run_id!r} already has node actors serving {found}, not {expected}: "
                          "use another run_id, or attach_nodes(run_id) to reuse them")


def wait_ready(handles: Sequence, timeout_s: float = READY_TIMEOUT_S) -> list[dict[str, Any]]:
    """``ready()`` of every actor, or a clear error if they do not come up in time."""
    import ray

    refs = [h.ready.remote() for h in handles]
    done, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        raise TimeoutError(
            f"{len(pending)} of {len(refs)} node actors did not start within {timeout_s:.0f} s; the cluster "
            "probably lacks free CPUs for them (each asks for a fraction of a CPU): lower num_workers, or "
            f"start Ray with more num_cpus (available now: {ray.available_resources().get('CPU', 0)})")
    return ray.get(refs)


def attach_nodes(run_id: str, num_levels: int | None = None) -> list:
    """Handles of a run's existing node actors (a later driver, an analysis script).

    With ``num_levels=None`` every level found (node0, node1, ... until one is missing).

    Raises:
        ValueError: no node actor of that run exists (or fewer than ``num_levels``).
    """
    import ray

    from katoray.runtime.options import namespace_for, node_actor_name

    namespace = namespace_for(run_id)
    handles, level = [], 0
    while num_levels is None or level < num_levels:
        try:
            handles.append(ray.get_actor(node_actor_name(level), namespace=namespace))
        except ValueError:
            if num_levels is not None or level == 0:
                raise ValueError(
                    f"run {run_id!r} has no node actor {node_actor_name(level)!r} in Ray namespace "
                    f"{namespace!r}: the run's driver has exited (start it with detached=True to keep "
                    "its nodes) or the run id is wrong") from None
            break
        level += 1
    return handles


# Ray ends a non-detached actor once no handle to it remains, named or not: nodes kept after a
# run (keep_nodes=True) are held here until stop_nodes.
_KEPT: dict[str, list] = {}


def keep_nodes(run_id: str, handles: Sequence) -> None:
    """Keep a run's node actors alive in this driver after the run (see ``attach_nodes``)."""
    _KEPT[run_id] = list(handles)


def stop_nodes(handles: Sequence, timeout_s: float = 60.0) -> None:
    """Close and end node actors for good (their knowledge bases stay in the store)."""
    import ray

    stopping = set(handles)                 # handles hash and compare by actor id
    for run_id, kept in list(_KEPT.items()):
        if stopping.intersection(kept):
            del _KEPT[run_id]

    # A clean close lets SQLite fold its write-ahead log back into the file; ray.wait, not
    # ray.get: a node that already died has nothing to close, and that is no error here.
    ray.wait([handle.close.remote() for handle in handles], num_returns=len(handles), timeout=timeout_s)
    for handle in handles:
        ray.kill(handle, no_restart=True)


# -- reading a live run ------------------------------------------------------------------------
class ActorNode:
    """A level of a live run read through its ``NodeActor`` (the actor's KATO session): the
    questions ``katoray.model`` asks of a level (``model.nodes.LocalNode`` answers them in process)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.handle, method).remote(*args))

    def predictions(self, symbols: list[str]) -> list[dict[str, Any]]:
        from katoray.hierarchy.sessions import one_symbol_events

        self._call("clear_stm")
        self._call("observe_sequence", one_symbol_events(symbols))
        return self._call("get_predictions")

    def pattern(self, name: str) -> list[list[str]] | None:
        record = self._call("get_pattern", name)
        return None if record is None else record["pattern_data"]

    def stats(self) -> dict[str, Any]:
        stats = self._call("stats")
        return {key: stats[key] for key in ("kb_id", "patterns", "symbols", "total_symbols_in_patterns_frequencies")}
