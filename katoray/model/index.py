"""Indexes over a trained hierarchy's knowledge bases, built once from them: what the next-token
decoder (``model.decoder``), generation and unravelling read instead of asking every pattern.

``LevelIndex``: one level's patterns as columns by integer id (names, symbol ids of the flattened
events, offsets, lengths; built with ``store.columns``' helpers), with each pattern's frequency
and a position index (symbol id -> every position holding it, in ``flat``). Read in bulk with
``store.base.pattern_rows`` (every backend; memory and SQLite read pages without per-pattern
work); frequencies are those at build time (the handle is read-only).

``HierarchyIndex``: the levels' indexes tied together. ``children[k][s]`` is the level k-1
pattern id that level k's symbol ``s`` (a ``PTRN|`` name) stands for; ``first_token[k][id]`` the
node0 token a level-k pattern starts with; and ``following[k]`` what the levels above say follows
a level-k pattern: for each level-k pattern A, the first tokens of the patterns that come after A
inside a level k+1 pattern, counted in training occurrences (a level k+1 pattern learned f times
holding A then B counts f for B's first token); where A ends its level k+1 pattern P, what follows
P at level k+2, and so on up. That is the future of KATO's predictions at the levels above, read
at its first symbol. Nothing follows a top-level pattern (no level records what comes after it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from katoray.engine.naming import strip_prefix
from katoray.store import KnowledgeBase, PatternRecord
from katoray.store.base import pattern_rows
from katoray.store.columns import NewPatterns, cuts, symbol_ids_of

READ_PAGE = 20_000   # patterns per step while reading a knowledge base (bounds the records held)


class LevelIndex:
    """One level's patterns by integer id, and where each symbol sits.

    Ids are canonical whatever the backend and its row order: patterns are numbered in name
    order and symbols in their sorted order, so ties and seeded draws over them come out the
    same for equal knowledge bases.
    """

    def __init__(self, kb: KnowledgeBase) -> None:
        known: dict[str, int] = {}
        names, lengths, flat, frequencies, symbols = [], [], [], [], []
        for page in pattern_rows(kb, READ_PAGE):
            new = NewPatterns.of_events(page.names, page.events)
            ids, unknown = symbol_ids_of(known, new.flat)
            symbols += unknown
            names += page.names
            lengths.append(new.lengths)
            flat.append(ids.astype(np.int32))
            frequencies += page.frequencies
        self.kb = kb
        by_symbol = sorted(range(len(symbols)), key=symbols.__getitem__)
        renumber = np.zeros(len(symbols), np.int32)
        renumber[by_symbol] = np.arange(len(symbols), dtype=np.int32)
        self.symbols: list[str] = [symbols[i] for i in by_symbol]     # symbol id -> symbol
        self.symbol_ids = {symbol: i for i, symbol in enumerate(self.symbols)}
        order = np.array(sorted(range(len(names)), key=names.__getitem__), np.int64)
        self.names: list[str] = [names[i] for i in order]
        self.name_ids = {name: i for i, name in enumerate(self.names)}
        self.frequency = np.array(frequencies, np.int64)[order] if names else np.zeros(0, np.int64)
        old_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        old_flat = renumber[np.concatenate(flat)] if flat else np.zeros(0, np.int32)
        self.lengths = old_lengths[order]
        self.offsets = cuts(self.lengths)[:-1]
        starts = cuts(old_lengths)[:-1][order]
        self.flat = old_flat[np.repeat(starts - self.offsets, self.lengths) + np.arange(int(self.lengths.sum()))]
        self.pattern_of = np.repeat(np.arange(len(self.names), dtype=np.int32), self.lengths)   # position -> pattern
        self.offset_in = (np.arange(len(self.flat)) - self.offsets[self.pattern_of]).astype(np.int32)
        self.is_last = self.offset_in == self.lengths[self.pattern_of] - 1
        self._by_symbol = np.argsort(self.flat, kind="stable").astype(np.int32)
        self._starts = cuts(np.bincount(self.flat, minlength=len(self.symbols)))

    def __len__(self) -> int:
        return len(self.names)

    def positions(self, symbol_id: int) -> np.ndarray:
        """Positions in ``flat`` holding this symbol, ascending."""
        if not 0 <= symbol_id < len(self.symbols):
            return np.zeros(0, np.int32)
        return self._by_symbol[self._starts[symbol_id]:self._starts[symbol_id + 1]]

    def symbols_of(self, pattern_id: int) -> np.ndarray:
        start = self.offsets[pattern_id]
        return self.flat[start:start + self.lengths[pattern_id]]

    def symbol_frequencies(self) -> np.ndarray:
        """Per symbol id, its occurrences over all learns (KATO's symbol frequency)."""
        return np.bincount(self.flat, weights=self.frequency[self.pattern_of], minlength=len(self.symbols))

    def records(self, pattern_ids: Sequence[int]) -> dict[int, PatternRecord]:
        """The stored records (metadata and all) of these patterns, read from the KB."""
        found = self.kb.get_patterns([self.names[i] for i in pattern_ids])
        return {i: found[self.names[i]] for i in pattern_ids if self.names[i] in found}


@dataclass
class Following:
    """Per pattern id, tokens that follow it and their counts: ``tokens[indptr[a]:indptr[a + 1]]``."""

    indptr: np.ndarray
    tokens: np.ndarray
    counts: np.ndarray

    @classmethod
    def build(cls, rows: np.ndarray, tokens: np.ndarray, counts: np.ndarray, num_rows: int,
              num_tokens: int) -> "Following":
        """From (row, token, count) triples, repeats summed."""
        keys, inverse = np.unique(rows.astype(np.int64) * num_tokens + tokens, return_inverse=True)
        summed = np.bincount(inverse, weights=counts, minlength=len(keys)).astype(np.int64)
        key_rows = keys // num_tokens
        return cls(cuts(np.bincount(key_rows, minlength=num_rows)), (keys % num_tokens).astype(np.int32), summed)

    @classmethod
    def empty(cls, num_rows: int) -> "Following":
        return cls(np.zeros(num_rows + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64))

    def gather(self, rows: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(which of ``rows``, token, count) for every entry of those rows (counts times ``weights``)."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        sizes = ends - starts
        which = np.repeat(np.arange(len(rows)), sizes)
        at = np.repeat(starts - cuts(sizes)[:-1], sizes) + np.arange(int(sizes.sum()))
        counts = self.counts[at] if weights is None else self.counts[at] * weights[which]
        return which, self.tokens[at], counts


class HierarchyIndex:
    """Every level's ``LevelIndex`` and how the levels fit together (module docstring)."""

    def __init__(self, kbs: Sequence[KnowledgeBase]) -> None:
        self.levels = [LevelIndex(kb) for kb in kbs]
        self.children = [np.zeros(0, np.int64)] + [self._children(k) for k in range(1, len(self.levels))]
        self.first_token = self._first_tokens()
        self._following: dict[int, list[Following]] = {}

    @property
    def node0(self) -> LevelIndex:
        return self.levels[0]

    def _children(self, level: int) -> np.ndarray:
        below = self.levels[level - 1].name_ids
        return np.array([below.get(strip_prefix(s), -1) for s in self.levels[level].symbols], np.int64)

    def _first_tokens(self) -> list[np.ndarray]:
        node0 = self.node0
        firsts = [node0.flat[node0.offsets].astype(np.int64) if len(node0) else np.zeros(0, np.int64)]
        for k in range(1, len(self.levels)):
            level = self.levels[k]
            child = self.children[k][level.flat[level.offsets]] if len(level) else np.zeros(0, np.int64)
            firsts.append(np.where(child >= 0, firsts[k - 1][np.maximum(child, 0)], -1) if len(child) else child)
        return firsts

    def following(self, level: int, top: int | None = None) -> Following:
        """What levels ``level + 1 .. top`` (default: all) say follows each level-``level``
        pattern (built once per ``top``, top down)."""
        top = len(self.levels) - 1 if top is None else top
        if top not in self._following:
            built = {top: Following.empty(len(self.levels[top]))}
            for k in range(top - 1, -1, -1):
                built[k] = self._following_of(k, built[k + 1])
            self._following[top] = [built[k] for k in range(top + 1)]
        return self._following[top][level]

    def _following_of(self, k: int, above: Following) -> Following:
        upper, num_tokens = self.levels[k + 1], len(self.node0.symbols)
        child = self.children[k + 1][upper.flat]                    # level-k pattern at each position
        inside = np.flatnonzero(~upper.is_last & (child >= 0))
        nxt = child[inside + 1]
        ok = nxt >= 0
        inside, nxt = inside[ok], nxt[ok]
        tokens = self.first_token[k][nxt]
        counts = upper.frequency[upper.pattern_of[inside]]
        ends = np.flatnonzero(upper.is_last & (child >= 0))
        which, end_tokens, end_counts = above.gather(upper.pattern_of[ends].astype(np.int64))
        good = tokens >= 0
        return Following.build(np.concatenate([child[inside][good], child[ends][which]]),
                               np.concatenate([tokens[good], end_tokens]), np.concatenate([counts[good], end_counts]),
                               len(self.levels[k]), max(num_tokens, 1))

    def pieces(self, level: int, pattern_id: int) -> list[str]:
        """The node0 token pieces a pattern stands for (top-down unravelling through the index)."""
        ids = [pattern_id]
        for k in range(level, 0, -1):
            index = self.levels[k]
            ids = [int(c) for i in ids for c in self.children[k][index.symbols_of(i)] if c >= 0]
        node0 = self.node0
        return [node0.symbols[s] for i in ids for s in node0.symbols_of(i)]

