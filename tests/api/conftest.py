"""A real ``katoray serve`` (uvicorn on a free port, real HTTP) for the API tests."""
from __future__ import annotations

import pytest

from katoray.api.server.run import ServeSettings, start_server


@pytest.fixture
def serve():
    """``serve(**ServeSettings fields)`` starts a server on a free port; all stop after the test."""
    running = []

    def start(**settings):
        server = start_server(ServeSettings(port=0, **settings))
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def kato_url(serve, tmp_path):
    """The URL of a server over SQLite knowledge bases in ``tmp_path``."""
    return serve(store=f"sqlite:///{tmp_path}/served").url
