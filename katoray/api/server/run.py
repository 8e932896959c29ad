"""Serving: uvicorn on a socket we bind ourselves, after the store has answered.

    serve(ServeSettings(store="sqlite:///kb", port=8000))          # blocks until Ctrl-C
    with start_server(ServeSettings(port=0)) as server:             # a background thread
        requests.get(server.url + "/health")

Binding the socket here (``SO_REUSEADDR``, ``BACKLOG`` pending connections) gives the real port
of ``port=0`` before serving starts and keeps a burst of connects from being refused. uvicorn
keeps connections alive ``KEEP_ALIVE_S`` between requests; every accepted socket has
``TCP_NODELAY`` (see ``bind``), so an answer's header and body never wait for a delayed ACK.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Mapping

from katoray.api.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from katoray.api.server.service import KatoService
from katoray.errors import ConfigError

BACKLOG = 2048            # pending connections the kernel queues (somaxconn caps it)
KEEP_ALIVE_S = 75         # idle seconds before a kept-alive connection is closed
API_KEY_ENV = "KATORAY_API_KEY"
log = logging.getLogger("katoray.api")


@dataclass(frozen=True)
class ServeSettings:
    """How ``katoray serve`` runs."""

    store: str = "memory://katoray-server"   # knowledge bases: memory://name, sqlite:///dir, mongodb://...
    host: str = "127.0.0.1"                  # interface; loopback unless told otherwise
    port: int = 8000                         # TCP port; 0 = any free port
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES   # larger request bodies get 413
    api_key: str | None = None               # required on every route when set
    nodes: Mapping[str, tuple[str, str]] = field(default_factory=dict)   # node id -> (store URL, kb id)

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port!r}")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes must be a positive integer, got {self.max_body_bytes!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key must not be empty (leave it unset to serve without a key)")

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def warnings(self) -> list[str]:
        """What an operator should hear before the server starts."""
        if self.is_loopback or self.api_key:
            return []
        return [f"serving on {self.host} (not loopback) without an API key: anyone who can reach this port can "
                f"read and erase the knowledge bases; set --api-key or ${API_KEY_ENV}"]


def settings_api_key(given: str | None) -> str | None:
    """``--api-key``, else ``$KATORAY_API_KEY``, else None."""
    return given or os.environ.get(API_KEY_ENV) or None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on accepted sockets whose proto is
    # IPPROTO_TCP (they inherit it from this one); without it every kept-alive answer waited
    # ~40 ms for the client's delayed ACK (Nagle), measured here.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
                          "or --host") from None
    sock.listen(BACKLOG)
    return sock


class RunningServer:
    """A server on its own socket; ``url`` is where it answers. ``run()`` blocks; ``start()`` runs
    it in a daemon thread; ``stop()`` ends it and closes the knowledge bases."""

    def __init__(self, settings: ServeSettings, service: KatoService | None = None) -> None:
        import uvicorn

        self.settings = settings
        self.service = service or KatoService(settings.store, nodes=settings.nodes)
        self.service.check_store()
        self.socket = bind(settings.host, settings.port)
        host, port = self.socket.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        app = create_app(self.service, max_body_bytes=settings.max_body_bytes, api_key=settings.api_key)
        config = uvicorn.Config(app, backlog=BACKLOG, timeout_keep_alive=KEEP_ALIVE_S, log_level="warning",
                                access_log=False, http=_http_parser(), lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.service.close()

    def start(self) -> "RunningServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="katoray-serve", daemon=True)
            self._thread.start()
        return self

    def stop_soon(self) -> None:
        """Ask the server to end (safe from a signal handler); ``run()`` returns once it has."""
        self._server.should_exit = True

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> "RunningServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(settings: ServeSettings | None = None, service: KatoService | None = None) -> RunningServer:
    """Serve in a background thread (tests, notebooks); use as a context manager or ``stop()``."""
    return RunningServer(settings or ServeSettings(port=0), service).start()


def _http_parser() -> str:
    """httptools (C) when installed: about twice the requests per second of h11 (pure Python)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def serve(settings: ServeSettings) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    RunningServer(settings).run()
