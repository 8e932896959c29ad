"""KATO's API: a session over the built-in engine, a client for a KATO server, and the HTTP server.

- ``KatoSession`` (``api.session``): one KATO session on a node's knowledge base, in process.
- ``RemoteKatoSession`` (``api.remote``): the same calls, answered by a KATO HTTP server.
- ``api.server``: KATO's HTTP API over the built-in engine (``katoray serve``), on FastAPI.

Names import on first use: a node actor needs the session, not the HTTP client.
"""
from katoray.util import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "katoray.api.session": ["KatoSession"],
    "katoray.api.remote": ["RemoteKatoSession", "RemoteKatoError"],
})
del lazy_exports
