"""``katoray serve``: KATO's HTTP API over the built-in engine."""
from __future__ import annotations

import argparse

from katoray.cli.common import add_command, count, say


def add_parsers(commands) -> None:
    parser = add_command(commands, "serve", "serve KATO's HTTP API over the engine",
                         "Serve KATO's session API (POST /sessions, observe, learn, predictions, ...) over "
                         "katoray's engine until interrupted.", serve_command)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=count, default=8000, help="TCP port (0: any free port)")
    parser.add_argument("--store", default="memory://katoray-server", metavar="URL",
                        help="knowledge bases: memory://name, sqlite:///dir or mongodb://host:port/")


def serve_command(args: argparse.Namespace) -> int:
    from katoray.api.server import make_server
    from katoray.store import redact_url

    server = make_server(args.host, args.port, args.store)
    host, port = server.server_address[:2]
    say(f"katoray serve: KATO API on http://{host}:{port} (store {redact_url(args.store)}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
