"""A run's manifest: what was trained, on what, with what, how far, and how it ended.

``<runs_dir>/<run_id>/manifest.json`` (written atomically) holds:

- ``config``: the run's full configuration (``TrainConfig.to_dict()``; the store URL without its
  password);
- ``versions``: katoray, Python and Ray;
- ``tokenizer``: the tokenizer's identity (name or path, and a hash of its vocabulary);
- ``data``: the corpus identity (its files with sizes and sha256, or the dataset key);
- ``nodes``: per level its node id and knowledge-base id (``node0`` -> ``node0_<run_id>_kato``), or for
  a level split in shards the id of each shard (``kb_ids``: ``node0s0_<run_id>_kato``, ...);
- ``documents``, ``tokens``: consumed so far; ``started``, ``updated``, ``finished`` (UTC, ISO
  8601); ``status`` (``running``, ``finished``, ``failed``); ``error`` (why it failed);
  ``attempts`` (the first start and each resume); ``statistics`` (so far, or final).

The manifest and the knowledge bases are all an analysis needs: ``get_analyzers()`` opens the
stores with no Ray and no training session.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from katoray.errors import ConfigError, KatorayError
from katoray.jobs.checkpoint import read_json, write_json_atomic
from katoray.store.urls import is_mongo, redact_url, without_userinfo

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
RUNNING, FINISHED, FAILED = "running", "finished", "failed"


class RunNotFoundError(KatorayError, FileNotFoundError):
    """No run of that id in the runs folder (nor, where asked, in the store)."""


def utc_now() -> str:
    """UTC wall-clock time as ISO 8601 with milliseconds (sortable as text)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass
class TrainingManifest:
    """The record of one training run (see the module docstring for the fields)."""

    run_id: str
    config: dict[str, Any]
    nodes: dict[str, dict[str, str]]
    tokenizer: dict[str, Any]
    data: dict[str, Any]
    versions: dict[str, str] = field(default_factory=dict)
    status: str = RUNNING
    documents: int = 0
    tokens: int = 0
    started: str = field(default_factory=utc_now)
    updated: str | None = None
    finished: str | None = None
    error: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    run_uid: str | None = None      # random, per run: tells it from another run of the same id (KB owners)
    run_dir: Path | None = field(default=None, compare=False, repr=False)   # where it was loaded from

    # -- the notebook's names ------------------------------------------------------------------
    @property
    def training_id(self) -> str:
        return self.run_id

    @property
    def timestamp(self) -> str:
        return self.started

    @property
    def samples_trained(self) -> int:
        return self.documents

    @property
    def store(self) -> str:
        """The run's store URL as recorded (a password shows as ``***``)."""
        return self.config["store"]

    # -- I/O -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {"format": MANIFEST_FORMAT, **asdict(self)}
        out.pop("run_dir")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingManifest":
        if data.get("format") != MANIFEST_FORMAT:
            raise ConfigError(f"manifest format {data.get('format')!r} is not {MANIFEST_FORMAT}: it was written by "
                              "another katoray version (or is kato-lm's); this katoray cannot use it")
        values = {k: v for k, v in data.items() if k != "format"}
        unknown = set(values) - set(cls.__dataclass_fields__) - {"run_dir"}
        if unknown:
            raise ConfigError(f"manifest has unknown fields {sorted(unknown)}; it was not written by this katoray")
        return cls(**values)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the manifest atomically to ``path`` (a run folder or a ``.json`` file; default:
        the folder it was loaded from or saved to)."""
        target = _manifest_path(path if path is not None else self.run_dir)
        self.updated = utc_now()
        write_json_atomic(target, self.to_dict(), indent=1)   # read by people too
        self.run_dir = target.parent
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainingManifest":
        """Read a manifest from a run folder or a ``.json`` file."""
        target = _manifest_path(path)
        if not target.exists():
            raise RunNotFoundError(f"no run manifest at {str(target)!r}: check the run id and the runs folder "
                                   "(runs_dir= in Python, --runs-dir on the command line)")
        try:
            manifest = cls.from_dict(read_json(target))
        except (ConfigError, TypeError) as err:
            raise ConfigError(f"{str(target)!r}: {err}") from err
        manifest.run_dir = target.parent
        return manifest

    # -- analysis -------------------------------------------------------------------------------
    def store_url(self, mongo_uri: str | None = None) -> str:
        """The URL to open the run's stores with; for a store whose password the manifest does not
        keep, ``mongo_uri`` (the same server, with credentials; ignored for other stores)."""
        return usable_store_url(self.store, mongo_uri if is_mongo(self.store) else None)

    def level_kb_ids(self) -> dict[str, tuple[str, ...]]:
        """{node name: its knowledge bases} (one, or one per shard)."""
        return {name: node_kb_ids(node) for name, node in self.nodes.items()}

    def open_stores(self, mongo_uri: str | None = None) -> dict[str, Any]:
        """{node name: knowledge base} of this run, opened as they are (nothing is created); a
        sharded level is one ``store.sharded.ShardedStore`` over its shards."""
        from katoray.store.sharded import open_level

        url = self.store_url(mongo_uri)
        _check_stores_exist(url, self)
        return {name: open_level(url, kb_ids) for name, kb_ids in self.level_kb_ids().items()}

    def get_analyzers(self, mongo_uri: str | None = None) -> dict[str, Any]:
        """{node name: ``KnowledgeBaseAnalyzer``} over the run's knowledge bases; no Ray, no session.

        Args:
            mongo_uri: for a MongoDB store, the server's URI with credentials (the manifest keeps
                the URL without its password). Ignored for other stores.
        """
        from katoray.analysis.analyzer import KnowledgeBaseAnalyzer

        return {name: KnowledgeBaseAnalyzer(kb) for name, kb in self.open_stores(mongo_uri).items()}


def node_kb_ids(node: Mapping[str, Any]) -> tuple[str, ...]:
    """The knowledge bases of one entry of a manifest's node table: its shards' (``kb_ids``) or its one."""
    return tuple(node["kb_ids"]) if "kb_ids" in node else (node["kb_id"],)


# -- identities: what the run's tokens and documents were ------------------------------------------
def versions() -> dict[str, str]:
    """katoray, Python and Ray versions (Ray's from package metadata: no import)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from katoray.version import __version__

    try:
        ray_version = version("ray")
    except PackageNotFoundError:
        ray_version = "not installed"
    return {"katoray": __version__, "python": platform.python_version(), "ray": ray_version}


def data_identity(data: str | None, dataset: str | None) -> dict[str, Any]:
    """The corpus: its files with sizes and sha256, the built-in corpus' hash, or the dataset key.

    Raises:
        CorpusError: the path does not exist or holds no corpus files.
        ConfigError: unknown dataset key.
    """
    if data is not None:
        from katoray.text.corpora import file_identity

        return {"kind": "files", **file_identity(data)}
    if dataset == "pydoc":
        return _pydoc_identity()
    from katoray.text.corpora import StreamingDatasetLoader

    info = StreamingDatasetLoader().get_dataset_info(dataset)
    # The loader streams the dataset's default branch: no revision is pinned, so a dataset that
    # changes upstream changes this run's later batches. Recorded as such.
    return {"kind": "huggingface", "dataset_key": dataset, "hf_id": info["hf_id"], "config": info["config"],
            "split": "train", "text_field": info["text_field"], "revision": None}


def _pydoc_identity() -> dict[str, Any]:
    import hashlib
    import platform

    from katoray.text.corpora import pydoc_corpus

    digest, count = hashlib.sha256(), 0
    for doc in pydoc_corpus():        # ~0.5 MB: its content depends on the Python version
        digest.update(f"{doc.doc_id}\0{doc.text}\0".encode("utf-8", "surrogatepass"))
        count += 1
    return {"kind": "pydoc", "dataset_key": "pydoc", "python": platform.python_version(), "documents": count,
            "sha256": digest.hexdigest()}


def identity_differences(run: TrainingManifest, tokenizer: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """``what: run had X, now Y`` for a tokenizer vocabulary or corpus content that changed."""
    out = []
    if run.tokenizer.get("vocab_sha256") != tokenizer.get("vocab_sha256"):
        out.append(f"tokenizer vocabulary: run had sha256 {_short(run.tokenizer.get('vocab_sha256'))} "
                   f"({run.tokenizer.get('name')}), now {_short(tokenizer.get('vocab_sha256'))} ({tokenizer.get('name')})")
    if run.data.get("kind") == "files" and data.get("kind") == "files":
        before = {f["path"]: f for f in run.data["files"]}
        after = {f["path"]: f for f in data["files"]}
        for path in sorted(set(before) | set(after)):
            old, new = before.get(path), after.get(path)
            if old is None or new is None or old["sha256"] != new["sha256"]:
                out.append(f"data[{path}]: run had {_file_text(old)}, now {_file_text(new)}")
    elif {k: v for k, v in run.data.items()} != dict(data):
        out.append(f"data: run had {_data_text(run.data)}, now {_data_text(data)}")
    return out


def _short(digest: str | None) -> str:
    return "none" if not digest else digest[:12] + "…"


def _file_text(entry: Mapping[str, Any] | None) -> str:
    return "no such file" if entry is None else f"sha256 {_short(entry['sha256'])} ({entry['bytes']:,} bytes)"


def _data_text(identity: Mapping[str, Any]) -> str:
    if identity.get("kind") == "files":
        return f"{len(identity['files'])} file(s) at {identity['path']}"
    if identity.get("kind") == "pydoc":
        return f"pydoc of Python {identity['python']} (sha256 {_short(identity['sha256'])})"
    return f"{identity.get('kind')} {identity.get('dataset_key')} ({identity.get('hf_id')})"


def _manifest_path(path: str | os.PathLike | None) -> Path:
    if path is None:
        raise ConfigError("manifest has no folder yet: pass the run folder or a .json path to save()")
    path = Path(path).expanduser()
    return path if path.suffix == ".json" else path / MANIFEST_FILE


def usable_store_url(recorded: str, given: str | None = None) -> str:
    """``recorded`` (a manifest's URL, password removed), or ``given`` if it is the same store
    with credentials. A recorded URL that lost its password cannot be used on its own."""
    if given is not None:
        if without_userinfo(redact_url(given)) != without_userinfo(recorded):
            raise ConfigError(f"store {redact_url(given)!r} is not this run's store {recorded!r}: pass the run's own "
                              "store URL (with its password)")
        return given
    if ":***@" in recorded:
        raise ConfigError(f"the run's store {recorded!r} needs its password, which the manifest does not keep: pass "
                          "the URL with credentials (mongo_uri=..., or --store / MONGO_URI on the command line)")
    return recorded


def _check_stores_exist(url: str, manifest: TrainingManifest) -> None:
    """Opening a SQLite store creates it: say so instead when a run's files are gone."""
    if not url.lower().startswith("sqlite:///"):
        return
    from katoray.store.sqlite import sqlite_path

    missing = [str(path) for ids in manifest.level_kb_ids().values() for kb_id in ids
               if not (path := sqlite_path(url, kb_id)).exists()]
    if missing:
        raise RunNotFoundError(f"run {manifest.run_id!r}: knowledge-base files {missing} do not exist (deleted, or "
                               "the run never started training)")
