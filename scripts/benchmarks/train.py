"""End-to-end training throughput on Ray vs tokenizing alone, on the same text in the same run.

Trains a chunking hierarchy (GPT-2 tokens, ``levels`` levels of ``chunk`` symbols) on every
KJV book into fresh SQLite stores with 1, 2, ... workers, and times one process doing nothing but
run the tokenizer itself (``tokenize_batch_direct``) on the same documents; training's mappers
tokenize through katoray's per-word cache, which is cheaper (``cached_cold``: its rate with an
empty cache, as each pool actor starts). Reports tokens/s end to end (actor start-up included)
and after the first batch ("steady"), each as a ratio to tokenizing alone (wall clock, all
cores) and to the 2-core tokenize-only limit (twice one core's rate; the target is >= 0.5).

Where the time goes, from the same invocation:
- ``cpu_seconds``: CPU per role (driver, pool actors, node actors; each actor reports its own
  process, start-up included) and ``utilization``: their sum over wall seconds x cores. On two
  cores a run is CPU-bound, so tokens/s = cores x utilization / (CPU per token).
- ``startup``: the same run on one document: what a run costs before its tokens matter; the
  ``marginal_tokens_per_sec`` of the full run is its extra tokens over its extra seconds, and
  ``marginal_cpu_us_per_token`` its extra CPU per role over them; ``work_allows``: the share of
  the 2-core limit that two fully busy cores reach at that CPU per token (the rate's ceiling). The
  first run of a driver (``first_run_in_driver_seconds``, as every ``katoray train`` is) also
  starts Ray Data's own actors; it runs first, so the compared runs start equally warm.
- the last row of ``runs`` is the corpus ``times`` times over (``corpus: repeated``, default 3,
  most workers): with batches of 1 MiB the KJV alone is four batches, so its marginal figures
  still hold the pipeline's fill and drain; repeated they come closer to a long corpus' rate (but
  the repeats are re-learns, which cost a node more than new patterns).
- ``store_free``: the same repeated run (and its one-document run) with every node's knowledge
  base in the node actor's memory (``memory://``: not durable, so no run can use it; set here on
  the run's spec, past ``TrainConfig``'s refusal): what the pipeline would allow if the stores'
  writes cost what a dict update costs. Its gap to the last row of ``runs`` is the price of
  SQLite's rows.
- ``empty_actors_startup_seconds``: as many empty actors as a run starts (levels + workers):
  Ray's own start-up floor on this machine.
- ``memory``: peak resident memory per role on half the corpus, on all of it, and on the corpus
  repeated (``times`` times the documents and tokens; the same patterns re-learned, so the
  knowledge bases hardly grow). The pipeline holds a bounded number of batches, so memory must
  not follow the number of documents; a node's SQLite page cache grows with its knowledge base
  up to its cap.

    python -m scripts.benchmarks.train --corpus ../shared/data/kjv/kjv_books.jsonl.gz \
        --tokenizer ../shared/tokenizers/gpt2 --workers 1 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Sequence

from katoray.config import DEFAULT_FIRST_BATCH_CHARS


def tokenize_only(corpus: str | Path, tokenizer: str | Path) -> dict:
    """Tokens/s of one process tokenizing the paragraphs training tokenizes (``simple``
    segmentation of every document) with the tokenizer itself, in one ``tokenize_batch_direct``
    call: the yardstick. Also reported: katoray's own ``tokenize_batch`` on the same paragraphs
    with an empty per-word cache (``cached_cold``), which is what a pool actor starts with.

    The Rust tokenizer spreads a batch over a thread pool, so wall-clock tokens/s of "one
    process" already uses every core here. The issue's yardstick is one process on one core:
    that is tokens per CPU second (all threads counted), and the 2-core limit is twice it.
    """
    from katoray.text.corpora import iter_local_documents
    from katoray.text.segment import segment
    from katoray.text.tokenizers import load_tokenizer
    from scripts.benchmarks.tokenizing import timed_tokenize

    docs = list(iter_local_documents(corpus))
    paragraphs = [p for doc in docs for p in segment(doc, "simple").paragraphs()]
    tok = load_tokenizer(str(tokenizer))
    tok.tokenize_batch_direct(paragraphs[:1])   # warm up the Rust side outside the timing
    whole = len(paragraphs)                      # one call for every paragraph
    tokens, seconds, cpu = timed_tokenize(lambda: tok.tokenize_batch_direct, paragraphs, batch=whole)
    # A copy with an empty per-word cache, as a pool actor has.
    cached_tokens, cached_seconds, cached_cpu = timed_tokenize(
        lambda: pickle.loads(pickle.dumps(tok)).tokenize_batch, paragraphs, batch=whole)
    if cached_tokens != tokens:
        raise AssertionError(f"the per-word cache gave {cached_tokens} tokens, the tokenizer {tokens}")
    return {"documents": len(docs), "paragraphs": len(paragraphs), "tokens": tokens, "seconds": seconds,
            "tokens_per_sec": tokens / seconds, "cpu_seconds": cpu, "tokens_per_cpu_sec": tokens / cpu,
            "two_core_limit": 2 * tokens / cpu,
            "cached_cold": {"seconds": cached_seconds, "cpu_seconds": cached_cpu,
                            "tokens_per_cpu_sec": tokens / cached_cpu}}


def train_once(corpus: str | Path, tokenizer: str | Path, workers: int, levels: int, chunk: int,
               store_dir: Path, batch_size: int | None, batch_chars: int | None,
               max_samples: int | None = None, first_batch_chars: int | None = DEFAULT_FIRST_BATCH_CHARS,
               store_free: bool = False) -> dict:
    """One training run into SQLite stores under ``store_dir`` (``store_free``: node KBs in memory)."""
    from katoray.config import TrainConfig, new_run_id
    from katoray.runspec import RunSpec
    from katoray.runtime import run_training
    from katoray.text.shards import plan_shards

    extra = {k: v for k, v in (("batch_size", batch_size), ("batch_chars", batch_chars)) if v is not None}
    config = TrainConfig(levels=levels, chunk_sizes=(chunk,), data=str(corpus), max_samples=max_samples,
                         tokenizer=str(tokenizer), store=f"sqlite:///{store_dir}", workers=workers, verbose=False,
                         checkpoint_interval=1, first_batch_chars=first_batch_chars, **extra).for_run(new_run_id())
    marks: list[tuple[int, float]] = []   # (tokens, seconds) at each finished batch

    def record(_done, counters) -> None:
        marks.append((counters["tokens_processed"], counters["total_time_seconds"]))

    spec = RunSpec.from_config(config)
    if store_free:
        spec = dataclasses.replace(spec, store="memory://")
    started = time.perf_counter()   # the path of `katoray train`, without the manifest's file writes
    stats = run_training(spec,
                         plan_shards(config.data, None, config.text_field, config.max_samples), on_checkpoint=record)
    stats["wall_seconds"] = time.perf_counter() - started
    # After the first batch: actors are up, tokenizers loaded (the start-up cost is excluded).
    (first_tokens, first_s), (last_tokens, last_s) = marks[0], marks[-1]
    stats["first_batch_seconds"] = first_s
    stats["steady_tokens_per_sec"] = (last_tokens - first_tokens) / (last_s - first_s) if last_s > first_s else 0.0
    return stats


def repeated_corpus(corpus: str | Path, times: int, dest: Path) -> Path:
    """The jsonl(.gz) ``corpus`` written ``times`` times over into ``dest`` (row numbers, and so
    document ids, differ between the copies)."""
    import gzip

    with gzip.open(corpus, "rb") as src:
        rows = src.read()
    if not rows.endswith(b"\n"):
        rows += b"\n"
    with gzip.open(dest, "wb", compresslevel=1) as out:
        for _ in range(times):
            out.write(rows)
    return dest


def cpu_by_role(stats: dict, levels: int, cores: int = 2) -> dict:
    """CPU seconds per role of a run and the share of ``cores`` they kept busy."""
    nodes = [stats[f"node{i}_cpu_seconds"] for i in range(levels)]
    roles = {"driver": stats["driver_cpu_seconds"], "pool": stats["mapper_cpu_seconds"], "nodes": sum(nodes)}
    total = sum(roles.values())
    return {"cpu_seconds": {**{k: round(v, 3) for k, v in roles.items()}, "per_node": [round(n, 3) for n in nodes],
                            "total": round(total, 3)},
            "utilization": round(total / (stats["total_time_seconds"] * cores), 3)}


def marginal_cpu(stats: dict, one_doc: dict, levels: int, baseline: dict, cores: int = 2) -> dict:
    """CPU us per token of each role beyond start-up (this run's CPU seconds minus the one-document
    run's, over the extra tokens), and ``work_allows``: the share of the 2-core tokenize-only limit
    that ``cores`` fully busy on that much CPU per token would give (the rate's ceiling on this
    machine whatever the scheduling; ``marginal_ratio_to_two_core_limit`` is what the run got)."""
    extra = stats["tokens_processed"] - one_doc["tokens_processed"]
    if extra <= 0:
        return {}
    full, start = cpu_by_role(stats, levels)["cpu_seconds"], cpu_by_role(one_doc, levels)["cpu_seconds"]
    # A pool actor reports its CPU with each batch it maps: a one-document run hears from one
    # actor, this run from ``workers_used``; each of them paid the start-up once.
    start["pool"] *= stats["workers_used"] / max(1, one_doc["workers_used"])
    per_token = {role: (full[role] - start[role]) / extra * 1e6 for role in ("driver", "pool")}
    per_token["nodes"] = [(a - b) / extra * 1e6 for a, b in zip(full["per_node"], start["per_node"])]
    total = per_token["driver"] + per_token["pool"] + sum(per_token["nodes"])
    return {"marginal_cpu_us_per_token": {"driver": round(per_token["driver"], 3), "pool": round(per_token["pool"], 3),
                                          "nodes": [round(n, 3) for n in per_token["nodes"]], "total": round(total, 3)},
            "work_allows": round(cores / (total * 1e-6) / baseline["two_core_limit"], 3) if total > 0 else None}


def peak_memory(stats: dict, levels: int) -> dict:
    """A run's size and the peak resident memory (MiB) of each role."""
    return {"documents": stats["samples_processed"], "tokens": stats["tokens_processed"],
            "patterns": [stats[f"node{i}_patterns"] for i in range(levels)],
            "peak_rss_mb": {"driver": round(stats["driver_peak_rss_mb"], 1), "pool": round(stats["mapper_peak_rss_mb"], 1),
                            "nodes": [round(stats[f"node{i}_peak_rss_mb"], 1) for i in range(levels)]}}


def actor_startup_floor(num_actors: int) -> float:
    """Seconds for Ray to bring up ``num_actors`` empty actors (one process each, as a run's
    node and mapper actors are): the start-up no training run on this machine can beat."""
    import ray

    from katoray.runtime import options

    @ray.remote(num_cpus=options.NODE_NUM_CPUS)
    class Empty:
        def ping(self) -> int:
            return 1

    started = time.perf_counter()
    actors = [Empty.remote() for _ in range(num_actors)]
    ray.get([actor.ping.remote() for actor in actors])
    seconds = time.perf_counter() - started
    for actor in actors:
        ray.kill(actor)
    return seconds


def ensure_local_ray(levels: int, workers: int) -> None:
    """A private local Ray sized as ``katoray train`` sizes its own, unless one is up already."""
    import ray

    from katoray.runtime import options

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=options.local_num_cpus(levels, workers), include_dashboard=False,
                 logging_level="ERROR")


