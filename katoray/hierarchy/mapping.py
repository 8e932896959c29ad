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

from hashlib import sha1
from dataclasses import dataclass, field
from itertools import chain
from typing import Iterable, Sequence

from katoray.hierarchy.config import HierarchyConfig
from katoray.store.base import PatternDelta
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
    """One level's merged learning: name -> [symbols (one per event), count, metadata]."""

    patterns: dict[str, list] = field(default_factory=dict)
    learned: int = 0     # learn events (pattern occurrences)
    unlearned: int = 0   # symbols left in STM at a document end (fewer than 2: KATO learns nothing)

    def to_deltas(self) -> list[PatternDelta]:
        """Deltas sorted by name (a deterministic write order)."""
        return [PatternDelta(name, [[s] for s in symbols], count, [], {k: sorted(v) for k, v in meta.items()} if meta else {})
                for name, (symbols, count, meta) in sorted(self.patterns.items())]


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
        meta = {k: v for k, v in doc.metadata.items() if v not in (None, "")}
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
        for mine, theirs in zip(self.levels, other.levels):
            for name, (symbols, count, meta) in theirs.patterns.items():
                self._count(mine, name, symbols, count, meta)
            mine.learned += theirs.learned
            mine.unlearned += theirs.unlearned
        self.documents += other.documents
        self.tokens += other.tokens
        self.dropped_segments += other.dropped_segments

    # -- chunking mode ---------------------------------------------------------------------------
    def _chunking(self, tokens: list[str], metas: list) -> None:
        symbols = tokens
        for level, size in enumerate(self.config.chunk_sizes):
            acc = self.levels[level]
            full, rest = divmod(len(symbols), size)
            end = full * size + (rest if rest >= 2 else 0)  # a 1-symbol remainder cannot be learned
            acc.unlearned += rest if rest < 2 else 0
            learn, meta = self._learn, metas[level]
            symbols = [learn(acc, symbols[i:i + size], meta) for i in range(0, end, size)]
            acc.learned += len(symbols)

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
        acc = self.levels[level]
        if len(symbols) < 2:
            acc.unlearned += len(symbols)
            return None
        acc.learned += 1
        return self._learn(acc, symbols, metas[level])

    # -- the learn step ----------------------------------------------------------------------------
    def _learn(self, acc: LevelDeltas, symbols: list[str], meta: dict | None) -> str:
        """Count one learn of ``symbols`` (one per event; callers count ``acc.learned``); returns
        the ``PTRN|`` name passed to the next level.

        Hot path (once per chunk per level). KATO hashes repr([[a], [b], ...]); for symbols that
        repr writes as plain 'text' (printable, no quote or backslash: every GPT-2 piece and every
        PTRN| name) that is "[['" + "'], ['".join(symbols) + "']]", built in one C call.
        """
        body = "'], ['".join(symbols)
        if body.count("'") == 2 * len(symbols) - 2 and "\\" not in body and body.isprintable():
            text = "[['" + body + "']]"
        else:
            text = repr([[s] for s in symbols])  # some symbol needs repr's escaping or other quotes
        name = sha1(text.encode("utf-8")).hexdigest()
        entry = acc.patterns.get(name)
        if entry is None:
            acc.patterns[name] = [symbols, 1, _meta_sets(meta) if meta else None]  # events built in to_deltas()
        else:
            entry[1] += 1
            if meta:
                _union_meta(entry, meta, self.config.metadata_cap)
        return PREFIX + name

    def _count(self, acc: LevelDeltas, name: str, symbols, count: int, meta) -> None:
        entry = acc.patterns.get(name)
        if entry is None:
            acc.patterns[name] = [symbols, count, {k: set(v) for k, v in meta.items()} if meta else None]
        else:
            entry[1] += count
            if meta:
                _union_meta(entry, meta, self.config.metadata_cap)


def _meta_sets(meta: dict) -> dict[str, set[str]]:
    return {k: {str(v)} for k, v in meta.items()}


def _union_meta(entry: list, meta, cap: int) -> None:
    """Union metadata values into a pattern entry, keeping the ``cap`` smallest per key."""
    current = entry[2]
    if current is None:
        current = entry[2] = {}
    for key, value in meta.items():
        values = current.setdefault(key, set())
        values.update(value if isinstance(value, (set, list, tuple)) else (str(value),))
        if len(values) > cap:
            current[key] = set(sorted(values)[:cap])


def map_documents(docs: Iterable[TokenizedDocument], config: HierarchyConfig) -> HierarchyDeltas:
    """Map documents into one accumulator."""
    out = HierarchyDeltas(config)
    for doc in docs:
        out.add(doc)
    return out
