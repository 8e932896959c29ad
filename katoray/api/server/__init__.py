"""KATO's HTTP API over katoray's engine (``katoray serve``), on FastAPI and uvicorn.

    katoray serve --store sqlite:///kb --port 8000             # or, from Python:
    from katoray.api.server import ServeSettings, serve
    serve(ServeSettings(store="sqlite:///kb", port=8000))

- ``service``: ``KatoService``, every operation as a plain method (no HTTP; testable in process).
- ``app``: ``create_app(service)``, the routes (KATO's, spec §5) and OpenAPI docs at ``/docs``.
- ``models``: request bodies (pydantic, KATO's types); ``kato_config``: KATO's config-update rules.
- ``guard`` (API key, body limit), ``errors`` (every failure answered), ``metrics``, ``sessions``.
- ``run``: ``serve`` / ``start_server`` (uvicorn on a socket bound here; the store checked first).
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.api.server.service": ["KatoService", "ApiError"],
    "katoray.api.server.app": ["create_app"],
    "katoray.api.server.run": ["ServeSettings", "RunningServer", "serve", "start_server"],
})
del lazy_exports
