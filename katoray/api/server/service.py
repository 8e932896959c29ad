"""``KatoService``: KATO's HTTP operations over katoray's engine, with no HTTP in it.

Each method takes plain values and returns the JSON body KATO answers with (spec §5), or raises
an ``ApiError`` carrying KATO's status and error body. Routes (``app.py``) only parse and
serialise, so everything here is testable in process.

Knowledge bases: node ``n`` is ``kb_id_for(n)`` at the store URL, opened once and shared by all
sessions of the node, or, serving a trained run (``nodes=``), the run's knowledge base for each
of its node names.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Mapping

from katoray.api.server.kato_config import ConfigValidationError, effective_config, update_kato_config
from katoray.api.server.sessions import DEFAULT_TTL_S, ServedSession, SessionTable, iso_utc
from katoray.api.session import KatoSession
from katoray.engine.config import SessionConfig
from katoray.engine.emotives import average_emotives
from katoray.engine.naming import pattern_hash, strip_prefix
from katoray.errors import ConfigError
from katoray.store import KnowledgeBase, kb_id_for, redact_url
from katoray.store.base import PatternDelta, reading
from katoray.store.probe import probe_store
from katoray.store.sharded import open_level


class ApiError(Exception):
    """An answer other than 200: ``status`` and the JSON ``body`` KATO sends with it."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body

    @classmethod
    def detail(cls, status: int, detail: Any) -> "ApiError":
        return cls(status, {"detail": detail})


def session_not_found(session_id: str) -> ApiError:
    """KATO's middleware answer for a session route whose session is gone."""
    return ApiError(404, {"error": {"code": "SESSION_NOT_FOUND",
                                    "message": f"Session {session_id} not found or expired",
                                    "session_id": session_id}})


