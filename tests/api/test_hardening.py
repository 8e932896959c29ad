"""Bad requests, sent as raw bytes: every one is answered (a status line, a JSON reason), the
connection is never just dropped, nothing is logged as a traceback, and the server keeps serving."""
from __future__ import annotations

import json
import logging
import socket

import pytest
import requests

MAX_BODY = 4096
TIMEOUT_S = 10


@pytest.fixture
def server(serve, caplog):
    caplog.set_level(logging.ERROR)
    running = serve(store="memory://hardening", max_body_bytes=MAX_BODY)
    yield running
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []   # no traceback for bad input


@pytest.fixture
def session_path(server):
    sid = requests.post(server.url + "/sessions", json={"node_id": "hard"}, timeout=TIMEOUT_S).json()["session_id"]
    return f"/sessions/{sid}"


def raw(server, request: bytes) -> tuple[int, bytes]:
    """Send raw bytes on a fresh connection; (status, body) of the answer."""
    host, port = server.socket.getsockname()[:2]
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed without an answer after {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split()[1]), body


def post(path: str, body: bytes, length: bytes | None = None) -> bytes:
    size = str(len(body)).encode() if length is None else length
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + size + b"\r\n\r\n" + body)


@pytest.mark.parametrize("body, status, reason", [
    (b'{"strings": ["a\xff"]}', 400, "not valid UTF-8"),
    (b"[" * 2_000 + b"]" * 2_000, 400, "too deeply"),   # past Python's recursion limit, under MAX_BODY
    (b'{"strings": 5}', 422, "valid list"),
    (b'{"strings": ["\\ud800"]}', 422, "lone surrogate"),
    (b'{"emotives": {"joy": "high"}}', 422, "valid number"),
    (b'{"emotives": {"joy": NaN}}', 400, "finite number"),
    (b"not json", 422, "JSON decode error"),
])
def test_bad_bodies_are_answered(server, session_path, body, status, reason):
    answer_status, answer = raw(server, post(session_path + "/observe", body))
    assert answer_status == status and reason in answer.decode(), answer


def test_wrong_types_get_kato_s_422_with_the_field(server, session_path):
    answer = requests.post(server.url + session_path + "/observe-sequence", json={"observations": 5},
                           timeout=TIMEOUT_S)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "observations"]


@pytest.mark.parametrize("length, status", [(b"abc", 400), (b"-5", 400), (b"99999999999999999999", 400),
                                            (b"1000000000000", 413)])
def test_bad_content_lengths_are_answered(server, session_path, length, status):
    assert raw(server, post(session_path + "/observe", b"{}", length))[0] == status


def test_bodies_over_the_limit_get_413_whether_announced_or_chunked(server, session_path):
    big = json.dumps({"strings": ["x" * MAX_BODY]}).encode()
    status, body = raw(server, post(session_path + "/observe", big))
    assert status == 413 and b"--max-body-mb" in body
    chunked = (b"POST " + session_path.encode() + b"/observe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    assert raw(server, chunked)[0] == 413


def test_nul_in_a_node_id_and_get_on_a_post_route(server, session_path):
    assert raw(server, post("/sessions", b'{"node_id": "a\\u0000b"}'))[0] == 422
    status, body = raw(server, b"GET " + session_path.encode() + b"/observe HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405
    assert requests.get(server.url + session_path + "/stm", timeout=TIMEOUT_S).json()["stm"] == []  # nothing observed


def test_the_server_still_serves_after_all_of_it(server, session_path):
    for request in (post(session_path + "/observe", b"\xff\xfe"), b"GARBAGE\r\n\r\n", post("/sessions", b"[]")):
        raw(server, request)
    assert requests.get(server.url + "/health", timeout=TIMEOUT_S).json()["status"] == "healthy"
