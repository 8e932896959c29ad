"""``train_hierarchical_single_pass``: the sequential, exact reference path (one process, no Ray).

Documents are prepared (segmented, tokenized) and mapped in batches of ``learner.node0_batch_size``
documents; each batch's merged deltas are applied to every level's knowledge base. The Ray
runtime computes the same map in parallel and ends with identical knowledge bases.
"""
from __future__ import annotations

import logging
import time
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping

from katoray.errors import ConfigError
from katoray.hierarchy.mapping import HierarchyDeltas
from katoray.hierarchy.prepare import DocumentPreparer
from katoray.hierarchy.sessions import SessionHierarchy
from katoray.text.segment import Document, Section, Segmented

log = logging.getLogger("katoray")


def train_hierarchical_single_pass(corpus: Any, learner, num_levels: int | None = None, verbose: bool = False,
                                   segment_method: str = "simple", **_legacy: Any) -> dict[str, Any]:
    """Learn every document of ``corpus`` at every level of ``learner``; returns statistics.

    ``corpus`` is kato-lm's ``{"books": [{"title", "chapters": [{"title", "paragraphs": [{"text"}]}]}]}``,
    an iterable of ``Document``, or an iterable of strings (one document each).
    """
    config = learner.hierarchy_config(num_levels)
    preparer = DocumentPreparer(learner.token_processor.tokenizer, segment_method, config.mode)
    kbs = learner.kbs[:config.num_levels]
    before = [kb.count() if kb is not None else 0 for kb in kbs]
    started = time.perf_counter()
    total = HierarchyDeltas(config)
    learn = _learn_through_sessions(learner, config) if learner.is_remote else _learn_through_map(kbs, config)
    for batch in _batches(_segmented(corpus, segment_method, preparer), learner.node0_batch_size):
        deltas = HierarchyDeltas(config)
        docs = preparer.prepare_segmented(batch)
        for doc in docs:
            deltas.add(doc)
        learn(docs, deltas)
        _count_only(total, deltas)
    stats = level_statistics(total, kbs, before)
    stats.update(total_time_seconds=time.perf_counter() - started, num_documents=total.documents,
                 tokens_processed=total.tokens, dropped_segments=total.dropped_segments)
    if verbose:
        log.info("learned %d documents (%d tokens) in %.2fs: %s", total.documents, total.tokens,
                 stats["total_time_seconds"],
                 ", ".join(f"node{i} {stats[f'node{i}_observations']} learns" for i in range(config.num_levels)))
    return stats


def _learn_through_map(kbs, config):
    """Apply each batch's merged deltas to the local knowledge bases (the fast path)."""
    def learn(docs, deltas: HierarchyDeltas) -> None:
        for kb, level in zip(kbs, deltas.levels):
            kb.apply(level.to_deltas(), metadata_cap=config.metadata_cap)
    return learn


def _learn_through_sessions(learner, config):
    """Some node is on a remote KATO server: drive every level's session (one call per learn)."""
    driver = SessionHierarchy([learner.nodes[f"node{i}"] for i in range(config.num_levels)], config)

    def learn(docs, deltas: HierarchyDeltas) -> None:
        for doc in docs:
            driver.learn_document(doc)
    return learn


def level_statistics(total: HierarchyDeltas, kbs, before: list[int]) -> dict[str, Any]:
    """Per level: unique patterns, learn events, unlearned symbols, reuse rate, patterns per doc.

    Unique-pattern counts (and so the reuse rate) are None for levels on a remote KATO server.
    """
    stats: dict[str, Any] = {}
    for i, (level, kb) in enumerate(zip(total.levels, kbs)):
        if kb is None:
            stats.update({f"node{i}_patterns": None, f"node{i}_observations": level.learned,
                          f"node{i}_unlearned": level.unlearned, f"node{i}_reuse_rate": None,
                          f"node{i}_patterns_per_doc": level.learned / total.documents if total.documents else 0.0})
            continue
        patterns = kb.count()
        new = patterns - before[i]
        stats[f"node{i}_patterns"] = patterns
        stats[f"node{i}_observations"] = level.learned
        stats[f"node{i}_unlearned"] = level.unlearned
        stats[f"node{i}_reuse_rate"] = (1 - new / level.learned) if level.learned else 0.0
        stats[f"node{i}_patterns_per_doc"] = level.learned / total.documents if total.documents else 0.0
    return stats


def _count_only(total: HierarchyDeltas, batch: HierarchyDeltas) -> None:
    """Add a batch's counters (not its patterns: those are already in the knowledge bases)."""
    for mine, theirs in zip(total.levels, batch.levels):
        mine.learned += theirs.learned
        mine.unlearned += theirs.unlearned
    total.documents += batch.documents
    total.tokens += batch.tokens
    total.dropped_segments += batch.dropped_segments


def _segmented(corpus: Any, method: str, preparer: DocumentPreparer) -> Iterator[Segmented]:
    if isinstance(corpus, Mapping):
        if "books" not in corpus:
            raise ConfigError("a corpus dict must have a 'books' list (kato-lm's shape); "
                              "or pass a list of Documents or strings")
        for i, book in enumerate(corpus["books"]):
            yield _book_segmented(book, i)
        return
    if isinstance(corpus, (str, bytes)):
        raise ConfigError("corpus is a single string; pass a list of documents, e.g. [text]")
    for i, item in enumerate(corpus):
        doc = item if isinstance(item, Document) else _text_document(item, i)
        yield preparer.segment_document(doc)


def _text_document(item: Any, index: int) -> Document:
    if not isinstance(item, str):
        raise ConfigError(f"corpus item {index} must be a str or a Document, got {type(item).__name__}")
    return Document(item, doc_id=f"doc{index}")


def _book_segmented(book: Mapping[str, Any], index: int) -> Segmented:
    """kato-lm's nested book dict, already segmented into chapters and paragraphs."""
    title = str(book.get("title") or f"book{index}")
    sections = [Section(str(ch.get("title", "")), [p["text"] if isinstance(p, Mapping) else str(p)
                                                    for p in ch.get("paragraphs", [])])
                for ch in book.get("chapters", [])]
    text = "\n\n".join(p for s in sections for p in s.paragraphs)
    return Segmented(Document(text, doc_id=title, source=str(book.get("author", "")), title=title), sections)


def _batches(items: Iterable[Segmented], size: int) -> Iterator[list[Segmented]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
