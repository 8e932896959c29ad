"""The infinity-gram baseline: for a context, the longest suffix of it seen in the training
tokens, and the tokens that followed it there, counted (as infini-gram and tokengrams answer it).

A suffix array over the training token stream (documents joined by a separator no context holds)
finds every occurrence of a token sequence as one range of suffixes. It is built with
``pydivsufsort`` (libdivsufsort's suffix sorting, maintained, wheels for every platform, numpy in
and out, any integer alphabet: 0.08 s for a million tokens here), which is why it was chosen over
tokengrams (16-bit vocabularies by default, no release since 2024). The range search is a binary
search over the array (pydivsufsort's own ``sa_search`` takes bytes only).

A baseline for evaluation: it reads the raw training tokens, which the hierarchy's decoder never
does (``model.decoder``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

SEPARATOR = 0   # between documents; token ids start at 1


class InfiniGram:
    """Next-token counts from the longest matching suffix, over ``streams`` (token pieces per document)."""

    def __init__(self, streams: Iterable[Sequence[str]]) -> None:
        from pydivsufsort import divsufsort

        self.ids: dict[str, int] = {}
        parts = []
        for stream in streams:
            parts.append(np.array([self.ids.setdefault(p, len(self.ids) + 1) for p in stream] + [SEPARATOR], np.int32))
        self.pieces = [""] + sorted(self.ids, key=self.ids.__getitem__)   # id -> piece
        self.tokens = np.concatenate(parts) if parts else np.zeros(1, np.int32)
        self.suffixes = divsufsort(self.tokens)
        counts = np.bincount(self.tokens, minlength=len(self.pieces))
        counts[SEPARATOR] = 0
        order = np.argsort(-counts[1:], kind="stable") + 1      # by count, ties: first seen first
        self.unigram = [(self.pieces[i], int(counts[i])) for i in order.tolist()]
        self.most_frequent = self.unigram[0][0] if self.unigram else None

    def _range(self, query: list[int]) -> tuple[int, int]:
        """The suffixes that start with ``query``: ``suffixes[lo:hi]``."""
        tokens, suffixes, m = self.tokens, self.suffixes, len(query)

        def prefix(i: int) -> list[int]:
            start = int(suffixes[i])
            return tokens[start:start + m].tolist()

        lo, hi = 0, len(suffixes)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if prefix(mid) < query else (lo, mid)
        first, hi = lo, len(suffixes)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if prefix(mid) <= query else (lo, mid)
        return first, lo

    def next_counts(self, context: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(n, counts): the longest suffix of ``context`` (n tokens) followed by a token somewhere
        in training, and how often each token followed it. (0, {}) if no suffix was seen."""
        ids = [self.ids.get(piece, -1) for piece in context]
        best: tuple[int, dict[str, int]] = (0, {})
        for n in range(1, len(ids) + 1):
            if ids[-n] < 0:
                break
            lo, hi = self._range(ids[-n:])
            after = self.suffixes[lo:hi].astype(np.int64) + n
            following = self.tokens[after[after < len(self.tokens)]]
            following = following[following != SEPARATOR]
            if not len(following):
                break
            found, counts = np.unique(following, return_counts=True)
            best = (n, {self.pieces[i]: int(c) for i, c in zip(found.tolist(), counts.tolist())})
        return best

    def top(self, context: Sequence[str], k: int) -> list[tuple[str, int]]:
        """The ``k`` most frequent next pieces after the longest seen suffix (ties: earlier first
        seen); with no suffix seen, after the empty one: the most frequent pieces."""
        n, counts = self.next_counts(context)
        if n == 0:
            return self.unigram[:k]
        ranked = sorted(counts.items(), key=lambda item: (-item[1], self.ids[item[0]]))
        return ranked[:k]
