"""The knowledge-base protocol: the one seam between the engine and storage.

A knowledge base (KB) holds one KATO node's long-term memory: patterns (name, events, frequency,
emotives, metadata), the symbol statistics predictions need (per-symbol total frequency and the
number of distinct patterns containing it), KATO's global totals, and two indexes: symbol ->
patterns containing it, and first symbol -> patterns starting with it.

Writes go through one call, ``apply(deltas, batch_id)``: a batch of learned-pattern deltas applied
atomically. With a ``batch_id`` the call is idempotent: a batch id already applied changes nothing
and returns False. That is what makes retries and crash-and-resume exactly-once.

Reads: single patterns by name, symbol statistics and indexes (what predictions need), and
aggregates for analysis (``frequency_histogram``, ``length_histogram``, ``most_frequent``,
``iter_frequencies``, ``sample_by_frequency``, ``size_on_disk``): each backend computes those
where its patterns are (SQL aggregates, MongoDB aggregation pipelines, numpy over MemoryStore's
columns) and streams what it must scan, so memory never grows with the number of patterns. The
sample is the same on every backend for the same patterns and seed (``weighted_sample``).

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
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from katoray.errors import ConfigError

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
        proportional to frequency, in draw order: ``weighted_sample(self.iter_frequencies(), ...)``."""

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
    one of its events holds exactly one symbol. The arrays must not be written to.
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


@runtime_checkable
class IndexedKnowledgeBase(KnowledgeBase, Protocol):
    """A KB that also answers ``symbol_index`` (MemoryStore); predictions then work on ids."""

    def symbol_index(self, symbols: Sequence[str]) -> SymbolIndex:
        """The id view of the KB for ``symbols`` (duplicates allowed; answers keep their order)."""


def symbol_index(kb: KnowledgeBase, symbols: Sequence[str]) -> SymbolIndex | None:
    """``kb.symbol_index(symbols)``, or None for a backend without one (callers then work by name)."""
    return kb.symbol_index(symbols) if isinstance(kb, IndexedKnowledgeBase) else None


def symbol_counts(events: Sequence[Sequence[str]]) -> Counter:
    """Occurrences of each symbol in a pattern's events."""
    return Counter(symbol for event in events for symbol in event)


def check_apply_args(persistence: int, metadata_cap: int | None) -> None:
    """``apply``'s knobs, checked by every backend before it writes anything."""
    if isinstance(persistence, bool) or not isinstance(persistence, int) or persistence < 1:
        raise ConfigError(f"persistence must be an int >= 1 (emotive dicts kept per pattern), got {persistence!r}")
    if metadata_cap is not None and (isinstance(metadata_cap, bool) or not isinstance(metadata_cap, int)
                                     or metadata_cap < 0):
        raise ConfigError(f"metadata_cap must be None or an int >= 0 (values kept per metadata key), "
                          f"got {metadata_cap!r}")


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


def sample_records(kb: KnowledgeBase, num_samples: int, seed: int = 0) -> list[PatternRecord]:
    """``kb.sample_by_frequency``: the records of ``weighted_sample(kb.iter_frequencies(), ...)``
    in draw order (a pattern deleted while sampling is left out)."""
    names = weighted_sample(kb.iter_frequencies(), num_samples, seed)
    found = kb.get_patterns(names)
    return [found[name] for name in names if name in found]


def weighted_sample(frequencies: Iterable[tuple[str, int]], num_samples: int, seed: int = 0) -> list[str]:
    """Names of ``num_samples`` patterns drawn without replacement, each draw with probability
    proportional to frequency, in draw order; patterns of frequency 0 are never drawn.

    Efraimidis and Spirakis' one-pass method: pattern i gets the key ``log(u_i) / frequency_i``
    and the draws are the ``num_samples`` largest keys, largest first (the same distribution as
    drawing one at a time and removing it). ``u_i`` is uniform in (0, 1) and comes from the name
    and the seed, not from a generator's stream: the name's first 64 bits (a pattern's name is a
    sha1; any other name is hashed with blake2b first) go through a seeded 64-bit mixer, MurmurHash3's
    finaliser twice around two keys derived from ``seed``, so different names (and seeds) give
    practically independent numbers. The sample therefore depends on the patterns and the seed
    only, never on the order a backend streams them in. Pages of ``SAMPLE_PAGE`` pairs are keyed
    with numpy: O(n) time, O(k + page) memory.
    """
    import numpy as np   # (here: a store that never samples never imports numpy)

    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
        raise ValueError(f"num_samples must be an int >= 0, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    keys_of_seed = np.frombuffer(hashlib.blake2b(str(seed).encode(), digest_size=16).digest(), ">u8").astype(np.uint64)
    best_keys, best_names = np.empty(0), np.empty(0, dtype=object)
    for names, counts in _pages_of(frequencies):
        mixed = _fmix64(_fmix64(_name_bits(names) ^ keys_of_seed[0]) ^ keys_of_seed[1])
        uniform = (mixed >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 + 2.0 ** -54   # in (0, 1)
        with np.errstate(divide="ignore"):
            keys = np.where(counts > 0, np.log(uniform) / counts, -np.inf)
        keys = np.concatenate([best_keys, keys])
        names = np.concatenate([best_names, np.array(names, dtype=object)])
        order = _top(keys, names, num_samples)
        best_keys, best_names = keys[order], names[order]
    return list(best_names)


SAMPLE_PAGE = 50_000   # (name, frequency) pairs keyed at once by weighted_sample


def _pages_of(pairs: Iterable[tuple[str, int]]):
    """(names, frequencies as float64) in pages of ``SAMPLE_PAGE``."""
    import numpy as np

    pairs = iter(pairs)
    while page := list(islice(pairs, SAMPLE_PAGE)):
        names, counts = zip(*page)
        yield list(names), np.asarray(counts, dtype=np.float64)


def _name_bits(names: list[str]):
    """The first 64 bits of each sha1 name (uint64); a blake2b of the name for any other name."""
    import numpy as np

    try:
        if set(map(len, names)) == {40}:
            return np.frombuffer(bytes.fromhex("".join([name[:16] for name in names])), ">u8").astype(np.uint64)
    except ValueError:   # not hex: name by name below
        pass
    return np.array([int(name[:16], 16) if len(name) == 40 and _is_hex(name) else
                     int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
                     for name in names], dtype=np.uint64)


def _fmix64(z):
    """MurmurHash3's 64-bit finaliser (a bijection whose every output bit depends on every input bit)."""
    import numpy as np

    z = z ^ (z >> np.uint64(33))
    z = z * np.uint64(0xFF51AFD7ED558CCD)
    z = z ^ (z >> np.uint64(33))
    z = z * np.uint64(0xC4CEB9FE1A85EC53)
    return z ^ (z >> np.uint64(33))


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
        return True
    except ValueError:
        return False


def _top(keys, names, k: int):
    """Positions of the ``k`` largest finite keys, largest first (ties: the smaller name first)."""
    import numpy as np

    finite = np.flatnonzero(keys > -np.inf)
    if k == 0:
        return []
    if len(finite) > k:
        cut = np.partition(keys[finite], len(finite) - k)[len(finite) - k]
        finite = finite[keys[finite] >= cut]   # ties at the cut stay in: sorted out below
    return sorted(finite, key=lambda i: (-keys[i], names[i]))[:k]
