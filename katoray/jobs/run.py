"""Start and resume durable training runs: ``TrainConfig``, ``start_run``, ``resume_run``.

    stats = start_run(TrainConfig(data="books/", tokenizer="gpt2", chunk_sizes=(8, 8, 8, 8)))
    stats = resume_run("20261126-101500-3fa9c2", runs_dir="runs")      # after a crash or Ctrl-C

A run lives in ``<runs_dir>/<run_id>/``: ``manifest.json`` (config, identities, progress, status),
``checkpoint.json`` (the batches durable at every level) and, by default, its knowledge bases
(``kb/<kb_id>.sqlite``, one file per level). Training goes through the Ray runtime
(``train_from_streaming_dataset_parallel``) with a learner whose node ids carry the run id
(``node{i}_<run_id>``), so runs sharing a MongoDB server never mix.

Exactly once across crashes: every ``checkpoint_interval`` documents the checkpoint records the
completed batch ids (all durable already). A resume skips them and re-sends the rest; batches
that were applied after the last checkpoint are recognised by the stores' batch-id ledgers and
add nothing. A resume refuses a different structural config (hierarchy, tokenizer, corpus,
batching, store) and a corpus or tokenizer that changed since the run started: it would count
other batches, or the same ones differently.

Structural fields decide what the knowledge bases hold and what a batch id means; run-time fields
(workers, checkpoint interval, verbosity, Ray address) may change between attempts.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from katoray.errors import ConfigError
from katoray.hierarchy.config import DEFAULT_METADATA_CAP, HierarchicalNode, HierarchyConfig
from katoray.jobs.checkpoint import Checkpoint, combine_statistics
from katoray.jobs.manifest import (FAILED, FINISHED, MANIFEST_FILE, RUNNING, TrainingManifest, data_identity,
                                   identity_differences, usable_store_url, utc_now, versions)
from katoray.jobs.runs import DEFAULT_RUNS_DIR, RunLock, check_run_id, run_path
from katoray.runtime.source import DEFAULT_BATCH_CHARS, DEFAULT_BATCH_SIZE, Batching
from katoray.text.segment import SEGMENT_METHODS

log = logging.getLogger(__name__)

DEFAULT_NODES = 4
DEFAULT_CHUNK_SIZE = 8
DEFAULT_DATASET = "pydoc"           # Python's own docs: the corpus every install has (no download)
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))   # mapper actors; each keeps a core busy
DEFAULT_CHECKPOINT_INTERVAL = 100   # documents between checkpoints (a checkpoint is one small JSON write)

STRUCTURAL = ("nodes", "chunk_sizes", "mode", "segment_method", "tokenizer", "data", "dataset", "text_field",
              "max_samples", "batch_size", "batch_chars", "metadata_cap", "store")
RUN_TIME = ("workers", "checkpoint_interval", "verbose", "address")
KB_FILES_DIR = "kb"                 # sqlite:///<runs_dir>/<run_id>/kb holds one <kb_id>.sqlite per level


@dataclass(frozen=True)
class TrainConfig:
    """A training run, as ``katoray train`` takes it and the manifest records it.

    ``nodes`` and ``chunk_sizes`` describe one hierarchy: give either or both (a single chunk
    size applies to every node). With neither ``data`` nor ``dataset`` the run trains on the
    built-in ``pydoc`` corpus. Paths are made absolute here: Ray workers and job drivers run in
    other directories.
    """

    # -- structural: a resume must keep these -------------------------------------------------
    nodes: int | None = None                     # hierarchy levels (node0 .. node{n-1}); default 4
    chunk_sizes: tuple[int, ...] | None = None   # tokens (node0) or child names per pattern; default 8 each
    mode: str = "chunking"                       # chunking | structure (sentences, paragraphs, ...)
    segment_method: str = "simple"               # simple | article | book
    tokenizer: str | None = None                 # Hugging Face name or folder; None = built-in katoray-bytes
    data: str | None = None                      # a corpus file or folder (.txt, .jsonl, .parquet, .gz)
    dataset: str | None = None                   # a registered dataset key, or "pydoc"
    text_field: str = "text"                     # text column of jsonl / parquet rows
    max_samples: int | None = None               # the first N documents (None = all)
    batch_size: int = DEFAULT_BATCH_SIZE         # documents per batch (one write per level)
    batch_chars: int | None = DEFAULT_BATCH_CHARS  # characters that close a batch early
    metadata_cap: int = DEFAULT_METADATA_CAP     # values kept per metadata key per pattern
    store: str | None = None                     # KB URL; None = sqlite in the run folder
    # -- identity ---------------------------------------------------------------------------
    run_id: str | None = None                    # None = a new id (UTC time + random suffix)
    runs_dir: str = DEFAULT_RUNS_DIR             # manifests, checkpoints and default stores
    # -- run-time: may change on resume --------------------------------------------------------
    workers: int = DEFAULT_WORKERS               # mapper actors
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL   # documents between checkpoints
    verbose: bool = True                         # one live progress line on stderr
    address: str | None = None                   # Ray cluster to join ("auto"); None = RAY_ADDRESS or local

    def __post_init__(self) -> None:
        self._normalise_hierarchy()
        self._normalise_paths()
        self._validate()

    # -- construction ---------------------------------------------------------------------------
    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)   # normalising a frozen instance in __post_init__

    def _normalise_hierarchy(self) -> None:
        nodes, sizes = self.nodes, self.chunk_sizes
        _check_int("nodes", nodes, 1, allow_none=True)
        if sizes is not None:
            if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
                raise ConfigError(f"chunk_sizes must be a list of integers, got {sizes!r}")
            sizes = tuple(sizes)
            if not sizes:
                raise ConfigError("chunk_sizes is empty: give one size per node, or one for all")
        if nodes is None:
            nodes = len(sizes) if sizes is not None and len(sizes) > 1 else DEFAULT_NODES
        if sizes is None:
            sizes = (DEFAULT_CHUNK_SIZE,) * nodes
        elif len(sizes) == 1:
            sizes = sizes * nodes
        elif len(sizes) != nodes:
            raise ConfigError(f"chunk_sizes has {len(sizes)} values {list(sizes)} but nodes is {nodes}: give one "
                              "size per node, or a single size for every node")
        self._set("nodes", nodes)
        self._set("chunk_sizes", sizes)

    def _normalise_paths(self) -> None:
        if self.data is None and self.dataset is None:
            self._set("dataset", DEFAULT_DATASET)
        if self.data is not None:
            _check_str("data", self.data)
            self._set("data", str(Path(self.data).expanduser().resolve()))
        if self.tokenizer is not None:
            _check_str("tokenizer", self.tokenizer)
            local = Path(self.tokenizer).expanduser()
            if local.exists():
                self._set("tokenizer", str(local.resolve()))
        _check_str("runs_dir", self.runs_dir)
        self._set("runs_dir", str(Path(self.runs_dir).expanduser().resolve()))
        if self.store is not None:
            self._set("store", _absolute_store(self.store))

    def _validate(self) -> None:
        HierarchyConfig(self.mode, self.chunk_sizes, frozenset(), self.metadata_cap)   # mode, sizes, cap
        if self.segment_method not in SEGMENT_METHODS:
            raise ConfigError(f"segment_method must be one of {SEGMENT_METHODS}, got {self.segment_method!r}")
        if self.data is not None and self.dataset is not None:
            raise ConfigError("give one corpus: data=<file or folder> or dataset=<key>, not both")
        if self.dataset is not None:
            _check_str("dataset", self.dataset)
        Batching(self.text_field, self.batch_size, self.batch_chars)                 # field and batch sizes
        _check_int("max_samples", self.max_samples, 0, allow_none=True)
        _check_int("workers", self.workers, 1)
        _check_int("checkpoint_interval", self.checkpoint_interval, 1)
        if not isinstance(self.verbose, bool):
            raise ConfigError(f"verbose must be True or False, got {self.verbose!r}")
        if self.address is not None:
            _check_str("address", self.address)
        if self.run_id is not None:
            check_run_id(self.run_id)

    # -- derived ----------------------------------------------------------------------------------
    def for_run(self, run_id: str) -> "TrainConfig":
        """This config with its run id and its store URL filled in (what the manifest records)."""
        check_run_id(run_id)
        store = self.store or f"sqlite:///{(Path(self.runs_dir) / run_id / KB_FILES_DIR).as_posix()}"
        return dataclasses.replace(self, run_id=run_id, store=store)

    @property
    def run_dir(self) -> Path:
        if self.run_id is None:
            raise ConfigError("this config has no run id yet (use for_run)")
        return Path(self.runs_dir) / self.run_id

    def hierarchy_nodes(self) -> list[HierarchicalNode]:
        return [HierarchicalNode(f"node{i}", chunk_size=size, mode=self.mode) for i, size in enumerate(self.chunk_sizes)]

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready; the store URL without its password."""
        from katoray.store import redact_url

        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["chunk_sizes"] = list(self.chunk_sizes)
        out["store"] = None if self.store is None else redact_url(self.store)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)

    def structural_differences(self, other: "TrainConfig") -> list[str]:
        """``field: run had X, now Y`` for each structural field that differs (store passwords
        are not part of the comparison)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{name}: run had {mine[name]!r}, now {theirs[name]!r}" for name in STRUCTURAL
                if mine[name] != theirs[name]]


# -- checks ------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")


def _absolute_store(url: str) -> str:
    """A store URL the run can use from any process: sqlite paths absolute; memory:// refused."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store {url!r} is not a URL; use sqlite:///path/to/dir or mongodb://host:port/")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        raise ConfigError("store memory:// lives and dies with one process: a run's knowledge bases must outlive "
                          "it (resume, analysis). Use sqlite:///path/to/dir (the default) or mongodb://host:port/, "
                          "or call train_from_streaming_dataset_parallel for in-memory training")
    prefix = "sqlite:///"
    if url.lower().startswith(prefix) and not url[len(prefix):].startswith("/"):
        return prefix + Path(url[len(prefix):]).expanduser().resolve().as_posix()
    return url


