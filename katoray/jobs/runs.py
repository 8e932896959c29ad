"""The run registry (``<runs_dir>/<run_id>/``): find, list, lock, fingerprint and delete runs.

    manifest = latest_manifest()                      # the newest run in ./runs
    analyzers = manifest.get_analyzers()              # {node name: KnowledgeBaseAnalyzer}, no Ray
    runs = list_runs()                                # {run_id: summary}
    fingerprint("20261126-101500-3fa9c2")             # per level: patterns, total frequency, sha256
    delete_run("20261126-101500-3fa9c2")              # asks for DELETE on a terminal

(kato-lm's names for these are in :mod:`katoray.compat.runs`.) Unlike kato-lm's, these work from
manifests (any store), group MongoDB databases by their real run id (B20: default databases are
listed under ``None``, not mislabelled), and never prompt when nobody can answer.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

from katoray.config import DEFAULT_RUNS_DIR, check_run_id
from katoray.errors import ConfigError, KatorayError
from katoray.jobs.manifest import MANIFEST_FILE, RUNNING, RunNotFoundError, TrainingManifest, usable_store_url
from katoray.store.naming import run_of_kb_id
from katoray.store.urls import hosts, is_mongo

LOCK_FILE = ".lock"
MONGO_TIMEOUT_MS = 5000          # an unreachable MongoDB fails within this, naming the host
_NODE_DB = re.compile(r"^node(\d+)(?:_(.+))?_kato$")
_SHARD_DB = re.compile(r"^node(\d+)s(\d+)_.+_kato$")   # a shard of a sharded level (store.naming)


class RunBusyError(KatorayError):
    """Another process is training this run right now."""


# -- the registry ------------------------------------------------------------------------------------
def resolve_runs_dir(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path:
    """The runs folder as an absolute path (Ray workers and job drivers run elsewhere)."""
    return Path(runs_dir).expanduser().resolve()


def run_path(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path:
    check_run_id(run_id)
    return resolve_runs_dir(runs_dir) / run_id


def load_manifest(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> TrainingManifest:
    """The manifest of run ``run_id``. Raises ``RunNotFoundError`` naming the folder looked in."""
    return TrainingManifest.load(run_path(run_id, runs_dir))


def iter_manifests(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Iterator[TrainingManifest]:
    """Every run's manifest in ``runs_dir``, oldest start first."""
    root = resolve_runs_dir(runs_dir)
    found = [TrainingManifest.load(path.parent) for path in root.glob(f"*/{MANIFEST_FILE}")] if root.is_dir() else []
    yield from sorted(found, key=lambda m: (m.started, m.run_id))


class RunLock:
    """Held while a process trains a run: a second ``start`` or ``resume`` of it is refused.

    An advisory ``flock`` on ``<run_dir>/.lock``: the kernel releases it when the holder exits,
    even on SIGKILL, so a crashed run never stays locked.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace") or "another process"
            os.close(fd)
            raise RunBusyError(f"run {self.path.parent.name!r} is being trained right now ({holder}); wait for it to "
                               "finish, or stop it (it can be resumed)") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        except OSError:   # a full disk: the lock holds all the same, only its note of the holder is missing
            pass
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def is_held(self) -> bool:
        """Whether a process holds the lock now (the run is being trained)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)              # closing the descriptor releases a lock taken here
        return False


INTERRUPTED = "interrupted"   # a manifest that says "running" while no process holds the run's lock


def current_status(manifest: TrainingManifest) -> str:
    """The manifest's status, except that a run whose driver is gone (killed before it could say
    so: SIGKILL, power loss) is ``interrupted``, never ``running``."""
    if manifest.status == RUNNING and manifest.run_dir is not None and not RunLock(manifest.run_dir).is_held():
        return INTERRUPTED
    return manifest.status


