"""Configuration: frozen, typed values, each validated once where it is built and passed as is.

    TrainConfig   a training run, as ``katoray train`` takes it and the manifest records it
    HierarchyConfig   what the pure map needs: mode, chunk sizes, metadata levels and cap
    Batching      how a corpus shard's documents are grouped into batches (part of a batch id)

KATO's own session settings are ``katoray.engine.config.SessionConfig``. Every default is written
here once; the command line takes its options' defaults from these fields (``field_default``).
Ray pickles these dataclasses as they are: nothing converts them to dicts inside the program
(``TrainConfig.to_dict`` / ``from_dict`` are the manifest's JSON form only).
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from katoray.checks import check_choice, check_int, check_str
from katoray.engine.config import SessionConfig
from katoray.errors import ConfigError

DEFAULT_RUNS_DIR = "runs"           # a run lives in <runs_dir>/<run_id>/
DEFAULT_LEVELS = 4
DEFAULT_CHUNK_SIZE = 8              # tokens (node0) or child names (above) per pattern
DEFAULT_METADATA_CAP = 16           # values kept per metadata key per pattern (the smallest, sorted)
DEFAULT_DATASET = "pydoc"           # Python's own docs: the corpus every install has (no download)
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))   # mapper actors; each keeps a core busy
DEFAULT_CHECKPOINT_INTERVAL = 100   # documents between checkpoints (a checkpoint is one small JSON write)
# A batch is the unit of one knowledge-base write per level, and each write has a cost that does
# not grow with the batch (the symbols it touches are updated once per batch, one transaction, one
# Ray task and acknowledgement), so batches are sized by text, about 250k GPT-2 tokens, and the
# document cap only stops runaway batches of tiny rows. Measured on 2 cores, 2 workers
# (`python scripts/benchmark.py batching`): the KJV one verse per document took 25 CPU s at the
# earlier 64 documents / 256 KiB (486 batches of ~2k tokens) and 9 CPU s at these (8 batches);
# the KJV books five times over 19.5-20.3 CPU s and 16.6-18.9. Larger still (4 MiB) saved little
# more and doubled the time to the first batch.
DEFAULT_BATCH_SIZE = 4096           # documents per batch at most
DEFAULT_BATCH_CHARS = 1_048_576     # characters that close a batch (books: ~250k tokens per batch)
# The first batches of a run's first shard are smaller: 64 KiB, then twice as many characters each,
# up to the batch size above (64, 128, 256, 512 KiB, then 1 MiB). Every actor of a run starts at
# once, and a first batch of 1 MiB kept the pipeline waiting on one mapper; the ramp costs four
# more, small writes per run (~50 ms of CPU each), so the other shards keep whole batches. Measured
# (2 workers, 2 cores, the KJV books, a warm driver, 7 pairs alternating): the first batch durable
# after 3.9-5.5 s (median 4.6) instead of 5.0-6.4 s (5.3); the whole run about as long (5.9-8.6 s
# against 6.0-7.4 s).
DEFAULT_FIRST_BATCH_CHARS = 65_536
KB_FILES_DIR = "kb"                 # the default store: sqlite:///<runs_dir>/<run_id>/kb, a file per level

MODES = ("chunking", "structure")
STRUCTURE_UNITS = ("sentence", "paragraph", "section", "document")   # structure mode's levels
SEGMENT_METHODS = ("simple", "article", "book")


# -- run ids -------------------------------------------------------------------------------------
def check_run_id(run_id: Any, shards: int = 1) -> None:
    """The one run-id rule (the command line, Python and the notebook's functions): a run id names
    a folder and the run's knowledge bases, so no separators, spaces, control characters or
    leading dot, and short enough for MongoDB's database names (``store.naming``; ``shards``: the
    most shards of any level, whose knowledge-base names are longer)."""
    from katoray.store.naming import check_run_id_fits

    if (not isinstance(run_id, str) or not run_id or run_id.startswith(".")
            or any(c in run_id for c in "/\\ ") or not run_id.isprintable()):
        raise ConfigError(f"run id must be a non-empty name without slashes, spaces, control characters or a "
                          f"leading dot, got {run_id!r}")
    check_run_id_fits(run_id, shards)


def new_run_id() -> str:
    """A fresh run id: UTC time plus randomness, sortable (``20261126-123015-3fa9c2``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` (the command line's option defaults)."""
    return cls.__dataclass_fields__[name].default


def _is_local_corpus(dataset: Any) -> bool:
    """A ``dataset`` that names a local file or folder rather than a registered key (the notebook's
    ``DATASET_KEY`` set to a path): it exists, and it is spelt as a path (registered keys such as
    ``wikitext`` or ``c4`` hold no '/', '.' or '~')."""
    return (isinstance(dataset, str) and any(c in dataset for c in "/.~")
            and Path(dataset).expanduser().exists())


# -- values --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batching:
    """How a shard's documents are grouped into batches (part of what a batch id means)."""

    text_field: str = "text"                       # text column of jsonl / parquet rows
    batch_size: int = DEFAULT_BATCH_SIZE           # documents per batch (one knowledge-base write per level)
    batch_chars: int | None = DEFAULT_BATCH_CHARS  # characters that close a batch early; None = no limit
    # characters that close the first batch of a run's first shard; each next one twice as many, up
    # to batch_chars (None: every batch at batch_chars)
    first_batch_chars: int | None = DEFAULT_FIRST_BATCH_CHARS

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1, unit="documents per batch")
        check_int("batch_chars", self.batch_chars, 1, allow_none=True, unit="characters per batch")
        check_int("first_batch_chars", self.first_batch_chars, 1, allow_none=True,
                  unit="characters in a run's first batch")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise ConfigError(f"text_field must be a field name, got {self.text_field!r}")

    def chars_limit(self, shard: int, index: int) -> int | None:
        """Characters that close batch number ``index`` (0 = the first) of shard number ``shard``:
        only the run's first shard (0) ramps up (each batch of the others would be one more write)."""
        if shard != 0 or self.batch_chars is None or self.first_batch_chars is None or \
                self.first_batch_chars >= self.batch_chars:
            return self.batch_chars
        ramp_batches = (self.batch_chars // self.first_batch_chars).bit_length()   # (bounds the shift below)
        return min(self.batch_chars, self.first_batch_chars << index) if index < ramp_batches else self.batch_chars


@dataclass(frozen=True)
class HierarchyConfig:
    """What the pure map needs: mode, chunk sizes per level, which levels record metadata.

    ``chunking``: node0 learns each run of ``chunk_sizes[0]`` tokens (one token per event), node k
    each run of ``chunk_sizes[k]`` names from node k-1. ``structure``: node0 sentences, node1
    paragraphs, node2 sections or chapters, node3 documents (at most 4 levels; sizes unused).
    """

    mode: str = "chunking"
    chunk_sizes: tuple[int, ...] = (DEFAULT_CHUNK_SIZE,) * DEFAULT_LEVELS
    metadata_levels: frozenset[int] = field(default_factory=lambda: frozenset({1, 2, 3}))
    metadata_cap: int = DEFAULT_METADATA_CAP

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        if not self.chunk_sizes:
            raise ConfigError("a hierarchy needs at least one node (node0)")
        for level, size in enumerate(self.chunk_sizes):
            check_int(f"node{level}: chunk_size", size, 2, unit="KATO learns nothing shorter than 2 symbols")
        if self.mode == "structure" and len(self.chunk_sizes) > len(STRUCTURE_UNITS):
            raise ConfigError(f"structure mode has {len(STRUCTURE_UNITS)} levels ({', '.join(STRUCTURE_UNITS)}); "
                              f"got {len(self.chunk_sizes)} nodes: use num_levels <= 4 or chunking mode")
        check_int("metadata_cap", self.metadata_cap, 1, unit="values kept per metadata key")

    @property
    def num_levels(self) -> int:
        return len(self.chunk_sizes)


def _per_level_shards(shards: Any, levels: int) -> tuple[int, ...]:
    """``shards`` as one count per level: a single value applies to every level."""
    from katoray.store.naming import MAX_SHARDS

    values = (shards,) if isinstance(shards, int) else shards
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"shards must be an integer or one integer per level, got {shards!r}")
    values = tuple(values)
    if len(values) == 1:
        values *= levels
    if len(values) != levels:
        raise ConfigError(f"shards has {len(values)} values {list(values)} but levels is {levels}: give one count "
                          "per level, or a single count for every level")
    for level, count in enumerate(values):
        check_int(f"node{level}: shards", count, 1, unit="knowledge bases per level")
        if count > MAX_SHARDS:
            raise ConfigError(f"node{level}: shards must be at most {MAX_SHARDS}, got {count}")
    return values


def default_metadata_levels(levels: int) -> tuple[int, ...]:
    """Levels that record document metadata unless told otherwise: every level but node0 (the
    most numerous patterns, each a few tokens)."""
    return tuple(range(1, levels))


STRUCTURAL = ("levels", "chunk_sizes", "mode", "segment_method", "tokenizer", "data", "dataset", "text_field",
              "max_samples", "batch_size", "batch_chars", "first_batch_chars", "metadata_cap", "metadata_levels",
              "session_configs", "store", "shards")
RUN_TIME = ("workers", "checkpoint_interval", "verbose", "address")


@dataclass(frozen=True)
class TrainConfig:
    """A training run, as ``katoray train`` takes it and the manifest records it.

    ``levels`` and ``chunk_sizes`` describe one hierarchy: give either or both (a single chunk
    size applies to every level). With neither ``data`` nor ``dataset`` the run trains on the
    built-in ``pydoc`` corpus. Paths are made absolute here: Ray workers and job drivers run in
    other directories. Structural fields decide what the knowledge bases hold and what a batch id
    means (a resume must keep them); run-time fields may change between attempts.
    """

    # -- structural: a resume must keep these -------------------------------------------------
    levels: int | None = None                    # hierarchy levels (node0 .. node{n-1}); default 4
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
    first_batch_chars: int | None = DEFAULT_FIRST_BATCH_CHARS   # the run's first batch; then x2 up to batch_chars
    metadata_cap: int = DEFAULT_METADATA_CAP     # values kept per metadata key per pattern
    metadata_levels: tuple[int, ...] | None = None   # levels recording document metadata; None = all but node0
    session_configs: tuple[SessionConfig, ...] | None = None   # KATO settings per level; None = KATO's defaults
    store: str | None = None                     # KB URL; None = sqlite in the run folder
    shards: int | tuple[int, ...] = 1            # knowledge bases (and node actors) per level: one value for
                                                 # every level, or one per level; patterns go by name
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
        self._normalise_levels()
        self._normalise_paths()
        self._validate()

    # -- construction ---------------------------------------------------------------------------
    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)   # normalising a frozen instance in __post_init__

    def _normalise_hierarchy(self) -> None:
        levels, sizes = self.levels, self.chunk_sizes
        check_int("levels", levels, 1, allow_none=True)
        if sizes is not None:
            if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
                raise ConfigError(f"chunk_sizes must be a list of integers, got {sizes!r}")
            sizes = tuple(sizes)
            if not sizes:
                raise ConfigError("chunk_sizes is empty: give one size per level, or one for all")
        if levels is None:
            levels = len(sizes) if sizes is not None and len(sizes) > 1 else DEFAULT_LEVELS
        if sizes is None:
            sizes = (DEFAULT_CHUNK_SIZE,) * levels
        elif len(sizes) == 1:
            sizes = sizes * levels
        elif len(sizes) != levels:
            raise ConfigError(f"chunk_sizes has {len(sizes)} values {list(sizes)} but levels is {levels}: give one "
                              "size per level, or a single size for every level")
        self._set("levels", levels)
        self._set("chunk_sizes", sizes)

    def _normalise_levels(self) -> None:
        """Per-level settings: metadata levels as a sorted tuple, one SessionConfig and one shard
        count per level."""
        self._set("shards", _per_level_shards(self.shards, self.levels))
        if self.metadata_levels is not None:
            chosen = tuple(sorted(set(self.metadata_levels)))
            if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.levels for i in chosen):
                raise ConfigError(f"metadata_levels must be level numbers 0..{self.levels - 1}, "
                                  f"got {list(self.metadata_levels)}")
            self._set("metadata_levels", chosen)
        if self.session_configs is not None:
            configs = tuple(c if isinstance(c, SessionConfig) else SessionConfig.from_dict(c)
                            for c in self.session_configs)
            if len(configs) != self.levels:
                raise ConfigError(f"session_configs has {len(configs)} entries; give one per level ({self.levels})")
            for level, cfg in enumerate(configs):
                if cfg.max_pattern_length != 0:
                    raise ConfigError(f"node{level}: max_pattern_length must be 0 for hierarchical training "
                                      "(levels learn at chunk or structure boundaries; auto-learn would split them)")
            self._set("session_configs", None if all(c == SessionConfig() for c in configs) else configs)

    def _normalise_paths(self) -> None:
        from katoray.store.urls import absolute_store_url, is_memory

        if self.data is None and self.dataset is None:
            self._set("dataset", DEFAULT_DATASET)
        if self.data is None and _is_local_corpus(self.dataset):   # a file or folder where a key goes
            self._set("data", self.dataset)
            self._set("dataset", None)
        if self.data is not None:
            check_str("data", self.data)
            self._set("data", str(Path(self.data).expanduser().resolve()))
        if self.tokenizer is not None:
            check_str("tokenizer", self.tokenizer)
            local = Path(self.tokenizer).expanduser()
            if local.exists():
                self._set("tokenizer", str(local.resolve()))
        check_str("runs_dir", self.runs_dir)
        self._set("runs_dir", str(Path(self.runs_dir).expanduser().resolve()))
        if self.store is not None:
            if is_memory(self.store):
                raise ConfigError("store memory:// lives and dies with one process: a run's knowledge bases must "
                                  "outlive it (resume, analysis). Use sqlite:///path/to/dir (the default) or "
                                  "mongodb://host:port/")
            self._set("store", absolute_store_url(self.store))

    def _validate(self) -> None:
        self.hierarchy    # mode, sizes, cap
        check_choice("segment_method", self.segment_method, SEGMENT_METHODS)
        if self.data is not None and self.dataset is not None:
            raise ConfigError("give one corpus: data=<file or folder> or dataset=<key>, not both")
        if self.dataset is not None:
            check_str("dataset", self.dataset)
        self.batching     # field and batch sizes
        check_int("max_samples", self.max_samples, 0, allow_none=True)
        check_int("workers", self.workers, 1)
        check_int("checkpoint_interval", self.checkpoint_interval, 1)
        if not isinstance(self.verbose, bool):
            raise ConfigError(f"verbose must be True or False, got {self.verbose!r}")
        if self.address is not None:
            check_str("address", self.address)
        if self.run_id is not None:
            check_run_id(self.run_id, max(self.shards))

    # -- derived ----------------------------------------------------------------------------------
    @property
    def hierarchy(self) -> HierarchyConfig:
        levels = self.metadata_levels if self.metadata_levels is not None else default_metadata_levels(self.levels)
        return HierarchyConfig(self.mode, self.chunk_sizes, frozenset(levels), self.metadata_cap)

    @property
    def batching(self) -> Batching:
        return Batching(self.text_field, self.batch_size, self.batch_chars, self.first_batch_chars)

    def session_config(self, level: int) -> SessionConfig:
        return self.session_configs[level] if self.session_configs is not None else SessionConfig()

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

    # -- the manifest's JSON form -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready; the store URL without its password."""
        from katoray.store.urls import redact_url

        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["chunk_sizes"] = list(self.chunk_sizes)
        out["shards"] = self.shards[0] if len(set(self.shards)) == 1 else list(self.shards)   # one count: for all
        out["metadata_levels"] = None if self.metadata_levels is None else list(self.metadata_levels)
        out["session_configs"] = None if self.session_configs is None else [c.to_dict() for c in self.session_configs]
        out["store"] = None if self.store is None else redact_url(self.store)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """A config from its manifest form (``nodes``, the name manifests used before ``levels``, is read too)."""
        values = dict(values)
        if "nodes" in values and "levels" not in values:
            values["levels"] = values.pop("nodes")
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
