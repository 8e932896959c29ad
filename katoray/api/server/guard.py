"""``RequestGuard``: the ASGI layer in front of every route: API key, body size, request metrics.

- With an API key set, a request without it (``X-API-Key: <key>`` or ``Authorization: Bearer
  <key>``) gets 401 before anything else runs; ``/docs`` and ``/openapi.json`` included.
- A body larger than ``max_body_bytes`` gets 413: at once when ``Content-Length`` says so (the
  body is never read), or as soon as a chunked body passes the limit. (A ``Content-Length``
  that is not a number, or negative, is refused with 400 by uvicorn's HTTP parser.)
- Every answer's status and time go to ``ServerMetrics``.
"""
from __future__ import annotations

import hmac
import time
from typing import Any, Awaitable, Callable

from fastapi.exceptions import HTTPException

from katoray.api.server.errors import KatoJSONResponse, internal_error
from katoray.api.server.metrics import ServerMetrics

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestGuard:
    """Pure ASGI middleware (no per-request task or copy of the body)."""

    def __init__(self, app, *, max_body_bytes: int, api_key: str | None, metrics: ServerMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode() if api_key else None
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]   # what was answered (set by the response start)

        started_answer = [False]

        async def send_recording(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0], started_answer[0] = message["status"], True
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_recording)
            else:
                await self.app(scope, self._limited(receive), send_recording)
        except Exception as exc:   # noqa: BLE001 - answered and logged once, never a dropped connection
            if started_answer[0]:
                raise
            await internal_error(scope["method"], scope["path"], exc)(scope, receive, send_recording)
        finally:
            self.metrics.record(status[0], time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> KatoJSONResponse | None:
        headers = dict(scope["headers"])
        if self.api_key is not None and not self._has_key(headers):
            return KatoJSONResponse({"detail": "this server requires an API key: send it as 'X-API-Key: <key>' or "
                                               "'Authorization: Bearer <key>'"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large(int(length))
        return None

    def _has_key(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        if given is None:
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            given = token.strip() if scheme.lower() == b"bearer" else b""
        return hmac.compare_digest(given, self.api_key)

    def _too_large(self, size: int | None) -> KatoJSONResponse:
        return KatoJSONResponse({"detail": self._too_large_detail(size)}, status_code=413,
                                headers={"Connection": "close"})

    def _too_large_detail(self, size: int | None) -> str:
        said = f"of {size} bytes " if size is not None else ""
        return (f"request body {said}exceeds this server's limit of {self.max_body_bytes} bytes; send less "
                "per request, or raise --max-body-mb")

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that stops a body as soon as it passes the limit (chunked bodies)."""
        seen = 0

        async def receive_limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise HTTPException(413, self._too_large_detail(None), headers={"Connection": "close"})
            return message

        return receive_limited

