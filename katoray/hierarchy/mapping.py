"""The pure map: a tokenized document -> the patterns each level learns from it, with counts.

In single-pass hierarchical training every level learns with a manual learn and a cleared STM,
so what a level learns from a document depends on that document alone. A pattern's name is a
content hash, so any worker can compute names locally; a level's knowledge base is then the sum
of these multisets (frequencies add, metadata unions), whatever the order or the worker count.

``HierarchyDeltas`` accumulates many documents (a batch) and hands each level's merged
``PatternDelta`` list to a knowledge base. The result equals driving KATO sessions node by node
(observe one symbol per event, learn, pass the name up): ``tests/hierarchy`` pins that.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from hashlib import sha1
from itertools import chain
from typing import Iterable, Mapping, Sequence

from katoray.config import HierarchyConfig
from katoray.store.base import PatternDelta
from katoray.store.sharded import split_rows
from katoray.store.wire import SYMBOL_SEP, encode_columns, encode_joined
from katoray.util import paused_gc

PREFIX = "PTRN|"

# [section][paragraph][sentence] -> token pieces. Chunking mode reads it as one token stream.
Sections = Sequence[Sequence[Sequence[Sequence[str]]]]


@dataclass(frozen=True)
class TokenizedDocument:
    """A document after segmentation and tokenization."""

    doc_id: str
    sections: Sections
    metadata: dict[str, str] = field(default_factory=dict)  # recorded on patterns of metadata levels
    dropped: int = 0  # empty or too-short segments segmentation dropped (counted, never silent)

    def num_tokens(self) -> int:
        return sum(len(s) for sec in self.sections for par in sec for s in par)

    def tokens(self) -> list[str]:
        """The document's token stream (chunking mode reads the document as one stream)."""
        sentences = [s for sec in self.sections for par in sec for s in par]
        if len(sentences) == 1:
            return sentences[0]
        return list(chain.from_iterable(sentences))


@dataclass
class LevelDeltas:
    """One level's merged learning, by bare name: learn counts, symbols (one per event), metadata.

    A pattern's symbols are kept joined by ``SYMBOL_SEP`` (a tuple instead if one holds it): a
    dict of str values is invisible to the cyclic garbage collector, which otherwise rescans the
    ~100k lists of a batch (a quarter of the map's time), and the joined form is what the wire
    carries (``LevelDeltas.encode``).
    """

    counts: Counter = field(default_factory=Counter)                  # name -> learns
    symbols: dict[str, str | tuple[str, ...]] = field(default_factory=dict)  # name -> its symbols
    metadata: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # names that have any
    learned: int = 0     # learn events (pattern occurrences)
    unlearned: int = 0   # symbols left in STM at a document end (fewer than 2: KATO learns nothing)

    def count(self, names: list[str], symbols: Iterable[str | tuple[str, ...]], meta: dict | None,
              cap: int) -> None:
        """One learn of each ``names[i]`` (whose symbols, joined, are the i-th of ``symbols``)."""
        self.counts.update(names)                 # C loops: the hot path of the map
        self.symbols.update(zip(names, symbols))  # an existing name gets equal symbols again
        if meta:
            for name in dict.fromkeys(names):     # a union is idempotent: once per name suffices
                self.union_metadata(name, meta, cap)

    def symbols_of(self, name: str) -> list[str]:
        joined = self.symbols[name]
        return joined.split(SYMBOL_SEP) if isinstance(joined, str) else list(joined)

    def union_metadata(self, name: str, meta: Mapping[str, Iterable[str]], cap: int) -> None:
        """Union metadata values into a pattern's, keeping the ``cap`` smallest per key."""
        current = self.metadata.setdefault(name, {})
        for key, values in meta.items():
            kept = current.setdefault(key, set())
            kept.update(values)
            if len(kept) > cap:
                current[key] = set(sorted(kept)[:cap])

    def to_deltas(self) -> list[PatternDelta]:
        """Deltas sorted by name (a deterministic write order)."""
        meta = self.metadata
        return [PatternDelta(name, [[s] for s in self.symbols_of(name)], count, [],
                             {k: sorted(v) for k, v in meta[name].items()} if name in meta else {})
                for name, count in sorted(self.counts.items())]

    def encode(self) -> bytes:
        """This level's merged map in the wire form (``katoray.store.wire``): the same patterns,
        order (sorted by name) and metadata as ``encode_deltas(self.to_deltas())``, without
        building the deltas."""
        return self._encode(sorted(self.counts))

    def encode_shards(self, shards: int) -> list[bytes]:
        """``encode()`` split by shard (``store.sharded.shard_of``): shard i's patterns, sorted by
        name, in the i-th payload (empty ones included: every shard records every batch)."""
        if shards == 1:
            return [self.encode()]
        names = sorted(self.counts)
        return [self._encode([names[r] for r in rows]) for rows in split_rows(names, shards)]

    def _encode(self, names: list[str]) -> bytes:
        meta, shared = self.metadata, {}
        # Equal metadata goes as one object (pickle then writes it once; the node's merge is
        # memoised by object): a batch's patterns share the metadata of a few documents.
        metadata = {i: _shared_metadata(meta[name], shared) for i, name in enumerate(names) if name in meta}
        counts = list(map(self.counts.__getitem__, names))
        joined = list(map(self.symbols.__getitem__, names))
        if set(map(type, joined)) <= {str}:   # joined with SYMBOL_SEP already (else some are tuples)
            return encode_joined(names, joined, counts, metadata)
        return encode_columns(names, list(map(self.symbols_of, names)), counts, metadata)