# -- starting and resuming ------------------------------------------------------------------------------
def start_run(config: TrainConfig) -> dict[str, Any]:
    """Start a new run: create its folder and manifest, train with checkpoints, record the end.

    Returns:
        The run's statistics (those of ``train_from_streaming_dataset_parallel``: documents,
        tokens, rates, per level patterns / observations / reuse) plus ``run_id``, ``run_dir``,
        ``status`` and ``attempts``.

    Raises:
        ConfigError: a bad config, or the run id is taken. CorpusError / DocumentError: bad
        data (named). StoreError: the store cannot be used. RunBusyError: the run is locked.
        Nothing is created when the corpus, tokenizer or store fails its check.
    """
    from katoray.runtime.train import new_run_id

    config = config.for_run(config.run_id or new_run_id())
    if (config.run_dir / MANIFEST_FILE).exists():
        raise ConfigError(f"run {config.run_id!r} already exists in {config.runs_dir}: resume it "
                          f"(katoray resume {config.run_id}) or choose another run id")
    data = data_identity(config.data, config.dataset)   # a missing corpus fails before anything exists,
    _check_first_document(config)                        # so does a wrong text field,
    _connect_ray(config.address)                         # so does an unreachable Ray cluster,
    learner = _learner(config)                           # an unknown tokenizer, an unreachable store
    try:
        with RunLock(config.run_dir):
            if (config.run_dir / MANIFEST_FILE).exists():     # another process started it meanwhile
                raise ConfigError(f"run {config.run_id!r} was started by another process; resume it instead")
            manifest = TrainingManifest(config.run_id, config.to_dict(), _node_table(config, learner),
                                        learner.token_processor.tokenizer.identity(), data, versions())
            manifest.save(config.run_dir)
            return _train(config, manifest, learner, Checkpoint(config.run_id), "start")
    finally:
        learner.close()


