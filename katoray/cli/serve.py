"""``katoray serve``: KATO's HTTP API over the engine, or over a trained run's knowledge bases."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from katoray.cli.common import MONGO_ENV, Usage, add_command, count, say, store_arg
from katoray.config import DEFAULT_RUNS_DIR

if TYPE_CHECKING:
    from katoray.api.server.run import RunningServer


def add_parsers(commands) -> None:
    parser = add_command(commands, "serve", "serve KATO's HTTP API over the engine",
                         "Serve KATO's session API (POST /sessions, observe, learn, predictions, ...; docs at "
                         "/docs) over katoray's engine until interrupted. With --run, nodes node0..nodeN are a "
                         "trained run's knowledge bases.", serve_command)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface; "
                                                            "then set an API key)")
    parser.add_argument("--port", type=count, default=8000, help="TCP port (0: any free port)")
    parser.add_argument("--store", default="memory://katoray-server", metavar="URL",
                        help="knowledge bases: memory://name, sqlite:///dir or mongodb://host:port/ "
                             "(mongodb: the URL in $MONGO_URI); with --run, those of the nodes it does not have")
    parser.add_argument("--run", metavar="RUN_ID", help="serve this trained run: node0..nodeN are its levels")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, metavar="DIR", help="folder of run folders (for --run)")
    parser.add_argument("--mongo-uri", default=os.environ.get(MONGO_ENV), metavar="URL",
                        help=f"MongoDB server with credentials, for a MongoDB --run (default: ${MONGO_ENV})")
    parser.add_argument("--max-body-mb", type=float, default=64.0,
                        help="largest request body in MiB; larger ones get 413")
    parser.add_argument("--api-key", default=None,
                        help="require this key on every route (X-API-Key or Authorization: Bearer); "
                             "default: $KATORAY_API_KEY if set, which keeps the key out of the process list")


def serve_command(args: argparse.Namespace) -> int:
    if args.max_body_mb <= 0:
        raise Usage(f"--max-body-mb must be > 0, got {args.max_body_mb}")
    try:
        _serve(args)
    except KeyboardInterrupt:   # Ctrl-C or SIGTERM, while starting or serving: a clean stop
        pass
    return 0


def _serve(args: argparse.Namespace) -> None:
    from katoray.api.server.run import RunningServer, ServeSettings, settings_api_key
    from katoray.store import redact_url

    store, nodes = _stores(args)
    settings = ServeSettings(store=store, host=args.host, port=args.port, nodes=nodes,
                             max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                             api_key=settings_api_key(args.api_key))
    for warning in settings.warnings():
        say(f"katoray serve: WARNING: {warning}")
    server = RunningServer(settings)
    served = f"run {args.run} ({', '.join(nodes)})" if nodes else f"store {redact_url(store)}"
    with _exit_on_signals(server):
        say(f"katoray serve: KATO API on {server.url} ({served}); docs at {server.url}/docs; Ctrl-C stops it")
        server.run()


@contextlib.contextmanager
def _exit_on_signals(server: RunningServer) -> Iterator[None]:
    """Ctrl-C or SIGTERM from the moment the URL is printed ends the server cleanly. uvicorn handles
    both while it serves; before it installs its handlers a KeyboardInterrupt raised at a random
    point (inside a weakref callback, say) can be swallowed and leave the server running."""
    def stop(signum: int, frame: Any) -> None:
        server.stop_soon()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stores(args: argparse.Namespace) -> tuple[str, dict[str, tuple[str, tuple[str, ...]]]]:
    """(store URL, node id -> (store URL, kb ids: one per shard) of the run's levels with --run)."""
    store = store_arg(args.store)
    if args.run is None:
        return store, {}
    from katoray.api.server.runs import run_nodes

    return store, run_nodes(args.run, args.runs_dir, args.mongo_uri)