class KatoService:
    """Sessions and knowledge bases behind KATO's HTTP API.

    Args:
        store: knowledge-base URL (``memory://name``, ``sqlite:///dir``, ``mongodb://...``).
        nodes: node id -> (store URL, kb ids) for nodes served from elsewhere (a trained run's
            levels: one kb id, or one per shard); other node ids get ``kb_id_for(node_id)`` at ``store``.
        service_name: what ``/health`` and ``/status`` call this server.
    """

    def __init__(self, store: str = "memory://katoray-server", *, nodes: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
                 service_name: str = "katoray") -> None:
        self.store = store
        self.nodes = dict(nodes or {})
        self.service_name = service_name
        self.started_s = time.time()
        self.sessions = SessionTable()
        self._kbs: dict[tuple[str, str], KnowledgeBase] = {}   # (store URL, kb id) -> open KB
        self._kb_opened_s: dict[str, float] = {}
        self._kbs_lock = threading.Lock()

    # -- knowledge bases -------------------------------------------------------------------------
    def kb(self, node_id: str) -> KnowledgeBase:
        """The node's knowledge base, opened on first use."""
        url, kb_ids = where = self.nodes.get(node_id) or (self.store, (kb_id_for(node_id),))
        kb_id = self.processor_id(node_id)
        with self._kbs_lock:
            kb = self._kbs.get(where)
            if kb is None:
                try:
                    kb = self._kbs[where] = open_level(url, kb_ids)   # a sharded level: one view of its shards
                except ConfigError as err:   # a node id the store cannot name a knowledge base after
                    raise ApiError.detail(422, f"node_id {node_id!r}: its knowledge base cannot be opened: {err}") \
                        from None
                self._kb_opened_s[kb_id] = time.time()
            return kb

    def check_store(self) -> None:
        """Check now, creating nothing, that the store can serve (and a run's knowledge bases
        open), so a store that is down stops start-up with one message.

        Raises:
            StoreUnreachableError, StoreError, ConfigError: the store cannot serve (the message says why).
        """
        probe_store(self.store)
        for node_id in self.nodes:
            self.kb(node_id).count()

    def close(self) -> None:
        with self._kbs_lock:
            for kb in self._kbs.values():
                kb.close()
            self._kbs.clear()

    # -- sessions --------------------------------------------------------------------------------
    def create_session(self, node_id: str, config: Mapping[str, Any] | None = None,
                       metadata: Mapping[str, Any] | None = None, ttl_seconds: int | None = None) -> dict[str, Any]:
        settings, warnings = _session_settings(config)
        session = KatoSession(node_id, self.kb(node_id), settings)
        served = self.sessions.add(session, ttl_seconds or DEFAULT_TTL_S, dict(metadata or {}))
        return _warned(served.record(effective_config(settings)), warnings)

    def session(self, session_id: str) -> ServedSession:
        """The live session (its expiry extended), or KATO's SESSION_NOT_FOUND."""
        served = self.sessions.get(session_id)
        if served is None:
            raise session_not_found(session_id)
        return served

    def session_info(self, session_id: str) -> dict[str, Any]:
        served = self.sessions.get(session_id)
        if served is None:
            raise ApiError.detail(404, f"Session {session_id} not found or expired")
        remaining = max(0, int(served.expires_s - time.time()))
        return served.record(effective_config(served.session.config), remaining)

    def session_exists(self, session_id: str) -> dict[str, Any]:
        return {"exists": self.sessions.exists(session_id), "expired": False, "session_id": session_id}

    def session_count(self) -> dict[str, int]:
        return {"active_session_count": self.sessions.count()}

    def delete_session(self, session_id: str) -> dict[str, str]:
        if self.sessions.remove(session_id) is None:
            raise session_not_found(session_id)
        return {"status": "deleted", "session_id": session_id}

    def extend_session(self, session_id: str, ttl_seconds: int) -> dict[str, Any]:
        if self.sessions.extend(session_id, ttl_seconds) is None:
            raise session_not_found(session_id)
        return {"status": "extended", "session_id": session_id, "ttl_seconds": ttl_seconds}

    # -- configuration ---------------------------------------------------------------------------
    def get_config(self, session_id: str) -> dict[str, Any]:
        served = self.session(session_id)
        return {"session_id": session_id, "config": effective_config(served.session.config)}

    def update_config(self, session_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """KATO's body is ``{"config": {...}}`` or the bare dict of keys."""
        served = self.session(session_id)
        values = body.get("config", body) if isinstance(body, Mapping) else body
        with served.lock:
            config, warnings = _session_settings(values, served.session.config)
            served.session.set_config(config)
        return _warned({"status": "okay", "message": "Configuration updated", "session_id": session_id}, warnings)

    # -- observe / learn -------------------------------------------------------------------------
    def observe(self, session_id: str, observation: Mapping[str, Any]) -> dict[str, Any]:
        served = self.session(session_id)
        with served.lock:
            result = _engine_call(served.session.observe, **observation)
            served.percept = _percept(observation, served.session)
        return {**result, "session_id": session_id}

    def observe_sequence(self, session_id: str, observations: list[Mapping[str, Any]], learn_after_each: bool = False,
                         learn_at_end: bool = False, clear_stm_between: bool = False) -> dict[str, Any]:
        served = self.session(session_id)
        with served.lock:
            result = _engine_call(served.session.observe_sequence, observations, learn_after_each,
                                  learn_at_end, clear_stm_between)
            if observations:
                served.percept = _percept(observations[-1], served.session)
        return result

    def learn(self, session_id: str) -> dict[str, Any]:
        served = self.session(session_id)
        with served.lock:
            if not served.session.get_stm():
                raise ApiError.detail(400, "Cannot learn from empty STM")
            events = len(served.session.get_stm())
            name = served.session.learn()
        return {"status": "learned", "pattern_name": name, "session_id": session_id, "processor_id": None,
                "message": f"Learned pattern {name} from {events} events"}

    def stm(self, session_id: str) -> dict[str, Any]:
        served = self.session(session_id)
        with served.lock:
            stm = served.session.get_stm()
        return {"stm": stm, "session_id": session_id, "length": len(stm)}

    def clear_stm(self, session_id: str) -> dict[str, str]:
        served = self.session(session_id)
        with served.lock:
            served.session.clear_stm()
            served.percept = {}
        return {"status": "cleared", "session_id": session_id}

    def clear_all(self, session_id: str) -> dict[str, str]:
        """Wipe the node's whole knowledge base (every session of the node sees it) and this STM."""
        served = self.session(session_id)
        with served.lock:
            served.session.clear_all()
            served.percept = {}
        return {"status": "cleared", "session_id": session_id, "scope": "all"}

    def finalize_training(self, session_id: str) -> dict[str, Any]:
        """KATO precomputes per-pattern entropy here; katoray computes every metric at prediction time."""
        served = self.session(session_id)
        return {"status": "completed", "patterns_processed": 0, "time_ms": 0.0, "session_id": session_id,
                "node_id": served.node_id, "message": "nothing to precompute: katoray computes entropy and TF "
                                                      "metrics exactly at prediction time"}

    # -- predictions and session data ------------------------------------------------------------
    def predictions(self, session_id: str) -> dict[str, Any]:
        served = self.session(session_id)
        with served.lock:
            result = served.session.predict()
        return {"predictions": result["predictions"], "future_potentials": result["future_potentials"],
                "session_id": session_id, "processor_id": None, "count": result["count"], "time": None,
                "unique_id": None}

    def percept_data(self, session_id: str) -> dict[str, Any]:
        served = self.session(session_id)
        return {"percept_data": served.percept, "session_id": session_id, "node_id": served.node_id}

    def cognition_data(self, session_id: str) -> dict[str, Any]:
        served = self.session(session_id)
        with served.lock:
            session = served.session
            stm = session.get_stm()
            emotives = session.percept_emotives()
            predictions = session.get_predictions() if session.config.process_predictions else []
            data = {"predictions": predictions, "emotives": emotives[-1] if emotives else {},
                    "symbols": [s for event in stm for s in event], "command": "", "metadata": {}, "path": [],
                    "strings": [], "vectors": [], "short_term_memory": stm, "time": session.time}
        return {"cognition_data": data, "session_id": session_id, "node_id": served.node_id}

    # -- knowledge-base reads --------------------------------------------------------------------
    def pattern(self, pattern_id: str, node_id: str) -> dict[str, Any]:
        """KATO's answer: 200 with ``status: error`` inside when the pattern does not exist."""
        record = self.kb(node_id).get_pattern(strip_prefix(pattern_id))
        inner = ({"status": "okay", "pattern": record.to_dict()} if record is not None else
                 {"status": "error", "message": f"Pattern {pattern_id} not found"})
        return {"pattern": inner, "node_id": self.processor_id(node_id)}

    def symbol_stats(self, node_id: str) -> dict[str, Any]:
        kb = self.kb(node_id)
        with reading(kb):
            symbols = sorted({s for record in kb.iter_patterns() for event in record.pattern_data for s in event})
            freq, pmf = kb.symbol_frequencies(symbols), kb.symbol_pmf(symbols)
        return {"symbols": {s: {"frequency": freq[s], "pmf": pmf[s]} for s in symbols if s in freq},
                "node_id": self.processor_id(node_id)}

    # -- bulk writes (katoray's own routes: training through a server, see store.kato_http) -------
    def apply(self, node_id: str, deltas: list[PatternDelta], batch_id: str | None, persistence: int,
              metadata_cap: int | None) -> dict[str, Any]:
        """Merge a batch into the node's knowledge base (idempotent by ``batch_id``)."""
        wrong = next((d.name for d in deltas if pattern_hash(d.events) != d.name), None)
        if wrong is not None:
            raise ApiError.detail(422, f"pattern {wrong}: its name is not the sha1 of its events (KATO's name); "
                                       "send each pattern's own name")
        kb = self.kb(node_id)
        before = kb.count()
        applied = kb.apply(deltas, batch_id, persistence=persistence, metadata_cap=metadata_cap)
        return {"applied": applied, "new_patterns": kb.count() - before if applied else 0,
                "node_id": self.processor_id(node_id)}

    def is_applied(self, node_id: str, batch_id: str) -> dict[str, Any]:
        return {"applied": self.kb(node_id).is_applied(batch_id), "batch_id": batch_id,
                "node_id": self.processor_id(node_id)}

    def claim_owner(self, node_id: str, owner: str) -> dict[str, Any]:
        """Record the run that owns the node's KB if none has; the owner recorded."""
        return {"owner": self.kb(node_id).claim_owner(owner), "node_id": self.processor_id(node_id)}

    def totals(self, node_id: str) -> dict[str, Any]:
        return {**dataclasses.asdict(self.kb(node_id).totals()), "node_id": self.processor_id(node_id)}

    def symbol_affinities(self, node_id: str) -> dict[str, Any]:
        """KATO's per-symbol emotive sums of the node."""
        return {"affinities": self.kb(node_id).symbol_affinity(), "node_id": self.processor_id(node_id)}

    def symbol_affinity(self, symbol: str, node_id: str) -> dict[str, Any]:
        found = self.kb(node_id).symbol_affinity([symbol])
        return {"symbol": symbol, "affinity": found.get(symbol, {}), "node_id": self.processor_id(node_id)}

    def processor_id(self, node_id: str) -> str:
        """What KATO calls the node's processor: its kb id (a sharded level's node id, since it
        has one kb per shard)."""
        if node_id not in self.nodes:
            return kb_id_for(node_id)
        kb_ids = self.nodes[node_id][1]
        return kb_ids[0] if len(kb_ids) == 1 else node_id

    # -- service state ---------------------------------------------------------------------------
    def node_stats(self) -> dict[str, Any]:
        """KATO's processor-manager statistics, one entry per open knowledge base."""
        with self._kbs_lock:
            opened = dict(self._kb_opened_s)
        return {"total_processors": len(opened), "max_processors": None, "eviction_ttl_seconds": None,
                "processors": [{"processor_id": kb_id, "created_at": iso_utc(at)} for kb_id, at in sorted(opened.items())]}

    def session_stats(self) -> dict[str, Any]:
        live = self.sessions.snapshot()
        stm_sizes = [len(s.session.get_stm()) for s in live]
        return {"total_sessions": len(live), "active_sessions": len(live), "expired_sessions": 0,
                "nodes_with_sessions": len({s.node_id for s in live}),
                "average_stm_size": sum(stm_sizes) / max(len(live), 1), "total_stm_events": sum(stm_sizes)}

    def describe_store(self) -> str:
        return redact_url(self.store)


# -- helpers ---------------------------------------------------------------------------------------
def _session_settings(values: Mapping[str, Any] | None,
                      base: SessionConfig | None = None) -> tuple[SessionConfig, list[str]]:
    try:
        return update_kato_config(base or SessionConfig(), values or {})
    except ConfigValidationError as err:
        raise ApiError.detail(400, {"error": "Configuration validation failed",
                                    "validation_errors": err.errors}) from None


def _warned(body: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    return {**body, "warnings": warnings} if warnings else body


def _engine_call(method, *args, **kwargs) -> dict[str, Any]:
    """An engine call whose bad input (a ValueError naming it) becomes a 400."""
    try:
        return method(*args, **kwargs)
    except ValueError as err:
        raise ApiError.detail(400, str(err)) from None


def _percept(observation: Mapping[str, Any], session: KatoSession) -> dict[str, Any]:
    """KATO's percept_data: the last observation, its strings sorted, emotives averaged over STM."""
    return {"strings": sorted(observation.get("strings") or []), "vectors": observation.get("vectors") or [],
            "emotives": average_emotives(session.percept_emotives()), "path": [],
            "metadata": observation.get("metadata") or {}}
