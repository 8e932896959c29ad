"""``RemoteKatoSession``: the same session API as ``KatoSession``, served by a KATO HTTP server.

Used for hierarchy nodes with a ``base_url`` (a real KATO server, or ``katoray serve``). Each call
is one HTTP round trip, so hierarchical training through remote nodes drives sessions level by
level (``katoray.hierarchy.sessions``) instead of the bulk map. Learning calls are never retried
automatically: a retried learn could count a pattern twice.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import requests

from katoray.engine.naming import strip_prefix
from katoray.errors import KatorayError, StoreUnreachableError

TIMEOUT_S = 120.0  # per request; observe-sequence on a busy server can be slow


class RemoteKatoError(KatorayError):
    """The KATO server answered with an error."""


class RemoteKatoSession:
    """A session on a KATO server at ``base_url`` for node ``node_id``."""

    def __init__(self, base_url: str, node_id: str, config: Mapping[str, Any] | None = None,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.node_id = node_id
        self.timeout_s = timeout_s
        self._http = requests.Session()
        body = {"node_id": node_id, **({"config": dict(config)} if config else {})}
        self.session_id = self._call("POST", "/sessions", body)["session_id"]

    # -- transport ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        url = self.base_url + path
        try:
            response = self._http.request(method, url, json=body, params=params, timeout=self.timeout_s)
        except requests.ConnectionError as err:
            raise StoreUnreachableError(f"KATO server {self.base_url} is unreachable ({type(err).__name__}); "
                                        "start it, or remove base_url to use the built-in engine") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise RemoteKatoError(f"{method} {path} on {self.base_url} failed with {response.status_code}: {detail}")
        return response.json()

    def _session_call(self, method: str, action: str, body: dict | None = None) -> dict:
        return self._call(method, f"/sessions/{self.session_id}/{action}", body)

    # -- KATO session API -----------------------------------------------------------------------
    def observe(self, strings: Iterable[str] | None = None, vectors=None, emotives=None, metadata=None,
                unique_id: str | None = None) -> dict[str, Any]:
        body = {"strings": list(strings or []), "vectors": vectors or [], "emotives": emotives or {},
                "metadata": metadata or {}}
        if unique_id:
            body["unique_id"] = unique_id
        return self._session_call("POST", "observe", body)

    def observe_sequence(self, observations: Iterable[Mapping[str, Any]], learn_after_each: bool = False,
                         learn_at_end: bool = False, clear_stm_between: bool = False) -> dict[str, Any]:
        return self._session_call("POST", "observe-sequence", {
            "observations": [dict(o) for o in observations], "learn_after_each": learn_after_each,
            "learn_at_end": learn_at_end, "clear_stm_between": clear_stm_between})

    def learn(self) -> str:
        """``PTRN|<sha1>``, or ``""`` when STM holds fewer than 2 symbols (an empty STM included)."""
        if not self.get_stm():
            return ""
        return self._session_call("POST", "learn").get("pattern_name", "")

    def get_stm(self) -> list[list[str]]:
        return self._session_call("GET", "stm")["stm"]

    def get_predictions(self) -> list[dict[str, Any]]:
        return self.predict()["predictions"]

    def predict(self) -> dict[str, Any]:
        return self._session_call("GET", "predictions")

    def clear_stm(self) -> dict[str, Any]:
        return self._session_call("POST", "clear-stm")

    def clear_all(self) -> dict[str, Any]:
        return self._session_call("POST", "clear-all")

    def get_config(self) -> dict[str, Any]:
        return self._session_call("GET", "config")["config"]

    def update_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return self._session_call("POST", "config", {"config": dict(config)})

    def get_pattern(self, name: str) -> dict[str, Any] | None:
        try:
            answer = self._call("GET", f"/pattern/PTRN|{strip_prefix(name)}", params={"node_id": self.node_id})
        except RemoteKatoError as err:
            if " 404:" in str(err):
                return None
            raise
        inner = answer.get("pattern", {})
        return inner.get("pattern") if inner.get("status") == "okay" else None

    def close(self) -> None:
        try:
            self._call("DELETE", f"/sessions/{self.session_id}")
        finally:
            self._http.close()

    def __repr__(self) -> str:
        return f"RemoteKatoSession({self.base_url!r}, node_id={self.node_id!r})"
