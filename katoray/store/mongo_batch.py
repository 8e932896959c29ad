"""The pure half of the MongoDB store: a batch of deltas -> merged learns -> bulk operations.

No I/O here. ``merge_batch`` folds a batch's learns per pattern name (as MemoryStore would apply
them one after the other); ``pattern_op`` builds one pattern's guarded upsert (see
:mod:`katoray.store.mongo` for the exactly-once protocol); ``encode_recovery`` /
``decode_recovery`` are the compressed deltas a ledger document holds so that an interrupted
batch can be rolled forward; ``deletion_plan`` / ``deletion_ops`` are what a deletion subtracts and
the guarded updates that subtract it.
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


def symbol_ops(freq: dict[str, int], pmf: dict[str, int], token: str,
               affinity: dict[str, dict[str, float]]) -> list[UpdateOne]:
    """Step 4's guarded upserts: each symbol's frequency, pmf and affinity sums (``affinity.<emotive>``)
    grow once per batch ``token``."""
    return [UpdateOne({"name": s, "last_batch": {"$ne": token}},
                      {"$inc": {"frequency": freq[s], "pmf": pmf[s],
                                **{f"affinity.{key}": value for key, value in affinity.get(s, {}).items()}},
                       "$set": {"last_batch": token}, "$setOnInsert": {"created_batch": token}}, upsert=True)
            for s in freq]


def totals_op(merged: dict[str, Merged], new_patterns: int, new_symbols: int, token: str) -> UpdateOne:
    """Step 5's guarded update of the totals document."""
    increments = {
        "total_unique_patterns": new_patterns,
        "total_pattern_frequencies": new_patterns,   # KATO quirk: +1 only for a new pattern
        "total_symbols_in_patterns_frequencies": sum(sum(m.counts.values()) * m.count for m in merged.values()),
        "num_symbols": new_symbols,
        "next_seq": len(merged),
    }
    return UpdateOne({"class": "totals", "last_batch": {"$ne": token}},
                     {"$inc": increments, "$set": {"last_batch": token}}, upsert=True)


# -- deletion ------------------------------------------------------------------------------------
def deleted_symbols(docs: Sequence[dict]) -> dict[str, list[int]]:
    """symbol -> [occurrences times frequency, patterns holding it] over the patterns ``docs``."""
    held: dict[str, list[int]] = {}
    for doc in docs:
        for symbol, occurrences in symbol_counts(doc["pattern_data"]).items():
            entry = held.setdefault(symbol, [0, 0])
            entry[0] += occurrences * doc["frequency"]
            entry[1] += 1
    return held


def deletion_plan(kb_id: str, docs: Sequence[dict], held: dict[str, list[int]],
                  stored_pmf: dict[str, int]) -> dict[str, Any]:
    """What deleting ``docs`` subtracts (per symbol: frequency, pmf), which symbols no remaining
    pattern holds (``forget``), and the totals' share. StoreError, before any write, if a symbol
    is held by fewer stored patterns than are being deleted."""
    short = [s for s, (_, pmf) in held.items() if stored_pmf.get(s, 0) < pmf]
    if short:
        raise StoreError(
            f"knowledge base {kb_id!r}: symbol {short[0]!r} is held by fewer patterns than are "
            "being deleted; the statistics are damaged, nothing was deleted. Rebuild this KB")
    return {"names": [doc["name"] for doc in docs],
            "symbols": [[s, freq, pmf] for s, (freq, pmf) in held.items()],
            "forget": [s for s, (_, pmf) in held.items() if stored_pmf[s] == pmf],
            "symbols_total": sum(doc["length"] * doc["frequency"] for doc in docs)}


def encode_plan(plan: dict[str, Any], token: str, kb_id: str, chunk: int) -> Binary:
    """A plan as the compressed document ``pending_deletions`` stores until it is carried out."""
    encoded = zlib.compress(json.dumps(plan, separators=(",", ":")).encode("ascii"), 1)
    if len(encoded) > MAX_RECOVERY_BYTES:
        raise StoreError(
            f"knowledge base {kb_id!r}: deletion plan {token!r} takes {len(encoded) / 2**20:.1f} MiB, "
            f"more than one MongoDB document holds; lower MongoStore.DELETE_CHUNK (now {chunk})")
    return Binary(encoded)


def deletion_ops(token: str, plan: dict[str, Any]) -> tuple[list[UpdateOne], UpdateOne]:
    """The plan's symbol updates and totals update, each guarded by ``last_delete: token`` (as
    ``last_batch`` guards applies), so a replay after a crash subtracts nothing twice."""
    guard = {"last_delete": {"$ne": token}}
    mark = {"last_delete": token}
    symbol_ops = [UpdateOne({"name": s, **guard}, {"$inc": {"frequency": -f, "pmf": -p}, "$set": mark})
                  for s, f, p in plan["symbols"]]
    removed = len(plan["names"])
    decrements = {"total_unique_patterns": -removed, "total_pattern_frequencies": -removed,
                  "total_symbols_in_patterns_frequencies": -plan["symbols_total"],
                  "num_symbols": -len(plan["forget"])}
    return symbol_ops, UpdateOne({"class": "totals", **guard}, {"$inc": decrements, "$set": mark})