def _shared_metadata(metadata: dict[str, set[str]], shared: dict[tuple, dict[str, list[str]]]) -> dict[str, list[str]]:
    """``{key: sorted(values)}``, the same object for equal metadata within one ``shared``."""
    sorted_values = [(key, tuple(sorted(values))) for key, values in metadata.items()]
    key = tuple(sorted_values)
    wire = shared.get(key)
    if wire is None:
        wire = shared[key] = {k: list(values) for k, values in sorted_values}
    return wire


class HierarchyDeltas:
    """Accumulates the map of many documents, per level."""

    def __init__(self, config: HierarchyConfig) -> None:
        self.config = config
        self.levels = [LevelDeltas() for _ in range(config.num_levels)]
        self.documents = 0
        self.tokens = 0
        self.dropped_segments = 0

    # -- public ---------------------------------------------------------------------------------
    def add(self, doc: TokenizedDocument) -> None:
        """Map one document into the accumulated deltas."""
        with paused_gc():
            self._add(doc)

    def _add(self, doc: TokenizedDocument) -> None:
        # Metadata values as one-element sets: what LevelDeltas.union_metadata takes.
        meta = {k: {str(v)} for k, v in doc.metadata.items() if v not in (None, "")}
        metas = [meta if level in self.config.metadata_levels else None for level in range(self.config.num_levels)]
        if self.config.mode == "chunking":
            self._chunking(doc.tokens(), metas)
        else:
            self._structure(doc.sections, metas)
        self.documents += 1
        self.tokens += doc.num_tokens()
        self.dropped_segments += doc.dropped

    def merge(self, other: "HierarchyDeltas") -> None:
        """Add another accumulator's deltas (associative and commutative)."""
        cap = self.config.metadata_cap
        for mine, theirs in zip(self.levels, other.levels):
            mine.counts.update(theirs.counts)
            mine.symbols.update(theirs.symbols)
            for name, meta in theirs.metadata.items():
                mine.union_metadata(name, meta, cap)
            mine.learned += theirs.learned
            mine.unlearned += theirs.unlearned
        self.documents += other.documents
        self.tokens += other.tokens
        self.dropped_segments += other.dropped_segments

    # -- chunking mode ---------------------------------------------------------------------------
    def _chunking(self, tokens: list[str], metas: list) -> None:
        cap = self.config.metadata_cap
        for level, (symbols, starts, names) in enumerate(chunk_levels(tokens, self.config.chunk_sizes)):
            acc, size = self.levels[level], self.config.chunk_sizes[level]
            rest = len(symbols) % size
            acc.unlearned += rest if rest < 2 else 0   # a 1-symbol remainder cannot be learned
            acc.count(names, _joined_chunks(symbols, starts, size), metas[level], cap)
            acc.learned += len(names)

    # -- structure mode --------------------------------------------------------------------------
    def _structure(self, sections: Sections, metas: list) -> None:
        top = self.config.num_levels - 1
        section_names = []
        for section in sections:
            paragraph_names = []
            for paragraph in section:
                sentence_names = [self._unit(0, sentence, metas) for sentence in paragraph]
                if top >= 1:
                    paragraph_names.append(self._unit(1, [n for n in sentence_names if n], metas))
            if top >= 2:
                section_names.append(self._unit(2, [n for n in paragraph_names if n], metas))
        if top >= 3:
            self._unit(3, [n for n in section_names if n], metas)

    def _unit(self, level: int, symbols: list[str], metas: list) -> str | None:
        """Learn one unit (a sentence, paragraph, ...) at ``level``; its PTRN| name, or None."""
        acc = self.levels[level]
        if len(symbols) < 2:
            acc.unlearned += len(symbols)
            return None
        acc.learned += 1
        name = unit_name(level, symbols)
        acc.count([name], _joined_chunks(symbols, range(1), len(symbols)), metas[level], self.config.metadata_cap)
        return PREFIX + name


