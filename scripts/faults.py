"""Fault suite: every way a run can be stopped, end to end, on real ``katoray`` subprocesses.

    python scripts/faults.py                      # every case (about 10-20 minutes on 2 cores)
    python scripts/faults.py --cases ctrl-c,sigterm --json

Each case starts ``katoray train`` on the same corpus (the KJV books under 20,000 characters, one
book per batch, GPT-2 tokens, 4 levels of chunk 8), breaks it as the case says once it has
checkpointed a few batches, then runs ``katoray resume`` and compares the run's fingerprint with an
uninterrupted run's. It prints one row per case: the exit status of the broken command, the first
line of what it said, whether a traceback showed, the manifest's status as ``katoray runs list``
reports it, and whether the resumed run equals the uninterrupted one (knowledge bases, and the
counted statistics). Not part of the test suite: too long. Cases that need root (a tmpfs) or a
MongoDB server (SecantusDB, from the test extra) say so when they cannot run.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GPT2 = SHARED / "tokenizers" / "gpt2"
KJV = SHARED / "data" / "kjv" / "kjv_books.jsonl.gz"
TRAIN = ("--tokenizer", str(GPT2), "--batch-size", "1", "--checkpoint-interval", "2", "--workers", "2", "--quiet")
COUNTED = ("samples_processed", "tokens_processed", "batches_processed", "workers_used")
PER_LEVEL = ("patterns", "observations", "unlearned", "new_patterns", "reuse_rate")
TIMEOUT_S = 600


@dataclass
class Row:
    case: str
    exit: int | None
    message: str
    traceback: bool
    status: str
    equal_after_resume: str


# -- processes -------------------------------------------------------------------------------------------
def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MONGO_URI")}
    out.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO))
    out.update(extra)
    return out


def katoray(*args: str, environ: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "katoray", *args], capture_output=True, text=True,
                          env=environ or env(), timeout=TIMEOUT_S)


def start(*args: str, environ: dict | None = None) -> subprocess.Popen:
    """``katoray ARGS`` in its own process group, as a shell runs a foreground command."""
    return subprocess.Popen([sys.executable, "-m", "katoray", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environ or env(), start_new_session=True)


def wait_for_checkpoint(run_dir: Path, batches: int, proc: subprocess.Popen) -> None:
    path, deadline = run_dir / "checkpoint.json", time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if json.loads(path.read_text())["num_completed_batches"] >= batches:
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before {batches} checkpointed batches: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"no checkpoint of {batches} batches in {path}")


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def crash(proc: subprocess.Popen) -> None:
    """SIGKILL the command and everything it started, frozen first (a power cut)."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        kill_quietly(pid, signal.SIGSTOP)
    for pid in pids:
        kill_quietly(pid, signal.SIGKILL)
    proc.wait(timeout=60)


