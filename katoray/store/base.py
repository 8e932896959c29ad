"""The knowledge-base protocol: the one seam between the engine and storage.

A knowledge base (KB) holds one KATO node's long-term memory: patterns (name, events, frequency,
emotives, metadata), the symbol statistics predictions need (per-symbol total frequency and the
number of distinct patterns containing it), KATO's global totals, and two indexes: symbol ->
patterns containing it, and first symbol -> patterns starting with it.

A KB may record the run that owns it (``claim_owner``): a run never trains into another's.

Writes go through one call, ``apply(deltas, batch_id)``: a batch of learned-pattern deltas applied
atomically. With a ``batch_id`` the call is idempotent: a batch id already applied changes nothing
and returns False. That is what makes retries and crash-and-resume exactly-once.

Reads: single patterns by name, symbol statistics and indexes (what predictions need), and
aggregates for analysis (``frequency_histogram``, ``length_histogram``, ``most_frequent``,
``iter_frequencies``, ``sample_by_frequency``, ``size_on_disk``): each backend computes those
where its patterns are (SQL aggregates, MongoDB aggregation pipelines, numpy over MemoryStore's
columns) and streams what it must scan, so memory never grows with the number of patterns. The
sample is the same on every backend for the same patterns and seed (:mod:`katoray.store.sampling`).

Merge rules (KATO's learn, spec §3.3, applied ``count`` times at once):
- frequency += count; a new pattern stores events and length.
- emotives: ``(stored + delta.emotives)[-persistence:]``; a delta without emotives leaves them.
- metadata: per key, the sorted union of unique strings; with ``metadata_cap`` only the
  ``metadata_cap`` smallest values are kept (min-N of a union is order-independent, so parallel
  reduction stays deterministic).
- symbols: for each distinct symbol s occurring c times in the pattern, freq[s] += c * count;
  pmf[s] += 1 and the indexes gain the pattern only when the pattern is new.
- totals: total_symbols_in_patterns_frequencies += length * count; for a new pattern
  total_unique_patterns += 1 and total_pattern_frequencies += 1. (KATO quirk kept on purpose:
  total_pattern_frequencies is not incremented on re-learn; it only changes ``confluence`` values.)
- symbol affinity (KATO's per-symbol emotive sums): a delta with emotives adds their per-key
  average to every distinct symbol of its pattern, once per delta (like its emotives). A batch's
  additions are summed first, then added to the stored sums. Deleting a pattern leaves them,
  except that a symbol no pattern holds any more is forgotten with its affinity.
"""
from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from katoray.checks import check_int
from katoray.engine.emotives import average_emotives

if TYPE_CHECKING:   # numpy only in annotations: a store that never predicts never imports it
    import numpy as np


@dataclass(frozen=True)
class PatternRecord:
    """A stored pattern as KATO's ``GET /pattern`` shows it (``name`` is the bare sha1)."""

    name: str
    pattern_data: list[list[str]]
    length: int
    frequency: int
    emotives: list[dict[str, float]] = field(default_factory=list)
    metadata: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": "PTRN|" + self.name, "pattern_data": self.pattern_data, "length": self.length,
                "frequency": self.frequency, "emotives": self.emotives, "metadata": self.metadata}


