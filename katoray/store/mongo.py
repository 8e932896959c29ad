"""MongoDB knowledge base in KATO's MongoDB-era layout (spec §7.2), exactly-once without transactions.

Layout, in database ``<kb_id>`` (KATO's per-node database, e.g. ``node0_<run>_kato``):

- ``patterns_kb``: ``{name: <bare 40-hex sha1>, pattern_data: [[str]], length, frequency,
  emotives: [{key: value}], metadata: {key: [str]}, symbols: [distinct symbols], first_symbol,
  seq, created_batch, last_batch}``. Indexes: ``name`` unique; ``symbols`` (multikey, for
  ``patterns_with_any``); ``(first_symbol, seq)`` (``patterns_starting_with`` in learning order:
  ``seq`` numbers patterns in the order they were first learned, as MemoryStore lists them).
  Uncapped metadata values are kept as a set (``$addToSet``) and sorted when read.
- ``symbols_kb``: ``{name: <symbol>, frequency, pmf, created_batch, last_batch}``; ``name`` unique.
  ``pmf`` is the number of distinct patterns containing the symbol (KATO HEAD's ``symbols:pmf``),
  not the Mongo era's per-learn ``pattern_member_frequency``.
- ``metadata``: ``{class: "totals", total_unique_patterns, total_pattern_frequencies,
  total_symbols_in_patterns_frequencies, num_symbols, next_seq, last_batch}``; ``class`` unique.
- ``applied_batches``: the ledger, ``{_id: <batch id>, done: bool}``; while a batch is in flight
  its document also holds the batch's merged deltas (``payload``: zlib-compressed JSON) and its
  ``persistence`` and ``metadata_cap``, removed when the batch is done.

Writes are bulk only (the pure part, merging a batch and building its operations, is
:mod:`katoray.store.mongo_batch`). ``apply`` merges repeated names of the batch in Python, then sends
``bulk_write(ordered=False)`` of one ``UpdateOne(upsert=True)`` per distinct pattern, one per
distinct symbol, one for the totals and two ledger updates: five write commands per apply (three
without a batch id), however large the batch.

Exactly once. A standalone mongod has no multi-document transaction, so ``apply(deltas, b)`` is a
sequence of idempotent steps:

1. ledger: return False if ``b`` is done; finish any other unfinished batch first (roll-forward,
   below); mark ``b`` started, storing its merged deltas.
2. patterns: each upsert filters ``{name, last_batch: {$ne: b}}`` and sets ``last_batch: b``; on
   insert it records ``created_batch: b``. A document this batch already updated no longer matches,
   so its upsert collides with the unique index (E11000), which means "already applied" and is
   skipped. Any other error is raised.
3. the patterns new in this batch are those with ``created_batch == b`` (taken from the upsert
   results, or queried when a replay hit documents a previous attempt had written).
4. symbols: the same guard; ``pmf`` grows by the number of new patterns holding the symbol.
5. totals: the same guard on ``class``; new-pattern and new-symbol counts come from step 3's rule.
6. ledger: mark ``b`` done.

A crash at any point leaves every document either untouched by ``b`` or fully updated by ``b``;
running ``apply(deltas, b)`` again updates exactly the untouched ones, so the final state equals
one clean apply. Without a batch id the same steps run under a private one-off id, with no ledger.

Roll-forward. Each document remembers only the last batch that touched it, so an interrupted batch
must be finished before any other batch touches its documents. After a crash the next batch to
arrive is not necessarily the interrupted one (a resumed run re-sends batches in any order), so
``apply`` finishes the interrupted batch itself first, from the deltas its ledger document holds:
steps 2-6 again under its id, which the guards make idempotent. The stored deltas must fit in one
MongoDB document (16 MiB); a batch whose compressed deltas do not is refused before any write,
with the advice to use smaller batches.

Assumptions:
- One writer per knowledge base, one batch at a time (the runtime's node actor). A lock serialises
  the threads of this process; two processes writing one KB are not supported.
- A crashed batch is finished from its stored deltas before any other batch (roll-forward). A
  ledger entry without stored deltas (written by an older katoray) cannot be rolled forward:
  ``apply`` raises ``StoreError`` naming it rather than risk counting it twice.
- Capped metadata (``metadata_cap``) is read, merged in Python and written back; this is safe
  only because of the single-writer assumption.
- Metadata and emotive keys must be legal MongoDB field names (non-empty, no ``.``, no leading
  ``$``, no NUL), as in KATO's MongoDB era; other keys are refused with a ``ValueError``.
"""
from __future__ import annotations

import json
import uuid
import zlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pymongo
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from katoray.errors import StoreError
from katoray.store import mongo_batch
from katoray.store.base import DeltaColumns, PatternDelta, check_apply_args, merge_metadata
from katoray.store.locking import ReadWriteLock
from katoray.store.mongo_batch import (Merged, affinity_of, decode_recovery, encode_recovery, merge_batch, pattern_op,
                                       symbol_increments)