def kill_actor(proc: subprocess.Popen, name: str) -> str:
    """SIGKILL one Ray actor of the run (by its process title: ``ray::NodeActor``, ``MapWorker``)
    and let the run go on."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [pid for pid in descendants(proc.pid) if name in cmdline(pid)]
        if found:
            kill_quietly(found[0], signal.SIGKILL)
            return cmdline(found[0])
        time.sleep(0.1)
    raise RuntimeError(f"no process {name!r} under the run")


# -- the corpus and the reference --------------------------------------------------------------------------
def make_corpus(work: Path) -> Path:
    path = work / "kjv_under_20000.jsonl"
    with gzip.open(KJV, "rt", encoding="utf-8") as lines:
        books = [json.loads(line) for line in lines]
    path.write_text("".join(json.dumps({"title": b["title"], "text": b["text"]}) + "\n"
                            for b in books if len(b["text"]) < 20_000), encoding="utf-8")
    return path


def fingerprint(run_id: str, runs_dir: Path, environ: dict | None = None) -> dict:
    done = katoray("runs", "fingerprint", run_id, "--runs-dir", str(runs_dir), environ=environ)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr.strip()}


def counted(stats: dict) -> dict:
    keys = list(COUNTED) + [f"node{i}_{name}" for i in range(4) for name in PER_LEVEL]
    return {key: stats.get(key) for key in keys}


def status_of(run_id: str, runs_dir: Path) -> str:
    done = katoray("runs", "list", "--runs-dir", str(runs_dir), "--json")
    return json.loads(done.stdout).get(run_id, {}).get("status", "none") if done.returncode == 0 else "?"


class Suite:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.data = make_corpus(work)
        reference = katoray("train", "--data", str(self.data), *TRAIN, "--runs-dir", str(work / "reference"),
                            "--run-id", "reference", "--json")
        if reference.returncode != 0:
            raise RuntimeError(f"the uninterrupted run failed: {reference.stderr[-2000:]}")
        self.stats = json.loads(reference.stdout.strip().splitlines()[-1])
        self.fingerprint = fingerprint("reference", work / "reference")

    def broken(self, case: str, stop: Callable[[subprocess.Popen, Path], None], store: tuple[str, ...] = (),
               environ: dict | None = None, before_resume: Callable[[], None] = lambda: None,
               runs_dir: Path | None = None) -> Row:
        """Train, break it with ``stop`` after 4 checkpointed batches, then resume and compare."""
        runs = runs_dir or self.work / case
        proc = start("train", "--data", str(self.data), *TRAIN, "--runs-dir", str(runs), "--run-id", case, *store,
                     environ=environ)
        wait_for_checkpoint(runs / case, 4, proc)
        stop(proc, runs)
        try:
            _, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            crash(proc)
            err = "(did not end)"
        status = status_of(case, runs)
        before_resume()
        resumed = katoray("resume", case, "--runs-dir", str(runs), "--json", "--quiet", environ=environ)
        return Row(case, proc.returncode, first_line(err), "Traceback" in err, status,
                   self.compare(resumed, case, runs, environ))

    def compare(self, resumed: subprocess.CompletedProcess, run_id: str, runs: Path, environ: dict | None) -> str:
        if resumed.returncode != 0:
            return f"resume failed: {first_line(resumed.stderr)}"
        stats = json.loads(resumed.stdout.strip().splitlines()[-1])
        same_kbs = fingerprint(run_id, runs, environ) == self.fingerprint
        same_stats = counted(stats) == counted(self.stats)
        return "yes" if same_kbs and same_stats else f"kbs {'equal' if same_kbs else 'DIFFER'}, statistics " \
                                                     f"{'equal' if same_stats else 'DIFFER'}"


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "core_worker.cc" not in line]
    return lines[0][:110] if lines else ""


# -- the cases --------------------------------------------------------------------------------------------------
def signal_group(sig: int) -> Callable[[subprocess.Popen, Path], None]:
    return lambda proc, runs: os.killpg(proc.pid, sig)


def mounted(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def fill(path: Path) -> None:
    """Fill the file system holding ``path`` to the last byte, as another program could."""
    with open(path / "ballast", "wb") as ballast:
        try:
            while True:
                ballast.write(b"\0" * 65536)
                ballast.flush()
        except OSError:
            pass


def case_disk_full(suite: Suite, where: str) -> Row:
    name = "disk-runs" if where == "runs folder" else "disk-store"        # the run id, and its folder
    disk = suite.work / name
    if not mounted(disk, "64m"):
        return Row(f"disk full ({where})", None, "skipped: mounting a tmpfs needs root", False, "", "")
    try:
        runs = disk if where == "runs folder" else suite.work / "disk-store-runs"
        store = () if where == "runs folder" else ("--store", f"sqlite:///{disk}/kb")

        row = suite.broken(name, lambda proc, _runs: fill(disk), store, runs_dir=runs,
                           before_resume=lambda: (disk / "ballast").unlink())
        row.case = f"disk full ({where})"
        return row
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MONGO_SERVER = """
import sys, time
from secantus import SecantusDBServer
server = SecantusDBServer(port=int(sys.argv[1]), storage_path=sys.argv[2], sync_on_commit=True)
server.start()
print(server.uri, flush=True)
while True:
    time.sleep(3600)
