"""Helpers shared by the durable-run tests: corpora, subprocesses, crashes, reference runs.

A crash here is the real thing: every process of a training (the ``katoray`` driver, the Ray it
started, its node and mapper actors) is frozen with SIGSTOP, then killed with SIGKILL, as when a
machine loses power. Nothing gets a chance to clean up.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.faults import cmdline, descendants   # noqa: F401  (the fault suite's /proc readers; tests use both)

REPO = Path(__file__).resolve().parents[2]
GPT2 = (REPO.parent / "shared" / "tokenizers" / "gpt2").resolve()  # as TrainConfig records it
SUBPROCESS_TIMEOUT_S = 240
_CACHE: dict = {}


# -- corpora --------------------------------------------------------------------------------------
def short_books(kjv_books_path: Path, folder: Path, max_chars: int) -> Path:
    """The KJV books shorter than ``max_chars`` characters, in canonical order, as one jsonl file."""
    path = folder / f"kjv_under_{max_chars}.jsonl"
    if not path.exists():
        with gzip.open(kjv_books_path, "rt", encoding="utf-8") as lines:
            books = [book for book in map(json.loads, lines) if len(book["text"]) < max_chars]
        path.write_text("".join(json.dumps({"title": b["title"], "text": b["text"]}) + "\n" for b in books),
                        encoding="utf-8")
    return path


def corpus(tmp_path_factory, kjv_books_path: Path, max_chars: int) -> Path:
    """``short_books`` made once per test session."""
    key = ("corpus", max_chars)
    if key not in _CACHE:
        _CACHE[key] = short_books(kjv_books_path, tmp_path_factory.mktemp("corpus"), max_chars)
    return _CACHE[key]


def reference_fingerprint(tmp_path_factory, **config) -> dict:
    """The fingerprint of an uninterrupted run of ``TrainConfig(**config)`` (trained once per
    session, in this process, on the session's Ray)."""
    return reference_run(tmp_path_factory, **config)[0]


def reference_run(tmp_path_factory, **config) -> tuple[dict, dict]:
    """(fingerprint, statistics) of an uninterrupted run of ``TrainConfig(**config)``."""
    from katoray.jobs import TrainConfig, fingerprint, start_run

    key = ("reference", tuple(sorted(config.items())))
    if key not in _CACHE:
        runs_dir = tmp_path_factory.mktemp("reference")
        stats = start_run(TrainConfig(runs_dir=str(runs_dir), verbose=False, **config))
        _CACHE[key] = fingerprint(stats["run_id"], runs_dir), stats
    return _CACHE[key]


def counted(stats: dict, levels: int = 4) -> dict:
    """The statistics a run counts (not times, rates or the resume's own diagnostics): a resumed
    run must end with exactly an uninterrupted run's."""
    # Not ``workers_used``: how many pool actors got a batch is Ray's scheduling (a run of two
    # workers may give every batch to the first actor up), not something the run counts.
    keys = ["samples_processed", "tokens_processed", "batches_processed", "empty_documents", "dropped_segments"]
    for i in range(levels):
        keys += [f"node{i}_{name}" for name in ("patterns", "observations", "unlearned", "new_patterns", "reuse_rate")]
    return {key: stats.get(key) for key in keys}


# -- subprocesses ---------------------------------------------------------------------------------
def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``katoray`` subprocess: offline, no token auth, its own local Ray, no
    MongoDB unless given (``MONGO_URI=...``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MONGO_URI")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def session_env(ray_session, **extra: str) -> dict[str, str]:
    """``cli_env`` for a command that joins the session's Ray (``RAY_ADDRESS``, as a job on a
    cluster does) instead of starting its own: about 9 s less per command on these machines. Not
    for a command the test kills with everything it started (``crash``): its actors would outlive it."""
    return cli_env(RAY_ADDRESS=ray_session.address_info["address"], **extra)


def katoray(*args: str, cwd: Path | None = None, env: dict | None = None, input: str | None = None,
            timeout: float = SUBPROCESS_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``python -m katoray ARGS`` and return its result (text)."""
    return subprocess.run([sys.executable, "-m", "katoray", *args], cwd=cwd, env=env or cli_env(), input=input,
                          capture_output=True, text=True, timeout=timeout)


def start_katoray(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "katoray", *args], cwd=cwd, env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir: Path, batches: int, proc: subprocess.Popen | None = None,
                        timeout: float = SUBPROCESS_TIMEOUT_S) -> dict:
    """The run's checkpoint once it lists at least ``batches`` completed batches."""
    path = run_dir / "checkpoint.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            checkpoint = json.loads(path.read_text())
            if checkpoint["num_completed_batches"] >= batches:
                return checkpoint
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before its checkpoint had {batches} batches: "
                                 f"rc={proc.returncode}\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint with {batches} batches in {path} after {timeout} s")


# -- crashes --------------------------------------------------------------------------------------
def crash(proc: subprocess.Popen) -> list[int]:
    """SIGKILL a process and everything it started, at once (freeze first so none can spawn or
    write after the others died). Returns the pids killed; waits until they are gone."""
    frozen: set[int] = set()
    for _ in range(3):        # freezing a parent stops it spawning; a second pass catches late children
        for pid in [proc.pid, *descendants(proc.pid)]:
            if pid not in frozen:
                _signal(pid, signal.SIGSTOP)
                frozen.add(pid)
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in frozen):
        assert time.monotonic() < deadline, "killed processes are still alive"
        time.sleep(0.05)
    return sorted(frozen)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"   # a zombie is dead, awaiting its reaper
    except OSError:
        return False