@dataclass
class PatternDelta:
    """``count`` learns of one pattern, to be merged into a KB.

    ``name`` is the bare sha1 of ``events``; ``emotives`` are the per-observation emotive dicts of
    this learn in order (appended, then cut to the persistence window); ``metadata`` maps each key
    to string values to union in.
    """

    name: str
    events: list[list[str]]
    count: int = 1
    emotives: list[dict[str, float]] = field(default_factory=list)
    metadata: dict[str, list[str]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return sum(len(event) for event in self.events)


@dataclass(frozen=True)
class DeltaColumns:
    """Deltas whose every event holds one symbol (all hierarchy training learns), as columns.

    Row i is ``counts[i]`` learns of pattern ``names[i]`` (bare sha1) with events
    ``[[s] for s in symbols[i]]``, no emotives, and ``metadata.get(i)`` to union in. Equivalent
    to ``to_deltas()``, but cheaper to build, ship between processes and apply.
    """

    names: Sequence[str]
    symbols: Sequence[Sequence[str]]
    counts: Sequence[int]
    metadata: Mapping[int, Mapping[str, Sequence[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.symbols) == len(self.counts):
            raise ValueError(f"DeltaColumns needs one entry per pattern in names, symbols and counts; got "
                             f"{len(self.names)}, {len(self.symbols)} and {len(self.counts)}")
        if any(not 0 <= i < len(self.names) for i in self.metadata):
            raise ValueError(f"DeltaColumns metadata keys must be row numbers 0..{len(self.names) - 1}")

    def __len__(self) -> int:
        return len(self.names)

    def to_deltas(self) -> list[PatternDelta]:
        meta = self.metadata
        return [PatternDelta(name, [[s] for s in symbols], count, [],
                             {k: list(v) for k, v in meta[i].items()} if i in meta else {})
                for i, (name, symbols, count) in enumerate(zip(self.names, self.symbols, self.counts))]


@dataclass(frozen=True)
class KBTotals:
    """KATO's global counters plus the number of distinct symbols (``N_sym`` in spec §4.6)."""

    total_unique_patterns: int = 0
    total_pattern_frequencies: int = 0
    total_symbols_in_patterns_frequencies: int = 0
    num_symbols: int = 0


@runtime_checkable
class KnowledgeBase(Protocol):
    """What the engine and the runtime need from a node's knowledge base."""

    kb_id: str

    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        """Merge ``deltas`` atomically; False (and no change) if ``batch_id`` was applied before."""

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        """``apply(columns.to_deltas(), batch_id, ...)``, without building the deltas where it can."""

    def is_applied(self, batch_id: str) -> bool:
        """Whether a batch with this id has been applied."""

    def claim_owner(self, owner: str) -> str:
        """Record ``owner`` (a run) as this KB's owner if it has none, atomically; return the owner
        recorded, ``owner`` or the one that claimed it first. ``clear`` forgets the owner. A run
        refuses to train into a KB another run owns (``katoray.runtime.sinks.check_owner``)."""

    def get_pattern(self, name: str) -> PatternRecord | None:
        """The pattern with this bare sha1 name, or None."""

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        """Records for the names that exist (missing names are left out)."""

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        """Names of patterns that contain at least one of ``symbols`` (symbol index)."""

    def patterns_starting_with(self, symbol: str) -> list[str]:
        """Names of patterns whose first event's first symbol is ``symbol`` (first-token index)."""

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        """Number of distinct patterns containing each known symbol (unknown ones are left out)."""

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        """Total occurrences over all learns for each known symbol."""

    def totals(self) -> KBTotals:
        """Global counters."""

    def count(self) -> int:
        """Number of distinct patterns."""

    def symbol_affinity(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """Emotive sums of each symbol that has any (``symbols=None``: every such symbol)."""

    def iter_patterns(self) -> Iterator[PatternRecord]:
        """Every pattern, sorted by name (full scan: analysis and reference checks only)."""

    # -- aggregate reads: computed where the patterns are, never by loading every pattern --------
    def frequency_histogram(self) -> dict[int, int]:
        """``{frequency: number of patterns}``, ascending by frequency."""

    def length_histogram(self) -> dict[int, int]:
        """``{length (symbols in the pattern): number of patterns}``, ascending by length."""

    def most_frequent(self, limit: int | None = None, min_frequency: int = 1,
                      max_frequency: int | None = None) -> list[PatternRecord]:
        """Patterns with ``min_frequency <= frequency <= max_frequency``, most frequent first, ties
        by name; at most ``limit`` of them (None: all)."""

    def iter_frequencies(self) -> Iterator[tuple[str, int]]:
        """(name, frequency) of every pattern, in no particular order (a streamed scan of two fields)."""

    def sample_by_frequency(self, num_samples: int, seed: int = 0) -> list[PatternRecord]:
        """``num_samples`` patterns drawn without replacement, each draw with probability
        proportional to frequency, in draw order (:func:`katoray.store.sampling.sample_records`)."""

    def size_on_disk(self) -> int | None:
        """Bytes the KB takes in its files or database (data and indexes), None for ``memory://``."""

    def delete_patterns(self, names: Iterable[str]) -> int:
        """Remove these patterns (bare names), undoing their symbol statistics, index entries and
        totals as if they had never been learned; unknown names are ignored. Returns how many."""

    def clear(self) -> None:
        """Delete every pattern, statistic and applied-batch record of this KB."""

    def close(self) -> None:
        """Release connections and files."""


# -- optional extension: an integer-id index ---------------------------------------------------

@dataclass(frozen=True)
class SymbolIndex:
    """A consistent, read-only view of a KB's patterns as columns indexed by integer pattern id.

    Ids are dense (``0 <= id < len(names)``) and never reused; ``names[id]`` is the bare name, None
    once deleted, and ``name_keys[id]`` its first 8 UTF-8 bytes (zero-padded) read as a big-endian
    number, so a smaller key means a smaller name (equal keys: compare the names). ``postings[k]`` holds, ascending, the ids of the patterns containing the k-th
    requested symbol, whose own id is ``symbol_ids[k]`` (-1 and an empty array when no pattern holds
    it). A pattern's flattened symbols, as symbol ids (``< num_symbol_ids``), are
    ``flat[offsets[id]:offsets[id] + lengths[id]]``; ``single_symbol_events[id]`` says whether every
    one of its events holds exactly one symbol. The arrays must not be written to. Over every id
    (deleted ones too), ``length_range`` is the (smallest, largest) of ``lengths`` ((0, 0) for
    none) and ``event_kinds`` whether some ``single_symbol_events`` is False, and some True.
    """

    symbol_ids: list[int]
    postings: list[np.ndarray]
    num_symbol_ids: int
    names: Sequence[str | None]
    name_keys: np.ndarray
    lengths: np.ndarray
    single_symbol_events: np.ndarray
    offsets: np.ndarray
    flat: np.ndarray
    length_range: tuple[int, int]
    event_kinds: tuple[bool, bool]


@runtime_checkable
class IndexedKnowledgeBase(KnowledgeBase, Protocol):
    """A KB that also answers ``symbol_index`` (MemoryStore); predictions then work on ids."""

    def symbol_index(self, symbols: Sequence[str]) -> SymbolIndex:
        """The id view of the KB for ``symbols`` (duplicates allowed; answers keep their order)."""


@dataclass(frozen=True)
class PatternRows:
    """A page of patterns: names (bare), events and frequencies, row by row."""

    names: list[str]
    events: list[list[list[str]]]
    frequencies: list[int]


@runtime_checkable
class ScannableKnowledgeBase(KnowledgeBase, Protocol):
    """A KB that also reads every pattern's name, events and frequency in bulk (MemoryStore,
    SqliteStore): what an index over a whole KB is built from, without reading each pattern's
    emotives and metadata."""

    def pattern_rows(self, page: int) -> Iterator[PatternRows]:
        """Every pattern, in pages of at most ``page``, in an order of the store's choosing."""


def pattern_rows(kb: KnowledgeBase, page: int = 20_000) -> Iterator[PatternRows]:
    """``kb.pattern_rows(page)``, or the same pages read through ``iter_patterns`` (any backend)."""
    if isinstance(kb, ScannableKnowledgeBase):
        yield from kb.pattern_rows(page)
        return
    records = kb.iter_patterns()
    while chunk := list(islice(records, page)):
        yield PatternRows([r.name for r in chunk], [r.pattern_data for r in chunk], [r.frequency for r in chunk])


@runtime_checkable
class SymbolListingKnowledgeBase(KnowledgeBase, Protocol):
    """A KB that also lists its symbols (every backend here): what a sharded level counts its
    distinct symbols from (``store.sharded``)."""

    def stored_symbols(self) -> set[str]:
        """Every symbol some stored pattern holds (those ``symbol_pmf`` knows)."""


def stored_symbols(kb: KnowledgeBase) -> set[str]:
    """``kb.stored_symbols()``, or the symbols of every pattern read in pages (any backend)."""
    if isinstance(kb, SymbolListingKnowledgeBase):
        return kb.stored_symbols()
    return {s for page in pattern_rows(kb) for events in page.events for event in events for s in event}


@runtime_checkable
class ShardedKnowledgeBase(KnowledgeBase, Protocol):
    """A level split by pattern name into several KBs (``store.sharded.ShardedStore``): every
    pattern lives in exactly one of ``shards``; predictions search them one by one."""

    shards: Sequence[KnowledgeBase]


def shards_of(kb: KnowledgeBase) -> Sequence[KnowledgeBase]:
    """The KBs a prediction searches for candidates: a sharded level's shards, else ``[kb]``."""
    return kb.shards if isinstance(kb, ShardedKnowledgeBase) else (kb,)


def symbol_index(kb: KnowledgeBase, symbols: Sequence[str]) -> SymbolIndex | None:
    """``kb.symbol_index(symbols)``, or None for a backend without one (callers then work by name)."""
    return kb.symbol_index(symbols) if isinstance(kb, IndexedKnowledgeBase) else None


# -- optional extension: consistent reads ------------------------------------------------------

@runtime_checkable
class SnapshotKnowledgeBase(KnowledgeBase, Protocol):
    """A KB whose reads inside ``reading()`` all see one state: this process's writes (apply,
    delete, clear) wait until the block ends. Every backend here has it; SQLite also reads one
    transaction's snapshot, so other processes' writes stay out too."""

    def reading(self) -> AbstractContextManager:
        """A block in which every read sees the same state of the KB."""


def reading(kb: KnowledgeBase) -> AbstractContextManager:
    """``kb.reading()``: the block sees one state of ``kb`` (a prediction reads it many times);
    a backend without it gives a block with no guarantee."""
    return kb.reading() if isinstance(kb, SnapshotKnowledgeBase) else nullcontext()


def symbol_counts(events: Sequence[Sequence[str]]) -> Counter:
    """Occurrences of each symbol in a pattern's events."""
    return Counter(symbol for event in events for symbol in event)


def emotive_learns(deltas: Sequence[PatternDelta]) -> list[tuple[list[list[str]], list[dict[str, float]]]]:
    """The (events, emotives) of the deltas that carry emotives, grouped by pattern name in the
    order names first appear in the batch (the order every backend sums affinity in, so floats
    agree bit for bit)."""
    grouped: dict[str, list[PatternDelta]] = {}
    for delta in deltas:
        grouped.setdefault(delta.name, []).append(delta)
    return [(d.events, d.emotives) for group in grouped.values() for d in group if d.emotives]


def affinity_increments(learns: Iterable[tuple[Sequence[Sequence[str]], Sequence[Mapping[str, float]]]]
                        ) -> dict[str, dict[str, float]]:
    """What a batch adds to symbol affinities: for each (events, emotives) learn with emotives,
    their per-key average added to each distinct symbol of the events (``emotive_learns`` order)."""
    out: dict[str, dict[str, float]] = {}
    for events, emotives in learns:
        average = average_emotives(emotives) if emotives else None
        if not average:
            continue
        for symbol in dict.fromkeys(s for event in events for s in event):
            add_affinity(out, symbol, average)
    return out


def add_affinity(affinity: dict[str, dict[str, float]], symbol: str, sums: Mapping[str, float]) -> None:
    """Add ``sums`` (emotive -> value) to ``affinity[symbol]``, key by key, in ``sums``' order."""
    stored = affinity.setdefault(symbol, {})
    for key, value in sums.items():
        stored[key] = stored.get(key, 0.0) + value


def check_apply_args(persistence: int, metadata_cap: int | None) -> None:
    """``apply``'s knobs, checked by every backend before it writes anything."""
    check_int("persistence", persistence, 1, unit="emotive dicts kept per pattern")
    check_int("metadata_cap", metadata_cap, 0, allow_none=True, unit="values kept per metadata key")


def merge_emotives(stored: list[dict[str, float]], new: list[dict[str, float]], persistence: int) -> list[dict[str, float]]:
    """KATO's rolling emotive window: the last ``persistence`` dicts of stored + new."""
    if not new:
        return stored
    return (list(stored) + list(new))[-persistence:]


def merge_metadata(stored: Mapping[str, list[str]], new: Mapping[str, Iterable[str]],
                   cap: int | None = None) -> dict[str, list[str]]:
    """Per key, the sorted union of unique strings, keeping the ``cap`` smallest when capped."""
    out = {key: list(values) for key, values in stored.items()}
    for key, values in new.items():
        merged = sorted(set(out.get(key, ())) | {str(v) for v in values})
        out[key] = merged[:cap] if cap is not None else merged
    return dict(sorted(out.items()))


def check_limit(limit: int | None) -> None:
    """``most_frequent``'s ``limit``, checked alike by every backend (SQL and MongoDB read a
    negative or zero limit differently)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None (no limit) or an int >= 0, got {limit!r}")
