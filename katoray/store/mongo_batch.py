"""The pure half of the MongoDB store: a batch of deltas -> merged learns -> bulk operations.

No I/O here. ``merge_batch`` folds a batch's learns per pattern name (as MemoryStore would apply
them one after the other); ``pattern_op`` builds one pattern's guarded upsert (see
:mod:`katoray.store.mongo` for the exactly-once protocol); ``encode_recovery`` /
``decode_recovery`` are the compressed deltas a ledger document holds so that an interrupted
batch can be rolled forward.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from bson import Binary
from pymongo import UpdateOne

from katoray.errors import StoreError
from katoray.store.base import PatternDelta, PatternRecord, affinity_increments, symbol_counts

# Bytes of compressed deltas a ledger document may hold: MongoDB's 16 MiB document limit, less
# head room for the document's other fields and BSON framing.
MAX_RECOVERY_BYTES = 15 * 1024 * 1024


@dataclass
class Merged:
    """All learns of one pattern name in a batch."""

    events: list[list[str]]
    counts: dict[str, int]               # symbol -> occurrences in the pattern
    count: int = 0
    emotives: list[dict] = field(default_factory=list)
    metadata: dict[str, set[str]] | None = None   # None: no delta of the batch carried metadata
    learns_emotives: list[list[dict]] = field(default_factory=list)   # each delta's emotives (affinity)


def merge_batch(deltas: Sequence[PatternDelta]) -> dict[str, Merged]:
    """One entry per distinct name, in order of first appearance; learns merged as MemoryStore
    would apply them one after the other (counts add, emotives concatenate, metadata unions)."""
    merged: dict[str, Merged] = {}
    for delta in deltas:
        entry = merged.get(delta.name)
        if entry is None:
            events = [list(event) for event in delta.events]
            entry = merged[delta.name] = Merged(events, dict(symbol_counts(events)))
        entry.count += delta.count
        for emotive in delta.emotives:
            for key in emotive:
                check_key(key, "emotive", delta.name)
        entry.emotives.extend(delta.emotives)
        if delta.emotives:
            entry.learns_emotives.append(list(delta.emotives))
        if delta.metadata:
            metadata = entry.metadata if entry.metadata is not None else {}
            for key, values in delta.metadata.items():
                check_key(key, "metadata", delta.name)
                metadata.setdefault(key, set()).update(str(v) for v in values)
            entry.metadata = metadata
    return merged


def encode_recovery(merged: dict[str, Merged], batch_id: str, kb_id: str) -> Binary:
    """A batch's merged deltas as compressed JSON for its ledger document (roll-forward)."""
    rows = [[name, m.events, m.count, m.emotives,
             None if m.metadata is None else {key: sorted(values) for key, values in m.metadata.items()},
             m.learns_emotives]
            for name, m in merged.items()]
    payload = zlib.compress(json.dumps(rows, separators=(",", ":")).encode("ascii"), 1)
    if len(payload) > MAX_RECOVERY_BYTES:
        raise StoreError(
            f"knowledge base {kb_id!r}: batch {batch_id!r} is too large to apply safely to MongoDB: its "
            f"deltas take {len(payload) / 2**20:.1f} MiB compressed, more than the {MAX_RECOVERY_BYTES / 2**20:.0f} "
            "MiB a crash-recovery record may hold (MongoDB's 16 MiB document limit). Use smaller batches "
            "(--batch-size, or batch_size= / batch_chars=)")
    return Binary(payload)


def decode_recovery(payload: bytes) -> dict[str, Merged]:
    merged: dict[str, Merged] = {}
    for name, events, count, emotives, metadata, *learns in json.loads(zlib.decompress(payload)):
        # (a ledger written before affinity existed holds no per-learn emotives: one learn then)
        merged[name] = Merged(events, dict(symbol_counts(events)), count, emotives,
                               None if metadata is None else {key: set(values) for key, values in metadata.items()},
                               learns[0] if learns else ([emotives] if emotives else []))
    return merged


def check_key(key: Any, kind: str, name: str) -> None:
    if not isinstance(key, str) or not key or "." in key or key.startswith("$") or "\x00" in key:
        raise ValueError(
            f"{kind} key {key!r} of pattern {name} cannot be a MongoDB field name; use a non-empty "
            "string without '.', a leading '$' or NUL")


def pattern_op(name: str, m: Merged, token: str, seq: int, persistence: int,
                capped: dict[str, list[str]] | None) -> UpdateOne:
    """The guarded upsert of one pattern (see module docstring, step 2)."""
    on_insert: dict[str, Any] = {"pattern_data": m.events, "length": sum(m.counts.values()),
                                 "symbols": list(m.counts), "created_batch": token, "seq": seq}
    if m.events and m.events[0]:
        on_insert["first_symbol"] = m.events[0][0]
    update: dict[str, Any] = {"$inc": {"frequency": m.count}, "$set": {"last_batch": token}}
    if m.emotives:  # (stored + new)[-p:] == (stored + new[-p:])[-p:]: send only the tail
        update["$push"] = {"emotives": {"$each": m.emotives[-persistence:], "$slice": -persistence}}
    else:
        on_insert["emotives"] = []
    if m.metadata is None:
        on_insert["metadata"] = {}
    elif capped is not None:
        update["$set"].update({f"metadata.{key}": values for key, values in capped.items()})
    else:
        update["$addToSet"] = {f"metadata.{key}": {"$each": sorted(values)}
                               for key, values in m.metadata.items()}
    update["$setOnInsert"] = on_insert
    return UpdateOne({"name": name, "last_batch": {"$ne": token}}, update, upsert=True)


def symbol_increments(merged: dict[str, Merged], new_names: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per symbol (first-appearance order): frequency += c * count; pmf += 1 per new pattern."""
    freq: dict[str, int] = {}
    pmf: dict[str, int] = {}
    for name, m in merged.items():
        is_new = name in new_names
        for symbol, c in m.counts.items():
            freq[symbol] = freq.get(symbol, 0) + c * m.count
            pmf[symbol] = pmf.get(symbol, 0) + is_new
    return freq, pmf


def affinity_of(merged: dict[str, Merged]) -> dict[str, dict[str, float]]:
    """The batch's symbol affinity additions (``base.affinity_increments``, names in batch order)."""
    return affinity_increments((m.events, emotives) for m in merged.values() for emotives in m.learns_emotives)


def record_of(doc: dict) -> PatternRecord:
    metadata = {key: sorted(values) for key, values in sorted(doc.get("metadata", {}).items())}
    return PatternRecord(doc["name"], [list(event) for event in doc["pattern_data"]], doc["length"],
                         doc["frequency"], [dict(e) for e in doc.get("emotives", [])], metadata)
