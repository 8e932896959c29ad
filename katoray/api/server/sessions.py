"""The server's sessions: each a ``KatoSession`` with KATO's session record around it.

A session lives ``ttl_seconds`` (KATO's default 3600) past its last use: every access through
``SessionTable.get`` extends it (KATO's ``SESSION_AUTO_EXTEND``), ``exists`` does not, and an
expired session is gone (404) whoever asks next. Each session has its own lock: KATO serialises
the requests of one session, while sessions on the same node run side by side (their shared
knowledge base keeps reads consistent, see ``katoray.store.locking``).
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from katoray.api.session import KatoSession

DEFAULT_TTL_S = 3600
SWEEP_EVERY_S = 1.0   # expired sessions are forgotten at most this often (a scan of all of them)


def iso_utc(epoch_s: float) -> str:
    """A time as KATO's responses spell it (pydantic's ISO 8601 with ``Z``)."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat().replace("+00:00", "Z")


def new_session_id(now_s: float) -> str:
    """KATO's session id: ``session-<uuid4 hex>-<epoch ms>``."""
    return f"session-{uuid.uuid4().hex}-{int(now_s * 1000)}"


@dataclass
class ServedSession:
    """One client session: the engine's session plus what KATO reports about it."""

    session_id: str
    session: KatoSession
    created_s: float
    ttl_s: int
    metadata: dict[str, Any]
    expires_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    percept: dict[str, Any] = field(default_factory=dict)   # the last observation, as KATO's percept_data

    def __post_init__(self) -> None:
        self.expires_s = self.created_s + self.ttl_s

    @property
    def node_id(self) -> str:
        return self.session.node_id

    def record(self, config: dict[str, Any], ttl_s: int | None = None) -> dict[str, Any]:
        """KATO's SessionResponse."""
        return {"session_id": self.session_id, "node_id": self.node_id, "created_at": iso_utc(self.created_s),
                "expires_at": iso_utc(self.expires_s), "ttl_seconds": self.ttl_s if ttl_s is None else ttl_s,
                "metadata": self.metadata, "session_config": config}


class SessionTable:
    """Sessions by id, with KATO's expiry rules. ``clock`` returns epoch seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._sessions: dict[str, ServedSession] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.num_created = 0
        self.num_deleted = 0
        self._swept_s = float("-inf")   # when expired sessions were last forgotten

    def add(self, session: KatoSession, ttl_s: int, metadata: dict[str, Any]) -> ServedSession:
        now = self._clock()
        served = ServedSession(new_session_id(now), session, now, ttl_s, metadata)
        with self._lock:
            self._drop_expired(now)
            self._sessions[served.session_id] = served
            self.num_created += 1
        return served

    def get(self, session_id: str) -> ServedSession | None:
        """The live session, its expiry pushed ``ttl`` past now; None if absent or expired."""
        now = self._clock()
        with self._lock:
            served = self._live(session_id, now)
            if served is not None:
                served.expires_s = now + served.ttl_s
            return served

    def exists(self, session_id: str) -> bool:
        """Whether the session is live, without extending it."""
        with self._lock:
            return self._live(session_id, self._clock()) is not None

    def extend(self, session_id: str, ttl_s: int) -> ServedSession | None:
        now = self._clock()
        with self._lock:
            served = self._live(session_id, now)
            if served is not None:
                served.ttl_s, served.expires_s = ttl_s, now + ttl_s
            return served

    def remove(self, session_id: str) -> ServedSession | None:
        with self._lock:
            served = self._live(session_id, self._clock())
            if served is not None:
                del self._sessions[session_id]
                self.num_deleted += 1
            return served

    def count(self) -> int:
        return len(self.snapshot())

    def snapshot(self) -> list[ServedSession]:
        """The live sessions."""
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            return [s for s in self._sessions.values() if s.expires_s > now]

    def _live(self, session_id: str, now: float) -> ServedSession | None:
        served = self._sessions.get(session_id)
        if served is not None and served.expires_s <= now:
            del self._sessions[session_id]
            return None
        return served

    def _drop_expired(self, now: float) -> None:
        """Forget expired sessions; a scan of every session at most once per SWEEP_EVERY_S."""
        if now - self._swept_s < SWEEP_EVERY_S:
            return
        self._swept_s = now
        for session_id in [sid for sid, s in self._sessions.items() if s.expires_s <= now]:
            del self._sessions[session_id]