def chunk_levels(tokens: list[str], chunk_sizes: Sequence[int], complete: bool = True):
    """Chunking mode, level by level: (the symbols the level observes, the start of each pattern
    it learns from them, the patterns' bare names). ``complete``: the stream is a whole document,
    so each level also learns its remainder if it holds >= 2 symbols; False: a stream that goes
    on (a context), whose levels learn only full chunks.

    Hot path. KATO names a pattern sha1(repr([[a], [b], ...])), and that repr is
    "[[" + "], [".join(repr(a), repr(b), ...) + "]]": each symbol's repr is looked up once
    (token pieces come from a bounded vocabulary) and a level's names are built per chunk
    with one C join, one encode and one sha1.
    """
    symbols, reprs = tokens, symbol_reprs(tokens)
    for size in chunk_sizes:
        full, rest = divmod(len(symbols), size)
        starts = range(0, full * size + (rest if complete and rest >= 2 else 0), size)
        names = [sha1(("[[" + _JOIN(reprs[i:i + size]) + "]]").encode()).hexdigest() for i in starts]
        yield symbols, starts, names
        symbols = [PREFIX + name for name in names]
        reprs = name_reprs(symbols)


def unit_name(level: int, symbols: list[str]) -> str:
    """The bare name of the pattern a level learns from ``symbols`` (PTRN| names above node0)."""
    reprs = symbol_reprs(symbols) if level == 0 else name_reprs(symbols)
    return sha1(("[[" + _JOIN(reprs) + "]]").encode()).hexdigest()


def level_symbols(doc: TokenizedDocument, config: HierarchyConfig, complete: bool = False) -> list[list[str]]:
    """What each level observes of a document, one symbol per event, as training computes it:
    node0 its tokens, level k the PTRN| names of the level k-1 patterns learned from it. With
    ``complete`` False (a context that goes on) only finished units count: full chunks; in
    structure mode every sentence, paragraph and section but the last."""
    if config.mode == "chunking":
        return [symbols for symbols, _, _ in chunk_levels(doc.tokens(), config.chunk_sizes, complete)]
    levels: list[list[str]] = [doc.tokens(), [], [], []]
    sections = doc.sections
    for si, section in enumerate(sections):
        paragraph_names = []
        for pi, paragraph in enumerate(section):
            is_open = not complete and si == len(sections) - 1 and pi == len(section) - 1
            sentence_names = _names(0, paragraph[:-1] if is_open else paragraph)
            levels[1] += sentence_names
            if not is_open:
                paragraph_names += _names(1, [sentence_names])
        levels[2] += paragraph_names
        if complete or si < len(sections) - 1:
            levels[3] += _names(2, [paragraph_names])
    return levels[:config.num_levels]


def _names(level: int, units: Sequence[Sequence[str]]) -> list[str]:
    """PTRN| names of the units of >= 2 symbols (KATO learns nothing shorter)."""
    return [PREFIX + unit_name(level, list(unit)) for unit in units if len(unit) >= 2]


_JOIN = "], [".join


def _joined_chunks(symbols: list[str], starts: range, size: int) -> list[str] | list[tuple[str, ...]]:
    """``symbols[i:i + size]`` for each start, joined by SYMBOL_SEP (tuples if a symbol holds it)."""
    if SYMBOL_SEP in "".join(symbols):
        return [tuple(symbols[i:i + size]) for i in starts]
    join = SYMBOL_SEP.join
    return [join(symbols[i:i + size]) for i in starts]


_REPRS: dict[str, str] = {}   # symbol -> repr(symbol), shared by every map of the process
_REPRS_MAX = 1_000_000        # token pieces are a bounded vocabulary; other symbols may not be


def name_reprs(names: list[str]) -> list[str]:
    """``[repr(n) for n in names]`` for PTRN| names, which repr writes as 'name' (hex, no escaping);
    they stay out of the token cache, which they would only fill and flush."""
    return ["'" + name + "'" for name in names]


def symbol_reprs(symbols: list[str]) -> list[str]:
    """``[repr(s) for s in symbols]``, through a process-wide cache. Safe for concurrent maps in
    one process (a pool actor runs two batches at once): a full cache is replaced, never cleared,
    so a thread still filling the old one reads back what it put there."""
    global _REPRS
    cache = _REPRS
    try:
        return list(map(cache.__getitem__, symbols))
    except KeyError:
        if len(cache) > _REPRS_MAX:
            _REPRS = cache = {}
        for symbol in symbols:
            if symbol not in cache:
                if not isinstance(symbol, str):
                    raise TypeError(f"symbols must be str, got {type(symbol).__name__} {symbol!r}") from None
                cache[symbol] = repr(symbol)
        return list(map(cache.__getitem__, symbols))


def map_documents(docs: Iterable[TokenizedDocument], config: HierarchyConfig) -> HierarchyDeltas:
    """Map documents into one accumulator."""
    out = HierarchyDeltas(config)
    for doc in docs:
        out.add(doc)
    return out