def latest_manifest(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> TrainingManifest:
    """The manifest of the most recently started run in ``runs_dir``."""
    manifests = list(iter_manifests(runs_dir))
    if not manifests:
        raise RunNotFoundError(f"no runs in {str(resolve_runs_dir(runs_dir))!r}: train one (katoray train) or pass "
                               "the runs folder it used")
    return manifests[-1]


def list_runs(runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, mongo_uri: str | None = None) -> dict[str | None, dict[str, Any]]:
    """{run id: summary} of every run with a manifest in ``runs_dir``, oldest first.

    With ``mongo_uri``, also the ``*_kato`` databases on that server: each is listed under the run
    it belongs to (``databases``); databases of runs without a manifest here are grouped by the
    run id in their name (status ``"no manifest"``), and those without a run id (``node0_kato``:
    the notebook's default node ids) under the key ``None``.
    """
    manifests = list(iter_manifests(runs_dir))
    runs: dict[str | None, dict[str, Any]] = {m.run_id: _summary(m) for m in manifests}
    if mongo_uri is None:
        return runs
    owner = {kb_id: m.run_id for m in manifests for ids in m.level_kb_ids().values() for kb_id in ids}
    for name in _mongo_databases(mongo_uri):
        found = run_of_kb_id(name)
        run_id = owner.get(name, found and found[1])     # the name spells it injectively (store.naming)
        if name in owner or found or _NODE_DB.match(name):   # _NODE_DB alone: node0_kato, no run (key None)
            entry = runs.setdefault(run_id, {"run_id": run_id, "status": "no manifest", "databases": []})
            entry["databases"].append(name)
    for entry in runs.values():
        entry["databases"].sort(key=_level_order)
    return runs


def _level_order(db_name: str) -> tuple[int, int, str]:
    match = _NODE_DB.match(db_name) or _SHARD_DB.match(db_name)
    shard = int(match.group(2)) if match and match.re is _SHARD_DB else -1
    return (int(match.group(1)) if match else -1, shard, db_name)


def _summary(m: TrainingManifest) -> dict[str, Any]:
    return {"run_id": m.run_id, "status": current_status(m), "started": m.started, "finished": m.finished,
            "documents": m.documents, "tokens": m.tokens, "nodes": len(m.nodes),
            "chunk_sizes": m.config.get("chunk_sizes"), "mode": m.config.get("mode"), "store": m.store,
            "run_dir": str(m.run_dir), "databases": []}


def delete_run(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, mongo_uri: str | None = None,
                        confirm: bool = True) -> dict[str, Any]:
    """Delete a run: its knowledge bases (SQLite files or MongoDB databases) and its folder.

    Args:
        run_id: the run to delete.
        runs_dir: the runs folder holding its manifest.
        mongo_uri: the MongoDB server (with credentials) for a MongoDB run, or to delete databases
            of a run that has no manifest here.
        confirm: ask to type ``DELETE`` first. Only on a terminal: without one (scripts, CI)
            nobody could answer, so this raises ``ConfigError``; pass ``confirm=False`` there.

    Returns:
        ``{"run_id", "deleted": bool, "run_dir", "files": [...], "databases": [...]}``
        (``deleted`` is False when the prompt was not answered with ``DELETE``).

    Raises:
        RunNotFoundError: no such run here (nor databases of it at ``mongo_uri``).
        RunBusyError: the run is being trained right now.
    """
    folder = run_path(run_id, runs_dir)
    manifest = TrainingManifest.load(folder) if (folder / MANIFEST_FILE).exists() else None
    files, databases, mongo = _run_stores(run_id, manifest, mongo_uri)
    if manifest is None and not databases and not folder.exists():
        where = f" nor databases of it at {hosts(mongo_uri)}" if mongo_uri else ""
        raise RunNotFoundError(f"no run {run_id!r} in {str(folder.parent)!r}{where}")
    plan = {"run_id": run_id, "deleted": False, "run_dir": str(folder) if folder.exists() else None,
            "files": [str(f) for f in files], "databases": databases}
    if confirm and not _confirmed(plan):
        return plan
    with RunLock(folder) if folder.exists() else _nothing():
        for path in files:
            path.unlink(missing_ok=True)
        if mongo is not None:
            for name in databases:
                mongo.drop_database(name)
            mongo.close()
    if folder.exists():
        shutil.rmtree(folder)
    return {**plan, "deleted": True}


def _run_stores(run_id: str, manifest: TrainingManifest | None, mongo_uri: str | None):
    """(SQLite files outside the run folder, MongoDB database names, a client for them or None)."""
    files: list[Path] = []
    url = usable_store_url(manifest.store, mongo_uri if is_mongo(manifest.store) else None) if manifest else mongo_uri
    if manifest is not None and url.lower().startswith("sqlite:///"):
        from katoray.store.sqlite import sqlite_path

        for kb_id in (kb_id for ids in manifest.level_kb_ids().values() for kb_id in ids):
            kb_file = sqlite_path(url, kb_id)
            if manifest.run_dir not in kb_file.parents:      # inside the run folder: removed with it
                files += [p for p in (kb_file, Path(f"{kb_file}-wal"), Path(f"{kb_file}-shm")) if p.exists()]
    if url is None or not is_mongo(url):
        return files, [], None
    client = _mongo_client(url)
    present = set(client.list_database_names())
    if manifest is not None:
        wanted = [kb_id for ids in manifest.level_kb_ids().values() for kb_id in ids]
    else:
        wanted = [name for name in present if (found := run_of_kb_id(name)) and found[1] == run_id]
    return files, sorted(name for name in wanted if name in present), client


def _confirmed(plan: dict[str, Any]) -> bool:
    what = [f"folder {plan['run_dir']}"] if plan["run_dir"] else []
    what += [f"{len(plan['files'])} knowledge-base file(s)"] * bool(plan["files"])
    what += [f"MongoDB databases {', '.join(plan['databases'])}"] * bool(plan["databases"])
    if sys.stdin is None or not sys.stdin.isatty():
        raise ConfigError(f"refusing to delete run {plan['run_id']!r} ({'; '.join(what)}) without confirmation: "
                          "nobody can answer a prompt here (stdin is not a terminal). Pass confirm=False "
                          "(katoray runs delete --yes)")
    answer = input(f"Delete run {plan['run_id']}: {'; '.join(what)}? Type DELETE to confirm: ")
    return answer.strip() == "DELETE"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


# -- fingerprints ------------------------------------------------------------------------------------
def fingerprint(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
                mongo_uri: str | None = None) -> dict[str, dict[str, Any]]:
    """Per level: ``patterns``, ``total_frequency`` and ``sha256`` over the sorted (name, frequency)
    pairs of the run's knowledge bases (a sharded level's shards merged, so it equals the unsharded
    run's). Equal fingerprints mean equal counts, pattern by pattern: how an interrupted-and-resumed
    run is checked against an uninterrupted one."""
    stores = load_manifest(run_id, runs_dir).open_stores(mongo_uri)
    try:
        return {name: fingerprint_kb(kb) for name, kb in stores.items()}
    finally:
        for kb in stores.values():
            kb.close()


def fingerprint_kb(kb: Any) -> dict[str, Any]:
    """The fingerprint of one knowledge base (``iter_patterns`` yields patterns sorted by name)."""
    fingerprint = Fingerprint()
    for record in kb.iter_patterns():
        fingerprint.add(record)
    return fingerprint.result()


class Fingerprint:
    """A fingerprint taken as records pass by, sorted by name (``katoray export`` takes it while
    it writes them)."""

    def __init__(self) -> None:
        self._digest, self.patterns, self.total_frequency = hashlib.sha256(), 0, 0

    def add(self, record: Any) -> None:
        self._digest.update(f"{record.name}\t{record.frequency}\n".encode())
        self.patterns += 1
        self.total_frequency += record.frequency

    def result(self) -> dict[str, Any]:
        return {"patterns": self.patterns, "total_frequency": self.total_frequency, "sha256": self._digest.hexdigest()}


# -- MongoDB helpers -------------------------------------------------------------------------------
def _mongo_client(url: str):
    import pymongo
    from pymongo.errors import PyMongoError

    from katoray.errors import StoreUnreachableError

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS, connectTimeoutMS=MONGO_TIMEOUT_MS)
    try:
        client.admin.command("ping")
    except PyMongoError as err:
        client.close()
        raise StoreUnreachableError(f"MongoDB at {hosts(url)} did not answer ({type(err).__name__}); start it or fix "
                                    "the URL") from None
    return client


def _mongo_databases(url: str) -> list[str]:
    client = _mongo_client(url)
    try:
        return sorted(name for name in client.list_database_names() if name.endswith("_kato"))
    finally:
        client.close()
