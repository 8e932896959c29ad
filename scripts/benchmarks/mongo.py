"""Throughput and write amplification of ``MongoStore.apply``.

Patterns are chunking-mode node0 patterns: 8 symbols, one symbol per event, names from
``pattern_hash``; symbols are drawn Zipf-like from a GPT-2-sized vocabulary, as text tokens are.
Two passes over the same patterns: ``new`` (every pattern inserted) and ``relearn`` (every
pattern's frequency incremented). Write amplification is counted client-side with pymongo command
monitoring: write commands sent and documents they write, per learned pattern occurrence.

    python -m scripts.benchmarks.mongo                        # from the repo root; starts SecantusDB
    python -m scripts.benchmarks.mongo --uri mongodb://host:27017/ --patterns 100000

Without ``--uri`` it starts ``secantusd-py --storage-path :memory:`` on a free port as a
subprocess (so the server does not share this process's GIL) and stops it afterwards.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from itertools import accumulate
from pathlib import Path

import pymongo
from pymongo import monitoring

from katoray.engine.naming import pattern_hash
from katoray.store.base import PatternDelta
from katoray.store.mongo import MongoStore

PATTERN_LENGTH = 8       # symbols per pattern, one per event
GPT2_VOCAB = 50257
WRITE_COMMANDS = ("insert", "update", "delete", "findAndModify")


class _CommandCount(monitoring.CommandListener):
    """Commands sent to one database: how many of each, and documents in write commands."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.reset()

    def reset(self) -> None:
        self.commands: dict[str, int] = {}
        self.documents_written = 0

    def started(self, event) -> None:
        if event.database_name != self.database:
            return
        self.commands[event.command_name] = self.commands.get(event.command_name, 0) + 1
        for key in ("updates", "documents", "deletes"):
            self.documents_written += len(event.command.get(key, ()))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def make_patterns(n_patterns: int, vocab_size: int = GPT2_VOCAB, seed: int = 0) -> list[PatternDelta]:
    """``n_patterns`` distinct 8-symbol chains; symbol rank r is drawn with weight 1/(r+1)."""
    rng = random.Random(seed)
    vocab = [f"tok{i}" for i in range(vocab_size)]
    cum_weights = list(accumulate(1.0 / (rank + 1) for rank in range(vocab_size)))
    patterns: dict[str, PatternDelta] = {}
    while len(patterns) < n_patterns:
        events = [[s] for s in rng.choices(vocab, cum_weights=cum_weights, k=PATTERN_LENGTH)]
        name = pattern_hash(events)
        patterns.setdefault(name, PatternDelta(name, events, 1, [], {"book": ["bench"]}))
    return list(patterns.values())


def _run_pass(store: MongoStore, log: _CommandCount, patterns: list[PatternDelta],
              batch_size: int, label: str) -> dict:
    log.reset()
    started = time.perf_counter()
    applies = 0
    for start in range(0, len(patterns), batch_size):
        store.apply(patterns[start:start + batch_size], f"{label}-{applies:06d}")
        applies += 1
    seconds = time.perf_counter() - started
    writes = sum(log.commands.get(name, 0) for name in WRITE_COMMANDS)
    reads = sum(log.commands.values()) - writes
    occurrences = len(patterns)
    return {
        "seconds": round(seconds, 3),
        "patterns_per_s": round(occurrences / seconds, 1),
        "applies": applies,
        "write_commands_per_apply": writes / applies,
        "read_commands_per_apply": reads / applies,
        "write_commands_per_occurrence": round(writes / occurrences, 5),
        "documents_written_per_occurrence": round(log.documents_written / occurrences, 3),
    }


def bench_mongo(uri: str, n_patterns: int, batch_size: int, *, vocab_size: int = GPT2_VOCAB,
                seed: int = 0) -> dict:
    """Apply ``n_patterns`` distinct patterns in batches of ``batch_size`` (pass ``new``), then the
    same again (pass ``relearn``), in a fresh database that is dropped afterwards.

    Returns the figures of each pass (see ``_run_pass``) plus the inputs.
    """
    patterns = make_patterns(n_patterns, vocab_size, seed)
    kb_id = f"bench_{uuid.uuid4().hex[:8]}_kato"
    log = _CommandCount(kb_id)
    store = MongoStore.from_url(uri, kb_id, event_listeners=[log])
    try:
        result = {"n_patterns": n_patterns, "batch_size": batch_size, "vocab_size": vocab_size,
                  "pattern_length": PATTERN_LENGTH}
        result["new"] = _run_pass(store, log, patterns, batch_size, "new")
        result["relearn"] = _run_pass(store, log, patterns, batch_size, "relearn")
        totals = store.totals()
        assert totals.total_unique_patterns == n_patterns, totals  # both passes counted exactly once
        assert store.get_pattern(patterns[0].name).frequency == 2
        result["distinct_symbols"] = totals.num_symbols
        return result
    finally:
        store.clear()
        store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_secantus(timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    """``secantusd-py --storage-path :memory:`` on a free port; returns (process, uri) once it answers."""
    exe = Path(sys.executable).with_name("secantusd-py")
    exe = str(exe) if exe.exists() else shutil.which("secantusd-py")
    if exe is None:
        raise SystemExit("secantusd-py not found: pip install 'katoray[test]' or pass --uri")
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--storage-path", ":memory:", "--log-level", "ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            return proc, uri
        except pymongo.errors.PyMongoError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"secantusd-py did not start on port {port}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", help="MongoDB URL; default: start SecantusDB as a subprocess")
    parser.add_argument("--patterns", type=int, default=20_000, help="distinct patterns per pass")
    parser.add_argument("--batch-size", type=int, default=1_000, help="pattern deltas per apply")
    args = parser.parse_args(argv)
    proc = None
    uri = args.uri
    if uri is None:
        proc, uri = start_secantus()
    try:
        print(json.dumps(bench_mongo(uri, args.patterns, args.batch_size), indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