def resume_run(run_id: str, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, **overrides: Any) -> dict[str, Any]:
    """Continue an interrupted run where its last checkpoint left it.

    Args:
        run_id, runs_dir: the run.
        **overrides: run-time fields (``workers``, ``checkpoint_interval``, ``verbose``,
            ``address``) to change; ``store`` to give a MongoDB URL its password back (the
            manifest keeps none); structural fields only to confirm them (they must not differ).

    Returns:
        The run's statistics over all its attempts (as ``start_run``). For a finished run:
        its final statistics, with ``resumed`` False (nothing to do).

    Raises:
        ConfigError: a structural difference, listed field by field (``chunk_sizes: run had
            [8, 8, 8, 8], now [4, 4, 4, 4]``), including a corpus or tokenizer vocabulary that
            changed since the run started. RunNotFoundError, RunBusyError.
    """
    folder = run_path(run_id, runs_dir)
    TrainingManifest.load(folder)                        # RunNotFoundError before a lock file is made
    with RunLock(folder):
        manifest = TrainingManifest.load(folder)
        if manifest.status == FINISHED:
            log.info("run %s finished at %s: nothing to resume", run_id, manifest.finished)
            return _result(manifest, manifest.statistics, resumed=False)
        config = _resumed_config(manifest, folder, overrides)
        _connect_ray(config.address)
        learner = _learner(config)
        try:
            checkpoint = Checkpoint.load(folder) or Checkpoint(run_id)
            return {**_train(config, manifest, learner, checkpoint, "resume"), "resumed": True}
        finally:
            learner.close()


