"""``evaluate``: a trained hierarchy on held-out text (``katoray eval``).

- **coverage** per level: the held-out documents are mapped as training maps a document
  (``hierarchy.mapping``); a level's coverage is the share of the pattern occurrences it would
  learn from them whose pattern is already in its knowledge base.
- **next-token prediction** at ``positions`` positions drawn with ``seed`` (the same positions
  for every model): a position is a token of a held-out document's stream (its paragraphs and
  the separators between them, tokenized as training tokenizes; never the end-of-document
  symbol) with at least ``CONTEXT_TOKENS`` tokens before it in its document, which are the
  context. Each model ranks next tokens; top-1 and top-5 say how often the true token is first,
  or among the first five. Models: katoray's decoder (``model.decoder``; the whole hierarchy, or
  ``levels`` of it), the most frequent training token (``unigram``), and the infinity-gram over
  the run's training text as its manifest records it (``evaluation.infinigram``), built once.
  ``ms`` is the median time per position (p50) of each model, in milliseconds.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from katoray.errors import KatorayError
from katoray.hierarchy.mapping import TokenizedDocument, map_documents
from katoray.text.segment import END_OF_DOCUMENT

if TYPE_CHECKING:
    from katoray.evaluation.infinigram import InfiniGram
    from katoray.model.run import Hierarchy

CONTEXT_TOKENS = 7     # tokens of context before each position (the measurement)
TOP = 5
NAMES_PER_READ = 5000  # names per existence check against a knowledge base


def evaluate(hierarchy: "Hierarchy", data: str, text_field: str = "text", positions: int = 400, seed: int = 0,
             levels: int | None = None, baseline: "InfiniGram | None" = None, details: bool = False) -> dict[str, Any]:
    """Coverage and next-token figures of ``hierarchy`` on the documents at ``data`` (module docstring).

    Args:
        levels: levels the decoder uses (None: all; 1: node0 alone).
        baseline: an infinity-gram already built (default: built from the run's training text).
        details: also return each position's document, offset, true token and each model's top 5.

    Returns:
        ``{"positions", "katoray": {"top1", "top5", "ms"}, "unigram": {"top1"},
        "infinigram": {"top1", "top5", "ms"}, "levels": [{"level", "coverage"}, ...]}``
        (shares in [0, 1]).

    Raises:
        CorpusError: bad held-out data (named); KatorayError: it holds no position to predict.
    """
    from katoray.text.corpora import iter_local_documents

    docs = hierarchy.preparer.prepare(list(iter_local_documents(data, text_field)))
    streams = [doc.tokens() for doc in docs]
    chosen = sample_positions(streams, positions, seed)
    if baseline is None:
        baseline = build_baseline(hierarchy)
    contexts = [streams[d][i - CONTEXT_TOKENS:i] for d, i in chosen]
    truth = [streams[d][i] for d, i in chosen]
    ours, our_ms = _timed(lambda context: [p for p, _ in hierarchy.next_tokens(context, TOP, levels=levels)], contexts)
    theirs, their_ms = _timed(lambda context: [p for p, _ in baseline.top(context, TOP)], contexts)
    result = {"positions": len(chosen), "katoray": _scores(ours, truth, our_ms),
              "unigram": {"top1": _share(truth, [[baseline.most_frequent]] * len(truth), 1)},
              "infinigram": _scores(theirs, truth, their_ms), "levels": coverage(hierarchy, docs)}
    if details:
        result["details"] = [{"document": d, "offset": i, "token": t, "katoray": o, "infinigram": b}
                             for (d, i), t, o, b in zip(chosen, truth, ours, theirs)]
    return result


def build_baseline(hierarchy: "Hierarchy") -> "InfiniGram":
    """The infinity-gram over the run's training documents, tokenized as training tokenized them."""
    from katoray.evaluation.corpus import training_documents
    from katoray.evaluation.infinigram import InfiniGram

    return InfiniGram(doc.tokens() for doc in hierarchy.preparer.prepare(list(training_documents(hierarchy.manifest))))


def sample_positions(streams: Sequence[Sequence[str]], count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` distinct (document, offset) positions, drawn with ``seed``, in draw order."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise KatorayError(f"positions must be an integer >= 1, got {count!r}")
    eligible = [(d, i) for d, stream in enumerate(streams) for i in range(CONTEXT_TOKENS, len(stream))
                if stream[i] != END_OF_DOCUMENT]
    if not eligible:
        raise KatorayError(f"the held-out documents hold no position with {CONTEXT_TOKENS} tokens before it: "
                           "give longer documents")
    picked = np.random.default_rng(seed).choice(len(eligible), size=min(count, len(eligible)), replace=False)
    return [eligible[k] for k in picked.tolist()]


def coverage(hierarchy: "Hierarchy", docs: Sequence[TokenizedDocument]) -> list[dict[str, Any]]:
    """Per level, the share of the documents' pattern occurrences already in the knowledge base."""
    mapped = map_documents(docs, hierarchy.config)
    out = []
    for level, (deltas, kb) in enumerate(zip(mapped.levels, hierarchy.kbs)):
        counts: Counter = deltas.counts
        names = sorted(counts)
        known = set()
        for start in range(0, len(names), NAMES_PER_READ):
            known |= set(kb.get_patterns(names[start:start + NAMES_PER_READ]))
        total = sum(counts.values())
        out.append({"level": level, "coverage": sum(counts[n] for n in known) / total if total else 0.0})
    return out


def _timed(rank: Callable[[Sequence[str]], list[str]], contexts: list) -> tuple[list[list[str]], float]:
    """Each context's ranking, and the median milliseconds per context."""
    ranked, times = [], []
    for context in contexts:
        started = time.perf_counter()
        ranked.append(rank(context))
        times.append(time.perf_counter() - started)
    return ranked, float(np.median(times) * 1000) if times else 0.0


def _scores(ranked: list[list[str]], truth: list[str], ms: float) -> dict[str, float]:
    return {"top1": _share(truth, ranked, 1), "top5": _share(truth, ranked, TOP), "ms": round(ms, 3)}


def _share(truth: list[str], ranked: list[list[str]], k: int) -> float:
    return sum(t in r[:k] for t, r in zip(truth, ranked)) / len(truth) if truth else 0.0
