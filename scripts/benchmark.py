"""katoray's benchmarks, on real text (KJV, GPT-2 tokens from ../shared). Not part of the tests.

    python scripts/benchmark.py all                 # everything below, one JSON object per line
    python scripts/benchmark.py store               # learn rate: memory and sqlite bulk apply (patterns/s)
    python scripts/benchmark.py sqlite              # sqlite apply of training's node0/node1 batches (CPU us/pattern)
    python scripts/benchmark.py predict             # prediction p50/p95 at 10k/100k/1M patterns (memory, sqlite) vs full scan
    python scripts/benchmark.py tokenize            # the tokenizer itself vs through katoray's per-word cache
    python scripts/benchmark.py map                 # tokenizing alone vs tokenizing + the 4-level map
    python scripts/benchmark.py train               # end-to-end training (1 and 2 workers) vs tokenizing alone
    python scripts/benchmark.py startup             # `katoray train` as a command, start to exit, vs Ray's own start and stop
    python scripts/benchmark.py ingest              # one shard actor fed precomputed deltas: tokens/s per shard per level
    python scripts/benchmark.py batching            # the same training at several batch sizes, on long (books) and short (verses) documents
    python scripts/benchmark.py mongo               # flush rate and write amplification into MongoDB (SecantusDB)
    python scripts/benchmark.py serve               # katoray serve: observe p50 on one connection; 20 clients x 30 s
    python scripts/benchmark.py use                 # next-token top-1/top-5 and ms/position on held-out KJV vs an infinity-gram
    python scripts/benchmark.py analysis            # analysis of a 1M-pattern level (sqlite; mongo at --analysis-mongo)

Ratios are measured within one run: these 2-core machines are noisy, so compare numbers from the
same invocation, not across invocations.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python scripts/benchmark.py` imports scripts.benchmarks.*

SHARED = REPO.parent / "shared"
KJV_BOOKS = SHARED / "data" / "kjv" / "kjv_books.jsonl.gz"
KJV_VERSES = SHARED / "data" / "kjv" / "kjv_verses.txt.gz"
GPT2 = SHARED / "tokenizers" / "gpt2"


def bench_store(args) -> list[dict]:
    from scripts.benchmarks.store import bench_store as run

    with tempfile.TemporaryDirectory(prefix="katoray-bench-") as tmp:
        return [run(url, args.patterns, args.batch_size, corpus_path=KJV_BOOKS, tokenizer_path=GPT2)
                for url in ("memory://", f"sqlite:///{tmp}/kb")]


def bench_sqlite(args) -> list[dict]:
    from scripts.benchmarks.sqlite_levels import bench_sqlite_levels as run

    return run(KJV_BOOKS, GPT2)


def bench_predict(args) -> list[dict]:
    from scripts.benchmarks.predict import bench_predict as run

    return run(tuple(args.sizes), args.queries)


def bench_tokenize(args) -> list[dict]:
    from scripts.benchmarks.tokenizing import bench_tokenize as run
    from scripts.benchmarks.tokenizing import kjv_paragraphs

    texts = kjv_paragraphs(KJV_BOOKS)
    return [run(name, texts) for name in (str(GPT2), "katoray-bytes")]


def bench_map(args) -> list[dict]:
    from scripts.benchmarks.hierarchy_map import bench_map as run
    from scripts.benchmarks.tokenizing import kjv_paragraphs

    return [run(str(GPT2), kjv_paragraphs(KJV_BOOKS))]


def bench_train(args) -> list[dict]:
    from scripts.benchmarks.train import bench_train as run

    return [run(KJV_BOOKS, GPT2, workers=tuple(args.workers), times=args.times)]


def bench_startup(args) -> list[dict]:
    from scripts.benchmarks.startup import bench_startup as run

    return [run(KJV_BOOKS, GPT2, repeats=args.repeats)]


def bench_batching(args) -> list[dict]:
    from scripts.benchmarks.batching import bench_batching as run

    return run(KJV_BOOKS, KJV_VERSES, GPT2)


def bench_ingest(args) -> list[dict]:
    from scripts.benchmarks.ingest import bench_ingest as run

    return [run(KJV_BOOKS, GPT2, shard_counts=tuple(args.shards))]


def bench_use(args) -> list[dict]:
    from scripts.benchmarks.use import bench_use as run

    return run(KJV_BOOKS, GPT2)


def bench_mongo(args) -> list[dict]:
    from scripts.benchmarks.mongo import bench_mongo as run

    uri = os.environ.get("MONGO_URI")
    if uri:
        return [run(uri, args.patterns // 5, size) for size in (1000, 5000)]
    with _secantus() as uri:
        return [run(uri, args.patterns // 5, size) for size in (1000, 5000)]


def bench_analysis(args) -> list[dict]:
    from scripts.benchmarks.analysis import bench_analysis as run

    rows = [run(args.analysis_patterns)]
    if args.analysis_mongo:   # SecantusDB writes ~2.4k patterns/s: building its level takes a while
        uri = os.environ.get("MONGO_URI")
        if uri:
            rows.append(run(args.analysis_mongo, uri))
        else:
            with _secantus() as uri:
                rows.append(run(args.analysis_mongo, uri))
    return rows


def bench_serve(args) -> list[dict]:
    from scripts.benchmarks.serve import bench_serve as run

    with tempfile.TemporaryDirectory(prefix="katoray-bench-") as tmp:
        return [row for store in ("memory://bench", f"sqlite:///{tmp}/kb")
                for row in run(KJV_BOOKS, GPT2, store, clients=args.clients, seconds=args.seconds)]


class _secantus:
    """A SecantusDB server in a subprocess (its own GIL), for the length of a benchmark."""

    def __enter__(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = Path(sys.executable).with_name("secantusd-py")
        self.proc = subprocess.Popen([str(exe), "--port", str(port), "--storage-path", ":memory:"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        uri = f"mongodb://127.0.0.1:{port}/"
        import pymongo

        deadline = time.time() + 30
        while True:
            try:
                pymongo.MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
                return uri
            except Exception:
                if time.time() > deadline:
                    self.proc.kill()
                    raise
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)


BENCHMARKS = {"store": bench_store, "sqlite": bench_sqlite, "predict": bench_predict, "tokenize": bench_tokenize,
              "map": bench_map, "train": bench_train, "mongo": bench_mongo, "serve": bench_serve,
              "use": bench_use, "analysis": bench_analysis, "ingest": bench_ingest, "startup": bench_startup,
              "batching": bench_batching}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("which", choices=[*BENCHMARKS, "all"], nargs="?", default="all")
    parser.add_argument("--patterns", type=int, default=100_000, help="patterns for the store benchmark")
    parser.add_argument("--batch-size", type=int, default=20_000, help="deltas per store apply")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="knowledge-base sizes for the prediction benchmark")
    parser.add_argument("--queries", type=int, default=50, help="STMs per size for the prediction benchmark")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts for `train`")
    parser.add_argument("--times", type=int, default=3,
                        help="`train`'s long run: the KJV this many times over (re-learns past the first)")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4], help="shard counts for `ingest`")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind for `startup` (medians)")
    parser.add_argument("--analysis-patterns", type=int, default=1_000_000, help="patterns of the analysed level")
    parser.add_argument("--analysis-mongo", type=int, default=0, metavar="N",
                        help="also analyse an N-pattern level in MongoDB (0: sqlite only)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients for `serve`")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of load for `serve`")
    args = parser.parse_args()
    if not KJV_BOOKS.exists():
        sys.exit(f"benchmarks read {KJV_BOOKS}; run from a checkout that has ../shared beside it")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in BENCHMARKS if args.which == "all" else [args.which]:
        for row in BENCHMARKS[name](args):
            print(json.dumps({"benchmark": name, **row}), flush=True)


if __name__ == "__main__":
    main()