def _resumed_config(manifest: TrainingManifest, folder: Path, overrides: dict[str, Any]) -> TrainConfig:
    """The run's config with ``overrides``; ConfigError listing every structural difference."""
    from katoray.store import redact_url
    from katoray.text.tokenizers import load_tokenizer

    unknown = sorted(set(overrides) - set(STRUCTURAL) - set(RUN_TIME))
    if unknown:
        raise ConfigError(f"resume cannot set {unknown}: it takes the run-time fields {list(RUN_TIME)}, and "
                          f"structural fields {list(STRUCTURAL)} only unchanged")
    overrides = dict(overrides)
    given_store = overrides.pop("store", None)
    recorded = _recorded_config(manifest, folder)
    if "nodes" in overrides and "chunk_sizes" not in overrides:
        overrides["chunk_sizes"] = recorded.chunk_sizes[:1]     # the run's chunk size on every requested node
    config = dataclasses.replace(recorded, **overrides)
    differences = recorded.structural_differences(config)
    if given_store is not None and _without_userinfo(redact_url(_absolute_store(given_store))) != \
            _without_userinfo(recorded.store):
        differences.append(f"store: run had {recorded.store!r}, now {redact_url(given_store)!r}")
    tokenizer = manifest.tokenizer
    if config.tokenizer == recorded.tokenizer:       # same name or folder: is it still the same vocabulary?
        tokenizer = load_tokenizer(config.tokenizer).identity()
    data = manifest.data
    if (config.data, config.dataset) == (recorded.data, recorded.dataset):   # same corpus: same content?
        data = data_identity(config.data, config.dataset)
    differences += identity_differences(manifest, tokenizer, data)
    if differences:
        raise ConfigError(f"run {manifest.run_id!r} cannot resume with a different structural configuration "
                          f"(start a new run instead): {'; '.join(differences)}")
    return dataclasses.replace(config, store=usable_store_url(recorded.store, given_store and _absolute_store(given_store)))


def _recorded_config(manifest: TrainingManifest, folder: Path) -> TrainConfig:
    """The manifest's config, re-based on the runs folder the run is in now (it may have moved)."""
    values = dict(manifest.config)
    old_default = f"sqlite:///{(Path(values['runs_dir']) / manifest.run_id / KB_FILES_DIR).as_posix()}"
    if values["store"] == old_default:
        values["store"] = None           # the default store moves with its run folder
    values["runs_dir"] = str(folder.parent)
    values["address"] = None             # where the run's Ray was is no default for where it resumes
    return TrainConfig.from_dict(values).for_run(manifest.run_id)


def _without_userinfo(url: str) -> str:
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def _check_first_document(config: TrainConfig) -> None:
    """Read the first document of local data: a wrong ``text_field`` (the usual first mistake
    with a .jsonl or .parquet corpus) fails with its CorpusError before a run exists."""
    if config.data is not None and config.max_samples != 0:
        from katoray.text.corpora import iter_local_documents

        next(iter_local_documents(config.data, config.text_field), None)


