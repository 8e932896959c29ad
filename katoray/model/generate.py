"""Text generation from a trained hierarchy, in two modes; same seed, same text.

``predict`` (autoregressive, prediction-driven): the prompt is tokenized as training tokenizes a
document and observed bottom-up; each step draws the next token from the decoder's distribution
(``model.decoder``: node0's exact predictions, the state being the text's last tokens, read at
the first symbol of their future; where a node0 pattern ends, the futures of the levels above,
unravelled top-down to their first token). KATO's present is the part of a pattern the text
already holds, so only its future is new text: a continuation is present + future with the
present lying on the text's end, never the pattern's whole name + its future (that repeats the
present's tokens at the boundary, kato-lm's bug). ``temperature`` sharpens (< 1) or flattens
(> 1) the distribution, ``top_k`` keeps the k most likely tokens. Generation stops after
``max_tokens`` tokens or when it draws the end of a document (``text.segment.END_OF_DOCUMENT``,
which training learns at every document's end).

``sample``: the notebook's frequency-weighted sampling: patterns of ``level`` (default: the top)
drawn with probability proportional to their frequency (with replacement, one after the other),
each unravelled top-down to its text; stops after ``max_tokens`` tokens or at an end of document.

Sources (``sources=True``): where a span came from, read from pattern metadata recorded at
training: levels >= 1 record each document's ``title`` (or its ``doc_id`` when it has none) on
the patterns learned from it, keeping the ``metadata_cap`` (16) smallest values per pattern;
node0 records none. A generated token's sources are the documents of the level-1 patterns that
hold the node0 patterns whose predictions gave it (at the longest state that predicted it; at
most ``MAX_PARENTS`` of them are read); a sampled pattern's are its own (node0: its parents').
Consecutive tokens with the same sources make one span.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from katoray.errors import KatorayError
from katoray.generation.unravel import decode_pieces
from katoray.text.segment import END_OF_DOCUMENT

if TYPE_CHECKING:
    from katoray.model.run import Hierarchy

MODES = ("predict", "sample")
MAX_PARENTS = 32       # level-1 patterns read per token for its sources
_PARTIAL = "\ufffd"    # a character whose bytes are split across pieces: wait for the rest


@dataclass(frozen=True)
class Span:
    """Generated text and the training documents it came from (empty unless asked for)."""

    text: str
    sources: tuple[str, ...] = ()


class Generation:
    """One generation's settings; ``run(prompt)`` yields its spans as they are made."""

    def __init__(self, hierarchy: "Hierarchy", max_tokens: int = 100, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, mode: str = "predict",
                 level: int | None = None, sources: bool = False) -> None:
        _check(max_tokens, temperature, top_k, mode, level, hierarchy.num_levels)
        self.h, self.max_tokens, self.temperature, self.top_k = hierarchy, max_tokens, float(temperature), top_k
        self.mode, self.sources = mode, sources
        self.level = hierarchy.num_levels - 1 if level is None else level
        self.rng = np.random.default_rng(seed)

    def run(self, prompt: str = "") -> Iterator[Span]:
        if not isinstance(prompt, str):
            raise KatorayError(f"prompt must be text, got {type(prompt).__name__}")
        steps = self._predicted(prompt) if self.mode == "predict" else self._sampled()
        return merge_spans(_as_text(steps, self.h.tokenizer))

    # -- predict mode --------------------------------------------------------------------------------
    def _predicted(self, prompt: str) -> Iterator[tuple[list[str], tuple[str, ...]]]:
        decoder = self.h.decoder()
        ids = decoder.token_ids(self.h.tokenize(prompt))
        symbols = decoder.node0.symbols
        for _ in range(self.max_tokens):
            token = self._draw(decoder.distribution(ids))
            if token is None or symbols[token] == END_OF_DOCUMENT:
                return
            found = self._documents(0, decoder.support(ids, token)) if self.sources else ()
            ids.append(token)
            yield [symbols[token]], found

    def _draw(self, p: np.ndarray) -> int | None:
        """A token id drawn from ``p`` with the temperature and top-k applied (None: p is empty)."""
        order = np.flatnonzero(p > 0)
        if self.top_k is not None:
            order = np.argsort(-p, kind="stable")[:min(self.top_k, len(order))]
        if not len(order):
            return None
        logits = np.log(p[order]) / self.temperature
        weights = np.exp(logits - logits.max())
        return int(order[self.rng.choice(len(order), p=weights / weights.sum())])

    # -- sample mode ---------------------------------------------------------------------------------
    def _sampled(self) -> Iterator[tuple[list[str], tuple[str, ...]]]:
        index = self.h.index
        level = index.levels[self.level]
        if not len(level):
            return
        weights = level.frequency / level.frequency.sum()
        made = 0
        while made < self.max_tokens:
            pattern = int(self.rng.choice(len(level), p=weights))
            pieces = index.pieces(self.level, pattern)[:self.max_tokens - made]
            ended = END_OF_DOCUMENT in pieces
            pieces = pieces[:pieces.index(END_OF_DOCUMENT)] if ended else pieces
            made += len(pieces)
            yield pieces, (self._documents(self.level, np.array([pattern])) if self.sources else ())
            if ended:
                return

    # -- sources ---------------------------------------------------------------------------------------
    def _documents(self, level: int, pattern_ids: np.ndarray) -> tuple[str, ...]:
        """Titles (or doc ids) recorded on these patterns, or on their level-1 parents for node0."""
        index = self.h.index
        if level == 0:
            if len(index.levels) < 2 or not len(pattern_ids):
                return ()
            level, pattern_ids = 1, _parents(index, pattern_ids)
        records = index.levels[level].records(pattern_ids[:MAX_PARENTS].tolist())
        found = set()
        for record in records.values():
            found.update(record.metadata.get("title") or record.metadata.get("doc_id") or ())
        return tuple(sorted(found))