def bench_train(corpus: str | Path, tokenizer: str | Path, workers: Sequence[int] = (1, 2), levels: int = 4,
                chunk: int = 8, batch_size: int | None = None, batch_chars: int | None = None,
                store_root: str | Path | None = None, times: int = 3) -> dict:
    """Tokenize-only rate, then one training run per worker count, and with ``max(workers)`` a
    one-document run, a half-corpus run and a run of the corpus ``times`` times over (also with
    the stores in memory); ratios and figures from this same invocation."""
    ensure_local_ray(levels, max(workers))
    root = Path(store_root or tempfile.mkdtemp(prefix="katoray-bench-"))
    baseline = tokenize_only(corpus, tokenizer)
    floor = {n: actor_startup_floor(levels + n) for n in workers}

    def run(n: int, name: str, max_samples: int | None = None) -> dict:
        return train_once(corpus, tokenizer, n, levels, chunk, root / name, batch_size, batch_chars, max_samples)

    most = max(workers)
    # The first run of a driver also starts Ray Data's own actors (once per cluster) and imports
    # it: measured here on one document, then every compared run starts equally warm.
    first = run(most, "first-run", 1)
    full = {n: run(n, f"w{n}") for n in workers}
    one_doc, half = run(most, "one-document", 1), run(most, "half", baseline["documents"] // 2)
    repeated = repeated_corpus(corpus, times, root / "repeated.jsonl.gz")

    def run_repeated(name: str, max_samples: int | None = None, store_free: bool = False) -> dict:
        return train_once(repeated, tokenizer, most, levels, chunk, root / name, batch_size, batch_chars,
                          max_samples, store_free=store_free)

    long = run_repeated("repeated")
    free_one_doc, free = run_repeated("free-one-document", 1, True), run_repeated("free-repeated", None, True)
    runs = [_run_row(n, full[n], baseline, floor[n], one_doc, levels) for n in workers]
    # The KJV is 4 default batches: its marginal rate still holds the pipeline's fill and drain.
    # Repeated (12 batches and more) it is closer to the steady rate of a long corpus.
    runs.append({"corpus": "repeated", "times": times, **_run_row(most, long, baseline, floor[most], one_doc, levels)})
    return {"tokenize_only": baseline, "runs": runs, "levels": levels, "chunk": chunk,
            "store_free": {"corpus": "repeated", "times": times, "stores": "memory://",
                           **_run_row(most, free, baseline, floor[most], free_one_doc, levels)},
            "startup": {"workers": most, "documents": 1, "tokens": one_doc["tokens_processed"],
                        "seconds": one_doc["total_time_seconds"], **cpu_by_role(one_doc, levels),
                        "first_run_in_driver_seconds": first["total_time_seconds"]},
            "memory": {"workers": most, **{name: peak_memory(stats, levels) for name, stats in
                                           (("half", half), ("full", full[most]), ("repeated", long))}},
            "store_root": str(root)}


def _run_row(n: int, stats: dict, baseline: dict, floor: float, one_doc: dict, levels: int) -> dict:
    extra_seconds = stats["total_time_seconds"] - one_doc["total_time_seconds"]
    marginal = (stats["tokens_processed"] - one_doc["tokens_processed"]) / extra_seconds if extra_seconds > 0 else 0.0
    return {"workers": n, "tokens": stats["tokens_processed"], "seconds": stats["total_time_seconds"],
            "wall_seconds": stats["wall_seconds"], "tokens_per_sec": stats["rate_tokens_per_sec"],
            "ratio_to_tokenize": stats["rate_tokens_per_sec"] / baseline["tokens_per_sec"],
            "ratio_to_two_core_limit": stats["rate_tokens_per_sec"] / baseline["two_core_limit"],
            "first_batch_seconds": stats["first_batch_seconds"],
            "empty_actors_startup_seconds": floor,
            "steady_tokens_per_sec": stats["steady_tokens_per_sec"],
            "steady_ratio_to_two_core_limit": stats["steady_tokens_per_sec"] / baseline["two_core_limit"],
            "marginal_tokens_per_sec": marginal,
            "marginal_ratio_to_two_core_limit": marginal / baseline["two_core_limit"],
            **cpu_by_role(stats, levels),
            **marginal_cpu(stats, one_doc, levels, baseline),
            "batches": stats["batches_processed"],
            "patterns": [stats[f"node{i}_patterns"] for i in range(levels)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--batch-chars", type=int, default=None)
    parser.add_argument("--store-root", default=None)
    parser.add_argument("--times", type=int, default=3, help="the long run's corpus: this many times over")
    args = parser.parse_args()
    result = bench_train(args.corpus, args.tokenizer, args.workers, args.levels, args.chunk, args.batch_size,
                         args.batch_chars, args.store_root, args.times)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
