"""What a user waits for: ``katoray train`` as a command, from its start to its exit.

Runs the command as a user does (a fresh process that starts its own local Ray, 2 workers, GPT-2,
4 levels of 8, SQLite) on one document and on the whole KJV, ``repeats`` times each, alternating,
and in the same invocation the floor under every run: a process that only starts a local Ray the
way the command does and shuts it down. Reported (medians, seconds of wall clock):

- ``ray_only``: Ray's own start and stop; no run on this machine ends sooner.
- ``one_document``: a whole run of one document: what every run costs before its tokens matter
  (imports, tokenizer, Ray, the node actors and the pool, Ray Data's own actors, shutdown), and
  ``over_ray``: that minus ``ray_only``, the part katoray's design decides.
- ``full``: the whole KJV; ``full_minus_one_document``: what its tokens cost.

    python -m scripts.benchmarks.startup --corpus ../shared/data/kjv/kjv_books.jsonl.gz \
        --tokenizer ../shared/tokenizers/gpt2 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RAY_ONLY = ("import ray\n"
            "from katoray.runtime import options\n"
            "ray.init(address='local', num_cpus=options.local_num_cpus(4, 2), include_dashboard=False, "
            "logging_level='WARNING', log_to_driver=False)\n"
            "ray.shutdown()\n")


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds


def train_command(corpus: str | Path, tokenizer: str | Path, root: Path, name: str, max_samples: int | None) -> list[str]:
    command = [sys.executable, "-m", "katoray", "train", "--data", str(corpus), "--tokenizer", str(tokenizer),
               "--levels", "4", "--chunk-size", "8", "--workers", "2", "--store", f"sqlite:///{root / name}",
               "--runs-dir", str(root / "runs"), "--run-id", name, "--quiet"]
    return command + (["--max-samples", str(max_samples)] if max_samples is not None else [])


def bench_startup(corpus: str | Path, tokenizer: str | Path, repeats: int = 3) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)   # every run starts its own Ray, as on a laptop
    times: dict[str, list[float]] = {"ray_only": [], "one_document": [], "full": []}
    with tempfile.TemporaryDirectory(prefix="katoray-startup-") as tmp:
        root = Path(tmp)
        for i in range(repeats):
            times["ray_only"].append(timed([sys.executable, "-c", RAY_ONLY], env))
            times["one_document"].append(timed(train_command(corpus, tokenizer, root, f"one-{i}", 1), env))
            times["full"].append(timed(train_command(corpus, tokenizer, root, f"full-{i}", None), env))
    median = {name: statistics.median(values) for name, values in times.items()}
    return {"repeats": repeats, "seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
            "median": {name: round(v, 2) for name, v in median.items()},
            "over_ray": round(median["one_document"] - median["ray_only"], 2),
            "full_minus_one_document": round(median["full"] - median["one_document"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(bench_startup(args.corpus, args.tokenizer, args.repeats), indent=2))


if __name__ == "__main__":
    main()
