"""A sharded level: one knowledge base split by pattern name into several, read and written as one.

A level of ``n`` shards keeps each pattern in exactly one of ``n`` knowledge bases, chosen by its
name (``shard_of``: the first 8 hex digits of the bare sha1 name, modulo ``n``; sha1 is uniform,
so shards fill evenly). Each shard is an ordinary knowledge base with its own symbol statistics,
totals and ledger of applied batches; training sends each shard its part of every batch.

``ShardedStore`` is the ``KnowledgeBase`` protocol over the shards, giving exactly the unsharded
knowledge base's answers. Because a pattern lives in one shard only, what counts patterns adds up:

- totals: ``total_unique_patterns``, ``total_pattern_frequencies`` and
  ``total_symbols_in_patterns_frequencies`` are sums over the shards;
- ``symbol_pmf`` (distinct patterns holding a symbol) and ``symbol_frequencies`` are sums;
- ``num_symbols`` (distinct symbols) is not a sum, as a symbol sits in several shards: it is the
  size of the union of the shards' symbols, read once and again only after a shard changed;
- aggregates (histograms, ``most_frequent``, ``iter_frequencies``, ``size_on_disk``) add the
  shards' up; ``sample_by_frequency`` draws as one KB does (a draw depends on names and seed only);
- ``patterns_with_any`` is the union, ``patterns_starting_with`` the shards' lists one after the
  other, ``get_pattern(s)`` asks the shard of each name, ``iter_patterns`` merges the shards'
  name-sorted streams;
- ``apply`` splits the deltas by shard and applies each part, with the batch id, to its shard
  (every shard gets its part, empty or not, so every shard's ledger knows every batch). A batch
  cut short between shards is completed by its retry: each shard applies it exactly once.

Predictions search candidates shard by shard (``engine.predict``: each shard's top K by KATO's
pruning key, then the first K of their union in the same order) and compute the ensemble metrics
over this merged view. Same input, same names, same numbers, whatever the shard count.
"""
from __future__ import annotations

import heapq
from collections import Counter
from contextlib import ExitStack, contextmanager
from hashlib import sha1
from operator import attrgetter
from typing import Iterable, Iterator, Sequence

from katoray.store.base import (DeltaColumns, KBTotals, KnowledgeBase, PatternDelta, PatternRecord, PatternRows,
                                add_affinity, check_limit, pattern_rows, reading, stored_symbols)
from katoray.store.sampling import sample_records

HASH_DIGITS = 8   # hex digits of a name that choose its shard (32 bits: even for any shard count in use)


def shard_of(name: str, shards: int) -> int:
    """The shard (0 .. shards-1) holding pattern ``name`` (bare sha1). Stable: it depends on the
    name alone. A name that is not hex (no KATO name) goes by the sha1 of its text."""
    if shards == 1:
        return 0
    try:
        key = int(name[:HASH_DIGITS], 16)
    except ValueError:
        key = int(sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS], 16)
    return key % shards


def split_rows(names: Sequence[str], shards: int) -> list[list[int]]:
    """Row numbers of ``names`` per shard, each list in the rows' own order."""
    parts: list[list[int]] = [[] for _ in range(shards)]
    for row, name in enumerate(names):
        parts[shard_of(name, shards)].append(row)
    return parts


def split_columns(columns: DeltaColumns, shards: int) -> list[DeltaColumns]:
    """``columns`` as one ``DeltaColumns`` per shard (rows keep their order; metadata follows its row)."""
    meta = columns.metadata
    out = []
    for rows in split_rows(columns.names, shards):
        metadata = {i: meta[row] for i, row in enumerate(rows) if row in meta}
        out.append(DeltaColumns([columns.names[r] for r in rows], [columns.symbols[r] for r in rows],
                                [columns.counts[r] for r in rows], metadata))
    return out