def _parents(index, node0_ids: np.ndarray) -> np.ndarray:
    """Level-1 pattern ids holding any of these node0 patterns, most frequent first."""
    node0, level1 = index.node0, index.levels[1]
    symbol_ids = [level1.symbol_ids.get("PTRN|" + node0.names[i], -1) for i in node0_ids.tolist()]
    positions = [level1.positions(s) for s in symbol_ids if s >= 0]
    if not positions:
        return np.zeros(0, np.int64)
    parents = np.unique(level1.pattern_of[np.concatenate(positions)])
    return parents[np.argsort(-level1.frequency[parents], kind="stable")]


def _as_text(steps: Iterator[tuple[list[str], tuple[str, ...]]], tokenizer) -> Iterator[Span]:
    """Token pieces -> text as soon as it decodes whole (a character split across pieces waits)."""
    pieces: list[str] = []
    shown, pending = "", ()
    for new, sources in steps:
        pieces += new
        pending = sources if not pending else pending
        text = decode_pieces(pieces, tokenizer)
        if not text.endswith(_PARTIAL) and len(text) > len(shown):
            yield Span(text[len(shown):], pending)
            shown, pending = text, ()
    text = decode_pieces(pieces, tokenizer)
    if len(text) > len(shown):
        yield Span(text[len(shown):], pending)


def merge_spans(spans: Iterator[Span]) -> Iterator[Span]:
    """Spans as they come; consecutive ones with the same sources are joined only when asked for
    sources (so text without sources still streams token by token)."""
    current: Span | None = None
    for span in spans:
        if not span.sources and current is None:
            yield span
            continue
        if current is not None and span.sources == current.sources:
            current = Span(current.text + span.text, current.sources)
            continue
        if current is not None:
            yield current
        current = span
    if current is not None:
        yield current


def _check(max_tokens: int, temperature: float, top_k: int | None, mode: str, level: int | None,
           num_levels: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise KatorayError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise KatorayError(f"temperature must be a number > 0 (1 keeps the decoder's distribution), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise KatorayError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if mode not in MODES:
        raise KatorayError(f"mode must be one of {MODES}, got {mode!r}")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < num_levels):
        raise KatorayError(f"level must be 0..{num_levels - 1}, got {level!r}")
    if level is not None and mode == "predict":
        raise KatorayError("level applies to sample mode (the level whose patterns are drawn); predict mode "
                           "uses every level")

