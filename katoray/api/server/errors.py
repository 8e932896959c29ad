"""Every failure answered, in KATO's shapes: nothing reaches the client as a dropped connection.

- ``ApiError`` (the service's refusals): its status and body (``{"detail": ...}``, or KATO's
  ``{"error": {"code": "SESSION_NOT_FOUND", ...}}``).
- Validation: FastAPI's own 422 ``{"detail": [{"type", "loc", "msg", "input"}]}``, as KATO.
- A body that is not JSON at all: 400 saying why (invalid UTF-8 and where, nesting too deep).
- A store that fails: 503 naming the store error; anything else: 500 with the error's type,
  logged once with its traceback (that is a katoray bug; ``guard.RequestGuard`` answers it).
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException   # what FastAPI raises for a body it cannot parse

from katoray.api.server.service import ApiError
from katoray.errors import StoreError

log = logging.getLogger("katoray.api")


class KatoJSONResponse(JSONResponse):
    """Compact JSON, one ``json.dumps``; NaN and infinities become null (as pydantic writes
    them in KATO's answers) instead of failing the response."""

    def render(self, content: Any) -> bytes:
        try:
            return _dumps(content)
        except ValueError:   # a NaN or an infinity somewhere (allow_nan=False)
            return _dumps(_finite(content))


def _dumps(content: Any) -> bytes:
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate (echoed from a refused request): JSON escapes it
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return KatoJSONResponse(exc.body, status_code=exc.status)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422 body (KATO's), rendered so that an echoed lone surrogate cannot fail it."""
    return KatoJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail
    if exc.status_code == 400 and exc.__cause__ is not None:   # FastAPI could not parse the body
        detail = body_error(exc.__cause__)
    return KatoJSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


def body_error(cause: BaseException) -> str:
    """Why a request body could not be read as JSON, for the client."""
    if isinstance(cause, UnicodeDecodeError):
        return (f"request body is not valid UTF-8 (byte {cause.object[cause.start]:#04x} at offset {cause.start}); "
                "send JSON encoded as UTF-8")
    if isinstance(cause, RecursionError):
        return "request body nests JSON arrays or objects too deeply to read; flatten it"
    return f"request body could not be read as JSON ({type(cause).__name__}: {cause})"


async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
    log.warning("%s %s: store error: %s", request.method, request.url.path, exc)
    return KatoJSONResponse({"detail": f"the knowledge base store failed: {exc}"}, status_code=503)


def internal_error(method: str, path: str, exc: BaseException) -> KatoJSONResponse:
    """The answer to an exception nothing else handled (a katoray bug), logged once here."""
    log.error("%s %s failed", method, path, exc_info=exc)
    return KatoJSONResponse({"detail": f"internal error ({type(exc).__name__}): {exc}"}, status_code=500)