def _learner(config: TrainConfig):
    """The notebook's learner for this run: node ids ``node{i}_<run_id>`` isolate its knowledge bases."""
    from katoray.hierarchy.learner import HierarchicalConceptLearner

    return HierarchicalConceptLearner(nodes=config.hierarchy_nodes(), tokenizer_name=config.tokenizer,
                                      store=config.store, run_id=config.run_id, metadata_cap=config.metadata_cap)


def _node_table(config: TrainConfig, learner: Any) -> dict[str, dict[str, Any]]:
    from katoray.store import kb_id_for

    return {f"node{i}": {"node_id": learner.node_id(i), "kb_id": kb_id_for(learner.node_id(i)), "chunk_size": size,
                         "mode": config.mode} for i, size in enumerate(config.chunk_sizes)}


def _train(config: TrainConfig, manifest: TrainingManifest, learner: Any, checkpoint: Checkpoint,
           kind: str) -> dict[str, Any]:
    """One attempt (the start, or a resume): train, checkpoint, and record how it ended."""
    from katoray.runtime.train import train_from_streaming_dataset_parallel

    before = dict(checkpoint.statistics)     # totals of earlier attempts, up to their last checkpoint
    attempt = {"kind": kind, "started": utc_now(), "ended": None, "outcome": RUNNING, "workers": config.workers,
               "skipped_batches": len(checkpoint.completed), "host": socket.gethostname(), "pid": os.getpid()}
    manifest.attempts.append(attempt)
    manifest.config, manifest.status, manifest.error, manifest.finished = config.to_dict(), RUNNING, None, None
    manifest.save()

    def on_checkpoint(completed: frozenset, stats: dict[str, Any]) -> None:
        totals = combine_statistics(before, stats)
        Checkpoint(config.run_id, completed, totals, utc_now()).save(config.run_dir)
        _record_progress(manifest, totals)
        manifest.save()

    try:
        stats = train_from_streaming_dataset_parallel(
            dataset_key=config.dataset, data=config.data, max_samples=config.max_samples, learner=learner,
            num_levels=config.nodes, num_workers=config.workers, segment_method=config.segment_method,
            verbose=config.verbose, text_field=config.text_field, batch_size=config.batch_size,
            batch_chars=config.batch_chars, checkpoint_interval=config.checkpoint_interval,
            on_checkpoint=on_checkpoint, skip_batches=checkpoint.completed)
    except BaseException as err:               # Ctrl-C and SIGTERM too: the manifest says how it ended
        attempt.update(ended=utc_now(), outcome=FAILED)
        manifest.status, manifest.error = FAILED, _one_line(err)
        manifest.save()
        raise
    totals = combine_statistics(before, stats)
    attempt.update(ended=utc_now(), outcome=FINISHED)
    manifest.status, manifest.finished = FINISHED, utc_now()
    _record_progress(manifest, totals)
    manifest.save()
    return _result(manifest, totals)


def _record_progress(manifest: TrainingManifest, totals: Mapping[str, Any]) -> None:
    manifest.documents = int(totals.get("samples_processed", 0))
    manifest.tokens = int(totals.get("tokens_processed", 0))
    manifest.statistics = dict(totals)


def _result(manifest: TrainingManifest, statistics: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {**statistics, "run_id": manifest.run_id, "run_dir": str(manifest.run_dir), "status": manifest.status,
            "attempts": len(manifest.attempts), **extra}


def _one_line(err: BaseException) -> str:
    if isinstance(err, (KeyboardInterrupt, SystemExit)):   # Ctrl-C, or SIGTERM (Ray's handler exits)
        return f"stopped by {type(err).__name__}{f' {err}' if str(err) else ''}; resume the run to continue"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _connect_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``ray://...``) unless already connected."""
    if address is None:
        return          # the runtime joins RAY_ADDRESS if set, else starts a local Ray sized for the run
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, logging_level="WARNING")
    except ConnectionError as err:
        raise ConfigError(f"cannot join the Ray cluster at {address!r} ({err}); start it (ray start --head), fix the "
                          "address, or leave the address out to train on a private local Ray") from err