class ShardedStore:
    """One level's shards as one knowledge base (module docstring).

    Args:
        shards: the level's knowledge bases, in shard order (pattern ``n`` lives in
            ``shards[shard_of(n, len(shards))]``).
        kb_id: the level's name in messages (default: ``<first shard's id> .. <last shard's id>``).
    """

    def __init__(self, shards: Sequence[KnowledgeBase], kb_id: str | None = None) -> None:
        if not shards:
            raise ValueError("a sharded knowledge base needs at least one shard")
        self.shards: tuple[KnowledgeBase, ...] = tuple(shards)
        self.kb_id = kb_id or f"{self.shards[0].kb_id} .. {self.shards[-1].kb_id}"
        self._symbols_key: tuple | None = None   # the shards' totals when _num_symbols was counted
        self._num_symbols = 0

    def __repr__(self) -> str:
        return f"ShardedStore({self.kb_id!r}, {len(self.shards)} shards)"

    def shard(self, name: str) -> KnowledgeBase:
        """The shard holding pattern ``name``."""
        return self.shards[shard_of(name, len(self.shards))]

    # -- writes -----------------------------------------------------------------------------
    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        """Each shard applies its part; True if any shard had not applied ``batch_id`` yet."""
        parts = split_rows([d.name for d in deltas], len(self.shards))
        return self._each(lambda kb, rows: kb.apply([deltas[r] for r in rows], batch_id, persistence=persistence,
                                                    metadata_cap=metadata_cap), parts)

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        parts = split_columns(columns, len(self.shards))
        return self._each(lambda kb, part: kb.apply_columns(part, batch_id, persistence=persistence,
                                                            metadata_cap=metadata_cap), parts)

    def _each(self, apply, parts: Sequence) -> bool:
        self._symbols_key = None
        applied = [apply(kb, part) for kb, part in zip(self.shards, parts)]   # every shard, none skipped
        return any(applied)

    def delete_patterns(self, names: Iterable[str]) -> int:
        self._symbols_key = None
        parts = split_rows(names := list(names), len(self.shards))
        return sum(kb.delete_patterns([names[r] for r in rows]) for kb, rows in zip(self.shards, parts) if rows)

    def claim_owner(self, owner: str) -> str:
        """Claims every shard; the first other owner found, if any shard has one, else ``owner``."""
        claims = [kb.claim_owner(owner) for kb in self.shards]
        return next((claim for claim in claims if claim != owner), owner)

    def is_applied(self, batch_id: str) -> bool:
        """Whether every shard has applied ``batch_id``."""
        return all(kb.is_applied(batch_id) for kb in self.shards)

    def clear(self) -> None:
        self._symbols_key = None
        for kb in self.shards:
            kb.clear()

    def close(self) -> None:
        for kb in self.shards:
            kb.close()

    # -- reads ------------------------------------------------------------------------------
    def get_pattern(self, name: str) -> PatternRecord | None:
        return self.shard(name).get_pattern(name)

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        names = list(names)
        found: dict[str, PatternRecord] = {}
        for kb, rows in zip(self.shards, split_rows(names, len(self.shards))):
            if rows:
                found.update(kb.get_patterns([names[r] for r in rows]))
        return {name: found[name] for name in names if name in found}

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        symbols = list(symbols)
        return set().union(*(kb.patterns_with_any(symbols) for kb in self.shards))

    def patterns_starting_with(self, symbol: str) -> list[str]:
        """Shard after shard, each in its own learning order (no clock spans the shards)."""
        return [name for kb in self.shards for name in kb.patterns_starting_with(symbol)]

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._summed("symbol_pmf", symbols)

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._summed("symbol_frequencies", symbols)

    def _summed(self, method: str, symbols: Iterable[str]) -> dict[str, int]:
        """Per symbol, the shards' answers added (in the order of ``symbols``, known ones only)."""
        symbols = list(symbols)
        total: dict[str, int] = {}
        for kb in self.shards:
            for symbol, value in getattr(kb, method)(symbols).items():
                total[symbol] = total.get(symbol, 0) + value
        return {s: total[s] for s in dict.fromkeys(symbols) if s in total}

    def totals(self) -> KBTotals:
        each = [kb.totals() for kb in self.shards]
        return KBTotals(sum(t.total_unique_patterns for t in each), sum(t.total_pattern_frequencies for t in each),
                        sum(t.total_symbols_in_patterns_frequencies for t in each), self._distinct_symbols(each))

    def _distinct_symbols(self, each: list[KBTotals]) -> int:
        """Distinct symbols over every shard: counted again after a write through this object, and
        when a shard's totals moved (another process's learn adds to its symbol total, its deletion
        takes from its pattern count). Equal totals do not mean equal symbols (a cleared level
        learning other patterns of the same sizes), so the totals only stand for writes elsewhere."""
        key = tuple(each)
        if key != self._symbols_key:
            if sum(1 for t in each if t.num_symbols) <= 1:     # one shard holds every symbol there is
                self._num_symbols = sum(t.num_symbols for t in each)
            else:
                self._num_symbols = len(self.stored_symbols())
            self._symbols_key = key
        return self._num_symbols

    def stored_symbols(self) -> set[str]:
        return set().union(*(stored_symbols(kb) for kb in self.shards))

    def count(self) -> int:
        return sum(kb.count() for kb in self.shards)

    def symbol_affinity(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """Per symbol and emotive, the shards' sums added, shard by shard (a float sum in another
        order than one KB's: equal up to rounding; hierarchy training learns no emotives)."""
        symbols = None if symbols is None else list(symbols)
        total: dict[str, dict[str, float]] = {}
        for kb in self.shards:
            for symbol, sums in kb.symbol_affinity(symbols).items():
                add_affinity(total, symbol, sums)
        return total if symbols is None else {s: total[s] for s in dict.fromkeys(symbols) if s in total}

    # -- aggregates: each shard's, added up -------------------------------------------------------
    def frequency_histogram(self) -> dict[int, int]:
        return _added([kb.frequency_histogram() for kb in self.shards])

    def length_histogram(self) -> dict[int, int]:
        return _added([kb.length_histogram() for kb in self.shards])

    def most_frequent(self, limit: int | None = None, min_frequency: int = 1,
                      max_frequency: int | None = None) -> list[PatternRecord]:
        """The first ``limit`` of the shards' first ``limit`` each, by (frequency desc, name)."""
        check_limit(limit)
        found = [r for kb in self.shards for r in kb.most_frequent(limit, min_frequency, max_frequency)]
        return sorted(found, key=lambda r: (-r.frequency, r.name))[:limit]

    def iter_frequencies(self) -> Iterator[tuple[str, int]]:
        for kb in self.shards:
            yield from kb.iter_frequencies()

    def sample_by_frequency(self, num_samples: int, seed: int = 0) -> list[PatternRecord]:
        """The unsharded KB's sample: a draw depends on the patterns and the seed only."""
        return sample_records(self, num_samples, seed)

    def size_on_disk(self) -> int | None:
        sizes = [kb.size_on_disk() for kb in self.shards]
        return None if None in sizes else sum(sizes)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Every shard's ``reading`` block at once, in shard order (one state of the level)."""
        with ExitStack() as stack:
            for kb in self.shards:
                stack.enter_context(reading(kb))
            yield

    def iter_patterns(self) -> Iterator[PatternRecord]:
        """Every pattern, sorted by name (each shard's stream is; a name is in one shard only)."""
        return heapq.merge(*(kb.iter_patterns() for kb in self.shards), key=attrgetter("name"))

    def pattern_rows(self, page: int) -> Iterator[PatternRows]:
        """Every pattern, shard after shard (``base.ScannableKnowledgeBase``)."""
        for kb in self.shards:
            yield from pattern_rows(kb, page)


def _added(histograms: list[dict[int, int]]) -> dict[int, int]:
    total: Counter = Counter()
    for histogram in histograms:
        total.update(histogram)
    return dict(sorted(total.items()))


def open_level(url: str, kb_ids: Sequence[str]) -> KnowledgeBase:
    """A level's knowledge base at ``url``: the one KB, or a ``ShardedStore`` over its shards."""
    from katoray.store import open_store

    if len(kb_ids) == 1:
        return open_store(url, kb_ids[0])
    opened: list[KnowledgeBase] = []
    try:
        for kb_id in kb_ids:
            opened.append(open_store(url, kb_id))
    except BaseException:
        for kb in opened:
            kb.close()
        raise
    return ShardedStore(opened)
