"""``HierarchyMapper``: the pool actor that turns document batches into knowledge-base writes.

Ray Data builds one per pool actor (``map_batches(HierarchyMapper, compute=ActorPoolStrategy)``)
and calls it once per row, i.e. per batch of documents. Each call segments and tokenizes the
batch (the tokenizer is loaded once, in the constructor), maps it through the hierarchy (the pure
map: names computed here, no round trip), sends each level's merged deltas to that level's
``NodeActor`` and waits for every acknowledgement. A row coming back therefore means the batch
is durable at every level, and a slow node slows the pool down (natural backpressure). A lone
pool actor maps two batches at once, in threads (``options.mapper_concurrency``): the map keeps
no per-call state on the actor, and the process-wide caches it uses are safe for that.

With ``run_id=None`` nothing is sent: the row carries the encoded deltas (``row["deltas"]``), for
a caller that maps batches in its own process (``scripts/benchmarks/sqlite_levels.py``).
"""
from __future__ import annotations

import math
import os
import pickle
from typing import Any, Mapping

import numpy as np

from katoray.errors import DocumentError
from katoray.config import HierarchyConfig
from katoray.hierarchy.mapping import HierarchyDeltas
from katoray.text.shards import decode_documents
from katoray.runtime.usage import process_usage
from katoray.text.tokenizers import TextTokenizer
from katoray.util import paused_gc


class HierarchyMapper:
    """Pool actor: batch of documents -> deltas at every level's node actor -> one stats row.

    Args:
        hierarchy: the run's ``HierarchyConfig`` (pickled as it is).
        tokenizer: a loaded ``TextTokenizer`` (the driver's, pickled: the fast path), or a name
            or absolute folder path (None = the built-in default).
        segment_method: ``simple``, ``article`` or ``book``.
        batch_key_prefix: prepended to batch ids to form the knowledge bases' idempotency keys
            (run id + corpus fingerprint), so another run's batches never look applied.
        run_id: whose node actors receive the deltas; None = return deltas to the driver.
        kb_ids: per level, the knowledge bases of its shards, which those actors must serve
            (checked once, before the first send); None = one unchecked actor per level.
    """

    def __init__(self, hierarchy: HierarchyConfig, tokenizer: TextTokenizer | str | None, segment_method: str,
                 batch_key_prefix: str, run_id: str | None, kb_ids: list[list[str]] | None = None) -> None:
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")   # workers stay quiet
        from katoray.hierarchy.prepare import DocumentPreparer

        self.config = hierarchy
        self.preparer = DocumentPreparer(tokenizer, segment_method, self.config.mode)
        self.batch_key_prefix = batch_key_prefix
        self.run_id = run_id
        self.kb_ids = kb_ids
        self.shards = [len(ids) for ids in kb_ids] if kb_ids is not None else [1] * hierarchy.num_levels
        self._nodes: list[list] | None = None

    def __repr__(self) -> str:
        return f"HierarchyMapper(run_id={self.run_id!r}, levels={self.config.num_levels})"

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self.map_batch(str(bid), payload) for bid, payload in zip(batch["batch_id"], batch["docs"])]
        return {key: np.array([row[key] for row in rows], dtype=object if key in ("batch_id", "deltas") else None)
                for key in rows[0]}

    def map_batch(self, batch_id: str, payload: bytes) -> dict[str, Any]:
        """Map one batch and make it durable at every level; returns its statistics row."""
        docs = decode_documents(payload)
        with paused_gc():
            tokenized = self.preparer.prepare(docs)
            acc = HierarchyDeltas(self.config)
            for doc, prepared in zip(docs, tokenized):
                try:
                    acc.add(prepared)
                except Exception as err:
                    raise DocumentError(f"document {doc.doc_id!r} ({doc.source or 'no source'}) could not be "
                                        f"mapped: {type(err).__name__}: {err}") from err
            if self.run_id is None:
                payloads = [level.encode() for level in acc.levels]
            else:
                parts = [level.encode_shards(shards) for level, shards in zip(acc.levels, self.shards)]
        row = self._stats_row(batch_id, acc, tokenized)
        if self.run_id is None:
            row["deltas"] = pickle.dumps(payloads, protocol=5)   # for the caller (run_id=None)
        else:
            for level, results in enumerate(self._send(self.batch_key_prefix + batch_id, parts)):
                # A level's batch: applied if any shard had not seen it yet (a retry completes the
                # others); its new patterns are the shards' own.
                row[f"applied_{level}"] = any(result["applied"] for result in results)
                row[f"new_{level}"] = sum(int(result["new_patterns"]) for result in results)
        usage = process_usage()   # this actor so far (start-up included): the run's statistics add it up
        row["worker_cpu_seconds"] = usage["cpu_seconds"]
        row["worker_peak_rss_mb"] = math.nan if usage["peak_rss_mb"] is None else usage["peak_rss_mb"]
        return row

    def _send(self, key: str, parts: list[list[bytes]]) -> list[list[dict[str, Any]]]:
        """Each level's part for each shard to that shard's actor, all at once; their answers per
        level once every one has acknowledged."""
        import ray

        refs = [[node.apply_counted.remote(key, part) for node, part in zip(nodes, level)]
                for nodes, level in zip(self._node_handles(), parts)]
        answers = iter(ray.get([ref for level in refs for ref in level]))
        return [[next(answers) for _ in level] for level in refs]

    def _node_handles(self) -> list[list]:
        if self._nodes is None:
            from katoray.runtime.node import attach_shards, check_nodes

            nodes = attach_shards(self.run_id, self.shards)
            if self.kb_ids is not None:
                check_nodes(self.run_id, [h for level in nodes for h in level], [k for ids in self.kb_ids for k in ids])
            self._nodes = nodes
        return self._nodes

    def _stats_row(self, batch_id: str, acc: HierarchyDeltas, tokenized: list) -> dict[str, Any]:
        row: dict[str, Any] = {"batch_id": batch_id, "worker": os.getpid(), "num_docs": acc.documents,
                               "tokens": acc.tokens, "dropped_segments": acc.dropped_segments,
                               "empty_docs": sum(1 for doc in tokenized if doc.num_tokens() == 0)}
        for level, deltas in enumerate(acc.levels):
            row[f"learned_{level}"] = deltas.learned
            row[f"unlearned_{level}"] = deltas.unlearned
        return row