"""


def start_mongo(port: int, storage: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", MONGO_SERVER, str(port), str(storage)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    uri = proc.stdout.readline().strip()
    if not uri:
        raise RuntimeError(f"SecantusDB did not start: {proc.stderr.read()[-1000:]}")
    return proc, uri


def case_mongo_killed(suite: Suite) -> Row:
    try:
        import secantus  # noqa: F401  (the test extra)
    except ImportError:
        return Row("MongoDB killed", None, "skipped: pip install -e '.[test]' brings SecantusDB", False, "", "")
    port, storage = free_port(), suite.work / "mongo-data"
    server, uri = start_mongo(port, storage)
    environ = env(MONGO_URI=uri)
    restarted: list[subprocess.Popen] = []

    def stop(proc: subprocess.Popen, runs: Path) -> None:
        server.kill()                 # SIGKILL: the server is gone mid-run
        server.wait()

    try:
        row = suite.broken("mongo-killed", stop, ("--store", "mongodb"), environ,
                           before_resume=lambda: restarted.append(start_mongo(port, storage)[0]))
    finally:
        for proc in [server, *restarted]:
            proc.kill()
    row.case = "MongoDB killed"
    return row


def case_colliding_ids(suite: Suite) -> Row:
    """exp-1, exp_1 and exp.1 into one store; then the same id from a second runs folder."""
    store, runs = ("--store", f"sqlite:///{suite.work}/shared-kbs"), suite.work / "collide"
    prints = []
    for run_id in ("exp-1", "exp_1", "exp.1"):
        done = katoray("train", "--data", str(suite.data), *TRAIN, "--runs-dir", str(runs), "--run-id", run_id, *store)
        if done.returncode != 0:
            return Row("colliding run ids", done.returncode, first_line(done.stderr), "Traceback" in done.stderr,
                       status_of(run_id, runs), "")
        prints.append(fingerprint(run_id, runs))
    twin = katoray("train", "--data", str(suite.data), *TRAIN, "--runs-dir", str(suite.work / "collide-2"),
                   "--run-id", "exp-1", *store)
    equal = all(p == suite.fingerprint for p in prints)
    return Row("colliding run ids (then one id, two folders)", twin.returncode, first_line(twin.stderr),
               "Traceback" in twin.stderr, status_of("exp-1", runs), "yes" if equal else "DIFFER")


CASES: dict[str, Callable[[Suite], Row]] = {
    "kill-driver": lambda s: s.broken("kill-driver", lambda proc, runs: crash(proc)),
    "kill-node": lambda s: s.broken("kill-node", lambda proc, runs: kill_actor(proc, "ray::NodeActor")),
    "kill-mapper": lambda s: s.broken("kill-mapper", lambda proc, runs: kill_actor(proc, "MapWorker")),
    "ctrl-c": lambda s: s.broken("ctrl-c", signal_group(signal.SIGINT)),
    "sigterm": lambda s: s.broken("sigterm", lambda proc, runs: os.kill(proc.pid, signal.SIGTERM)),
    "disk-full-runs": lambda s: case_disk_full(s, "runs folder"),
    "disk-full-store": lambda s: case_disk_full(s, "store"),
    "mongo-killed": case_mongo_killed,
    "colliding-ids": case_colliding_ids,
}


def table(rows: list[Row]) -> str:
    head = ("case", "exit", "first line of the message", "traceback", "manifest", "equal after resume")
    cells = [head] + [(r.case, str(r.exit), r.message, "yes" if r.traceback else "no", r.status,
                       r.equal_after_resume) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines[:1] + ["|" + "|".join("-" * (w + 2) for w in widths) + "|"] + lines[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--json", action="store_true", help="one JSON list of rows on the last line")
    args = parser.parse_args()
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="katoray-faults-") as tmp:
        suite = Suite(Path(tmp))
        rows = []
        for name in args.cases.split(","):
            try:
                rows.append(CASES[name](suite))
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as err:   # the harness, not katoray
                rows.append(Row(name, None, f"the fault harness failed: {type(err).__name__}: {err}"[:110], False, "",
                                ""))
            print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        print(json.dumps([asdict(row) for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
