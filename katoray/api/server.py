"""A KATO-compatible HTTP server over the built-in engine (``katoray serve``).

Serves KATO's session API (spec §5) so KATO clients, including ``RemoteKatoSession`` and
kato-lm's notebook client, can use katoray's engine: ``POST /sessions``, then
``/sessions/{id}/observe | observe-sequence | learn | predictions | stm | clear-stm | clear-all |
config``, ``DELETE /sessions/{id}``, ``GET /pattern/{name}?node_id=``, ``GET /health``. Each
node's knowledge base is opened once (``<node_id>_kato`` at the store URL) and shared by its
sessions. Standard library only; one thread per request, one lock per session.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from katoray.api.session import KatoSession
from katoray.store import KnowledgeBase, kb_id_for, open_store


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status, self.detail = status, detail


class KatoService:
    """Sessions and knowledge bases behind the HTTP API (no HTTP here: testable directly)."""

    def __init__(self, store: str = "memory://katoray-server") -> None:
        self.store = store
        self._kbs: dict[str, KnowledgeBase] = {}
        self._sessions: dict[str, tuple[KatoSession, threading.Lock]] = {}
        self._lock = threading.Lock()

    def kb(self, node_id: str) -> KnowledgeBase:
        with self._lock:
            kb_id = kb_id_for(node_id)
            if kb_id not in self._kbs:
                self._kbs[kb_id] = open_store(self.store, kb_id)
            return self._kbs[kb_id]

    def create_session(self, body: dict) -> dict:
        node_id = body.get("node_id")
        if not isinstance(node_id, str) or not node_id:
            raise ApiError(422, "node_id is required")
        try:
            session = KatoSession(node_id, self.kb(node_id), body.get("config"))
        except ValueError as err:
            raise ApiError(400, {"error": "Configuration validation failed", "message": str(err)}) from None
        session_id = f"session-{uuid.uuid4().hex}-{int(time.time() * 1000)}"
        with self._lock:
            self._sessions[session_id] = (session, threading.Lock())
        return {"session_id": session_id, "node_id": node_id, "session_config": session.get_config(),
                "metadata": body.get("metadata") or {}, "ttl_seconds": body.get("ttl_seconds") or 3600}

    def session(self, session_id: str) -> tuple[KatoSession, threading.Lock]:
        found = self._sessions.get(session_id)
        if found is None:
            raise ApiError(404, f"Session {session_id} not found or expired")
        return found

    def delete_session(self, session_id: str) -> dict:
        self.session(session_id)
        with self._lock:
            self._sessions.pop(session_id, None)
        return {"status": "deleted", "session_id": session_id}

    def call(self, session_id: str, action: str, body: dict) -> dict:
        session, lock = self.session(session_id)
        with lock:
            try:
                return {**self._act(session, action, body), "session_id": session_id}
            except ValueError as err:
                raise ApiError(400, str(err)) from None

    def _act(self, s: KatoSession, action: str, body: dict) -> dict:
        if action == "observe":
            return s.observe(**{k: body.get(k) for k in ("strings", "vectors", "emotives", "metadata", "unique_id")})
        if action == "observe-sequence":
            flags = {k: bool(body.get(k, False)) for k in ("learn_after_each", "learn_at_end", "clear_stm_between")}
            return s.observe_sequence(body.get("observations") or [], **flags)
        if action == "learn":
            if not s.get_stm():
                raise ApiError(400, "Cannot learn from empty STM")
            name = s.learn()
            return {"status": "learned", "pattern_name": name, "message": f"Learned pattern {name}"}
        if action == "stm":
            stm = s.get_stm()
            return {"stm": stm, "length": len(stm)}
        if action == "predictions":
            return s.predict()
        if action == "clear-stm":
            return s.clear_stm()
        if action == "clear-all":
            return s.clear_all()
        if action == "config" and body:
            return s.update_config(body)
        if action == "config":
            return {"config": s.get_config()}
        raise ApiError(404, f"unknown session endpoint {action!r}")

    def pattern(self, name: str, node_id: str) -> dict:
        record = self.kb(node_id).get_pattern(name.removeprefix("PTRN|"))
        if record is None:
            raise ApiError(404, f"Pattern {name} not found in node {node_id}")
        return {"pattern": {"status": "okay", "pattern": record.to_dict()}, "node_id": kb_id_for(node_id)}


_SESSION_PATH = re.compile(r"^/sessions/([^/]+)(?:/([a-z-]+))?$")


def make_handler(service: KatoService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: no per-request stderr lines
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            try:
                self._reply(200, self._route(method, unquote(url.path), parse_qs(url.query), self._body()))
            except ApiError as err:
                self._reply(err.status, {"detail": err.detail})

        def _route(self, method: str, path: str, query: dict, body: dict) -> dict:
            if path == "/health":
                return {"status": "healthy", "service": "katoray"}
            if path == "/sessions" and method == "POST":
                return service.create_session(body)
            if path.startswith("/pattern/") and method == "GET":
                return service.pattern(path[len("/pattern/"):], (query.get("node_id") or ["default_node"])[0])
            match = _SESSION_PATH.match(path)
            if match is None:
                raise ApiError(404, f"no endpoint {method} {path}")
            session_id, action = match.groups()
            if action is None:
                if method == "DELETE":
                    return service.delete_session(session_id)
                session, _ = service.session(session_id)
                return {"session_id": session_id, "node_id": session.node_id, "session_config": session.get_config()}
            return service.call(session_id, action, body if method == "POST" else {})

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return {}
            try:
                body = json.loads(self.rfile.read(length))
            except json.JSONDecodeError as err:
                raise ApiError(400, f"request body is not JSON: {err}") from None
            if not isinstance(body, dict):
                raise ApiError(400, "request body must be a JSON object")
            return body

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def make_server(host: str = "127.0.0.1", port: int = 8000, store: str = "memory://katoray-server") -> ThreadingHTTPServer:
    """An HTTP server (not started): ``server.serve_forever()`` runs it."""
    return ThreadingHTTPServer((host, port), make_handler(KatoService(store)))