from katoray.store.mongo_connect import DEFAULT_TIMEOUT_S, check_db_name, connect, named_errors
from katoray.store.mongo_reads import TOTALS, MongoReads
from katoray.store.mongo_stats import MongoAggregates

DUPLICATE_KEY = 11000  # MongoDB's E11000: here, "this batch already updated the document"
_OWNER = {"class": "owner"}
_RECOVERY_FIELDS = ("payload", "persistence", "metadata_cap")


@dataclass(frozen=True)
class _Outcome:
    """What a guarded bulk write did: indexes of the ops that inserted, and whether any op found
    its document already updated by this batch (a replay)."""

    upserted: frozenset[int]
    replayed: bool


class MongoStore(MongoReads, MongoAggregates):
    """A knowledge base in one MongoDB database (see the module docstring for layout and design)."""

    def __init__(self, client: pymongo.MongoClient, kb_id: str, hosts: str) -> None:
        check_db_name(kb_id)
        self.kb_id = kb_id
        self.hosts = hosts
        self._client = client
        db = client[kb_id]
        self._patterns = db["patterns_kb"]
        self._symbols = db["symbols_kb"]
        self._meta = db["metadata"]
        self._ledger = db["applied_batches"]
        self._lock = ReadWriteLock()   # this process's writes alone; a prediction's reads share it
        self._ensure_indexes()

    @classmethod
    def from_url(cls, url: str, kb_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 **client_options: Any) -> "MongoStore":
        """Connect to ``url`` and open (creating if needed) the knowledge base ``kb_id``.

        ``client_options`` go to ``pymongo.MongoClient`` (e.g. ``event_listeners``).
        Raises ``StoreUnreachableError`` naming the host when no server answers within
        ``timeout_s``; ``ConfigError`` for a malformed URL; ``StoreError`` when the server
        refuses the credentials. No message contains the password.
        """
        client, hosts = connect(url, kb_id, timeout_s, **client_options)
        return cls(client, kb_id, hosts)

    def __repr__(self) -> str:
        return f"MongoStore(kb_id={self.kb_id!r}, hosts={self.hosts!r})"

    @property
    def patterns_collection(self):
        """The raw ``patterns_kb`` collection (the notebook's analyzers query it directly)."""
        return self._patterns

    def _ensure_indexes(self) -> None:
        self._patterns.create_index("name", unique=True)
        self._patterns.create_index("symbols")
        self._patterns.create_index([("first_symbol", 1), ("seq", 1)])
        self._symbols.create_index("name", unique=True)
        self._meta.create_index("class", unique=True)
        self._ledger.create_index("done")
        self._indexes_ready = True

    # -- writes -----------------------------------------------------------------------------
    def apply(self, deltas: Sequence[PatternDelta], batch_id: str | None = None, *,
              persistence: int = 5, metadata_cap: int | None = None) -> bool:
        check_apply_args(persistence, metadata_cap)
        merged = merge_batch(deltas)
        with self._lock.writing():
            if not self._indexes_ready:
                self._ensure_indexes()
            self._finish_deletions()  # a deletion a crash cut short is completed before any learn
            if batch_id is not None:
                recovery = {"payload": encode_recovery(merged, batch_id, self.kb_id),
                            "persistence": persistence, "metadata_cap": metadata_cap}
                if not self._begin(batch_id, recovery):
                    return False
            token = batch_id if batch_id is not None else f"~{uuid.uuid4().hex}"
            if merged:
                self._apply_merged(merged, token, persistence, metadata_cap)
            if batch_id is not None:
                self._finish(batch_id)
            return True

    def apply_columns(self, columns: DeltaColumns, batch_id: str | None = None, *,
                      persistence: int = 5, metadata_cap: int | None = None) -> bool:
        """``apply(columns.to_deltas(), ...)``: a MongoDB write costs far more than the conversion."""
        return self.apply(columns.to_deltas(), batch_id, persistence=persistence, metadata_cap=metadata_cap)

    def _begin(self, batch_id: str, recovery: dict[str, Any]) -> bool:
        """Step 1: False if the batch is done; finish any other unfinished batch first; mark this
        one started with what a later roll-forward needs (``recovery``)."""
        if not isinstance(batch_id, str):
            raise ValueError(f"batch_id must be a str, got {batch_id!r}")
        seen = list(self._ledger.find({"$or": [{"_id": batch_id}, {"done": False}]}, {"_id": 1, "done": 1}))
        if any(doc["_id"] == batch_id and doc["done"] for doc in seen):
            return False
        for unfinished in sorted(doc["_id"] for doc in seen if doc["_id"] != batch_id):
            self._roll_forward(unfinished, batch_id)
        self._write(self._ledger, [UpdateOne({"_id": batch_id}, {"$setOnInsert": {"done": False, **recovery}},
                                             upsert=True)], guarded=False)
        return True

    def _roll_forward(self, unfinished: str, arriving: str) -> None:
        """Finish an interrupted batch from the deltas its ledger document holds (steps 2-6)."""
        doc = self._ledger.find_one({"_id": unfinished})
        if doc is None or doc.get("done"):
            return
        if "payload" not in doc:
            raise StoreError(
                f"knowledge base {self.kb_id!r}: batch {unfinished!r} was interrupted before it "
                f"finished and its ledger entry holds no deltas to finish it with (written by an older "
                f"katoray); apply it again (same deltas) before batch {arriving!r}, or its patterns "
                "could be counted twice")
        merged = decode_recovery(doc["payload"])
        if merged:
            self._apply_merged(merged, unfinished, doc["persistence"], doc["metadata_cap"])
        self._finish(unfinished)

    def _finish(self, batch_id: str) -> None:
        """Step 6: mark the batch done and drop its stored deltas (the ledger stays small)."""
        update = {"$set": {"done": True}, "$unset": {key: "" for key in _RECOVERY_FIELDS}}
        self._write(self._ledger, [UpdateOne({"_id": batch_id}, update)], guarded=False)

    def _apply_merged(self, merged: dict[str, Merged], token: str, persistence: int,
                      metadata_cap: int | None) -> None:
        """Steps 2-5."""
        names = list(merged)
        seq_base = (self._meta.find_one(TOTALS, {"next_seq": 1}) or {}).get("next_seq", 0)
        capped = self._capped_metadata(merged, metadata_cap) if metadata_cap is not None else {}
        ops = [pattern_op(name, merged[name], token, seq_base + i, persistence, capped.get(name))
               for i, name in enumerate(names)]
        new_names = self._created(self._patterns, names, token, self._write(self._patterns, ops))
        freq, pmf = symbol_increments(merged, new_names)
        affinity = affinity_of(merged)
        symbols = list(freq)
        ops = mongo_batch.symbol_ops(freq, pmf, token, affinity)
        new_symbols = self._created(self._symbols, symbols, token, self._write(self._symbols, ops))
        op = mongo_batch.totals_op(merged, len(new_names), len(new_symbols), token)
        self._write(self._meta, [op])

    def _capped_metadata(self, merged: dict[str, Merged], cap: int) -> dict[str, dict[str, list[str]]]:
        """Name -> {key: merged capped values} for the keys this batch touches (read-modify-write)."""
        names = [n for n, m in merged.items() if m.metadata is not None]
        if not names:
            return {}
        stored = {doc["name"]: doc.get("metadata", {}) for doc in
                  self._patterns.find({"name": {"$in": names}}, {"_id": 0, "name": 1, "metadata": 1})}
        out = {}
        for name in names:
            new = merged[name].metadata
            full = merge_metadata(stored.get(name, {}), new, cap)
            out[name] = {key: full[key] for key in new}
        return out

    def _created(self, collection, names: list[str], token: str, outcome: _Outcome) -> set[str]:
        """Names whose document this batch inserted (``created_batch == token``)."""
        if not outcome.replayed:
            return {names[i] for i in outcome.upserted}
        cursor = collection.find({"name": {"$in": names}, "created_batch": token}, {"_id": 0, "name": 1})
        return {doc["name"] for doc in cursor}

    def _write(self, collection, ops: list[UpdateOne], *, guarded: bool = True) -> _Outcome:
        """The only write path: one unordered bulk write; E11000 of guarded ops means "already
        applied by this batch" and is skipped, every other error is raised."""
        if not ops:
            return _Outcome(frozenset(), False)
        try:
            result = collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            if (not guarded or details.get("writeConcernErrors")
                    or any(err.get("code") != DUPLICATE_KEY for err in details.get("writeErrors", ()))):
                raise
            return _Outcome(frozenset(up["index"] for up in details.get("upserted", ())), True)
        return _Outcome(frozenset(result.upserted_ids), False)

    def is_applied(self, batch_id: str) -> bool:
        return self._ledger.count_documents({"_id": batch_id, "done": True}, limit=1) > 0

    def claim_owner(self, owner: str) -> str:
        """The ``owner`` document of ``metadata``, inserted if missing (the unique ``class`` index
        makes a race of two claims end with one insert)."""
        try:
            self._meta.update_one(_OWNER, {"$setOnInsert": {"owner": owner}}, upsert=True)
        except DuplicateKeyError:
            pass                       # another process inserted it between our find and insert
        return self._meta.find_one(_OWNER)["owner"]

    # -- deletion ---------------------------------------------------------------------------
    DELETE_CHUNK = 5000   # patterns per deletion plan: a plan must fit one MongoDB document

    def delete_patterns(self, names: Iterable[str]) -> int:
        """Remove these patterns as if never learned (see :meth:`KnowledgeBase.delete_patterns`);
        unknown names are ignored. Returns how many were deleted.

        Without transactions a deletion is made of idempotent steps, like ``apply``. For each chunk
        of ``DELETE_CHUNK`` names a plan is computed from the stored documents (what each symbol
        and the totals lose, which symbols no remaining pattern holds) and stored in
        ``pending_deletions``; then symbol and totals updates guarded by ``last_delete: <plan id>``
        (as ``last_batch`` guards applies), the deletes, and the plan's removal. A plan left by a
        crash is finished first by the next ``delete_patterns`` or ``apply`` (``delete_patterns([])``
        finishes it alone), and an apply interrupted by a crash is rolled forward before anything
        is planned. Raises StoreError if the symbol
        statistics disagree with the patterns (nothing is written then).
        """
        wanted = [name for name in dict.fromkeys(names) if isinstance(name, str)]
        with self._lock.writing():
            self._finish_deletions()
            for unfinished in sorted(doc["_id"] for doc in self._ledger.find({"done": False}, {"_id": 1})):
                self._roll_forward(unfinished, "delete_patterns")
            deleted = 0
            for start in range(0, len(wanted), self.DELETE_CHUNK):
                plan = self._deletion_plan(wanted[start:start + self.DELETE_CHUNK])
                if plan is not None:
                    token = f"~delete-{uuid.uuid4().hex}"
                    self._pending_deletions.insert_one(
                        {"_id": token, "plan": mongo_batch.encode_plan(plan, token, self.kb_id, self.DELETE_CHUNK)})
                    self._carry_out_deletion(token, plan)
                    deleted += len(plan["names"])
            return deleted

    @property
    def _pending_deletions(self):
        return self._patterns.database["pending_deletions"]

    def _finish_deletions(self) -> None:
        """Carry out the plans a crash left stored (at most one: plans run one at a time)."""
        for doc in self._pending_deletions.find({}).sort("_id", 1):
            self._carry_out_deletion(doc["_id"], json.loads(zlib.decompress(doc["plan"])))

    def _deletion_plan(self, names: list[str]) -> dict[str, Any] | None:
        """What deleting the stored patterns among ``names`` subtracts and forgets; None if none exist."""
        docs = list(self._patterns.find({"name": {"$in": names}},
                                        {"_id": 0, "name": 1, "pattern_data": 1, "length": 1, "frequency": 1}))
        if not docs:
            return None
        held = mongo_batch.deleted_symbols(docs)
        stored = {doc["name"]: doc["pmf"] for doc in
                  self._symbols.find({"name": {"$in": list(held)}}, {"_id": 0, "name": 1, "pmf": 1})}
        return mongo_batch.deletion_plan(self.kb_id, docs, held, stored)

    def _carry_out_deletion(self, token: str, plan: dict[str, Any]) -> None:
        for step in self._deletion_steps(token, plan):
            step()

    def _deletion_steps(self, token: str, plan: dict[str, Any]) -> list:
        """The plan's idempotent steps (callables), in order: symbols, totals, forgotten symbols,
        patterns, the plan itself. After a crash between any two, running them all again ends as
        one clean run would."""
        symbol_ops, totals_op = mongo_batch.deletion_ops(token, plan)
        return [lambda: self._write(self._symbols, symbol_ops, guarded=False),
                lambda: self._write(self._meta, [totals_op], guarded=False),
                lambda: self._symbols.delete_many({"name": {"$in": plan["forget"]}, "pmf": 0}),
                lambda: self._patterns.delete_many({"name": {"$in": plan["names"]}}),
                lambda: self._pending_deletions.delete_one({"_id": token})]

    # -- reads (most are MongoReads') -----------------------------------------------------
    def reading(self) -> AbstractContextManager:
        """Reads inside the block see no write of this process (writes wait); other processes'
        writes may still land between two reads: MongoDB without a replica set has no snapshot."""
        return self._lock.reading()

    # -- lifecycle --------------------------------------------------------------------------
    def clear(self) -> None:
        """Drop the KB's database; indexes are made again by the next apply."""
        with self._lock.writing():
            self._client.drop_database(self.kb_id)
            self._indexes_ready = False
            self._histograms_at = None   # a later totals document may equal one from before the drop

    def close(self) -> None:
        self._client.close()


# Every call of the protocol: a lost server or a failed command is katoray's error, naming the host.
for _method in ("apply", "claim_owner", "is_applied", "delete_patterns", "get_pattern", "get_patterns",
                "patterns_with_any", "patterns_starting_with", "symbol_pmf", "symbol_frequencies", "symbol_affinity",
                "stored_symbols", "totals", "clear"):
    setattr(MongoStore, _method, named_errors(getattr(MongoStore, _method)))
