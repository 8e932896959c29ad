"""``katoray serve`` under load: latency on one kept-alive connection, then many clients at once.

The server runs as its own process (``python -m katoray serve``), as users run it. Clients send
KJV text as GPT-2 tokens, one token per observe, and learn every 8 tokens (node0's chunks).

1. ``latency``: one client, one kept-alive connection (``http.client``, the lightest Python
   client), ``n`` observes: p50/p95/p99 in ms per request, round trip included.
2. ``load``: ``clients`` threads, each with its own session on one shared node, for ``seconds``:
   observe 8 tokens, learn, and every 4th learn ask for predictions. Every request must be
   answered 200 (``errors`` counts the rest, connection failures included). Afterwards every
   learned pattern's frequency is read back from the server: ``lost_learns`` is how many learns
   the store does not show (must be 0).

    python -m scripts.benchmarks.serve --seconds 30 --clients 20
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

CHUNK = 8            # tokens per learn, as node0 learns in chunking mode
PREDICT_EVERY = 4    # learns between two prediction requests of a load client


class Server:
    """``python -m katoray serve --port 0`` in a subprocess; ``url`` once it listens."""

    def __init__(self, store: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "katoray", "serve", "--port", "0", "--store", store],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        found = re.search(r"on (http://[\d.]+:\d+)", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"katoray serve did not start: {line}{self.proc.stdout.read()}")
        self.url = found.group(1)
        self.host, port = self.url[len("http://"):].split(":")
        self.port = int(port)

    def close(self) -> str:
        self.proc.terminate()
        return self.proc.communicate(timeout=30)[0]


class Client:
    """One kept-alive connection and one session."""

    def __init__(self, server: Server, node_id: str) -> None:
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        self.base = f"/sessions/{self.call('POST', '/sessions', {'node_id': node_id})[1]['session_id']}"

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        payload = json.dumps(body).encode() if body is not None else b""
        self.conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        answer = self.conn.getresponse()
        return answer.status, json.loads(answer.read())


def kjv_tokens(corpus_path: Path, tokenizer_path: Path, limit: int = 200_000) -> list[str]:
    from scripts.benchmarks.store import _book_tokens

    tokens = [t for book in _book_tokens(str(corpus_path), str(tokenizer_path)) for t in book]
    return tokens[:limit]


def latency(server: Server, tokens: list[str], n: int) -> dict:
    client = Client(server, "latency")
    times = []
    for token in tokens[:n]:
        started = time.perf_counter()
        status, _ = client.call("POST", client.base + "/observe", {"strings": [token]})
        times.append(time.perf_counter() - started)
        assert status == 200, status
    return {"observes": len(times), **_percentiles(times)}


def load(server: Server, tokens: list[str], clients: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    learned: Counter = Counter()          # pattern name -> learns answered 200
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        try:
            client = Client(server, "shared")
        except (OSError, http.client.HTTPException) as err:
            with lock:
                errors.append(f"connect: {err!r}")
            return
        position, mine, my_times = (k * 7919) % (len(tokens) - CHUNK), Counter(), []
        while time.monotonic() < deadline:
            chunk = tokens[position:position + CHUNK]
            position = (position + CHUNK) % (len(tokens) - CHUNK)
            requests = [("POST", "/observe", {"strings": [t]}) for t in chunk] + [("POST", "/learn", None)]
            if sum(mine.values()) % PREDICT_EVERY == 0:
                requests.append(("GET", "/predictions", None))
            for method, action, body in requests:
                started = time.perf_counter()
                try:
                    status, answer = client.call(method, client.base + action, body)
                except (OSError, http.client.HTTPException, ValueError) as err:
                    with lock:
                        errors.append(f"{action}: {err!r}")
                    return
                my_times.append(time.perf_counter() - started)
                if status != 200:
                    with lock:
                        errors.append(f"{action}: {status} {answer}")
                elif action == "/learn" and answer["pattern_name"]:
                    mine[answer["pattern_name"]] += 1
        with lock:
            learned.update(mine)
            times.extend(my_times)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(times),
            "requests_per_sec": round(len(times) / elapsed), "errors": len(errors), "error_examples": errors[:3],
            "learns": sum(learned.values()), "lost_learns": _lost_learns(server, learned), **_percentiles(times)}


def _lost_learns(server: Server, learned: Counter) -> int:
    """Learns the server answered that its store does not count."""
    client = Client(server, "shared")
    lost = 0
    for name, count in learned.items():
        _, answer = client.call("GET", f"/pattern/{name}?node_id=shared")
        stored = answer["pattern"].get("pattern", {}).get("frequency", 0)
        lost += max(0, count - stored)
    return lost


def _percentiles(times: list[float]) -> dict:
    if not times:
        return {}
    ordered = sorted(times)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)   # noqa: E731
    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


def bench_serve(corpus_path: Path, tokenizer_path: Path, store: str, *, clients: int = 20, seconds: float = 30,
                observes: int = 2000) -> list[dict]:
    tokens = kjv_tokens(corpus_path, tokenizer_path)
    server = Server(store)
    try:
        rows = [{"phase": "latency", "store": store, **latency(server, tokens, observes)},
                {"phase": "load", "store": store, **load(server, tokens, clients, seconds)}]
    finally:
        log = server.close()
    tracebacks = log.count("Traceback")
    return [{**row, "server_tracebacks": tracebacks} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/data/kjv/kjv_books.jsonl.gz"))
    parser.add_argument("--tokenizer", type=Path, default=Path("../shared/tokenizers/gpt2"))
    parser.add_argument("--store", default="memory://bench")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    for row in bench_serve(args.corpus, args.tokenizer, args.store, clients=args.clients, seconds=args.seconds):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
