"""Aggregate reads of the MongoDB store (``base.KnowledgeBase``'s analysis half), on the server.

Histograms are one ``$group`` pipeline each (the server scans ``patterns_kb`` and returns one
small document per distinct value); the most frequent patterns are a sorted, limited ``find``
(a top-k sort on the server; ``allowDiskUse`` lets a real mongod spill an unlimited sort past
its in-memory limit instead of failing); the weighted sample streams (name, frequency) in
batches. Size on disk is ``dbStats``. Every operator here is in MongoDB 4.4+ and SecantusDB.
"""
from __future__ import annotations

from typing import Iterator

from katoray.store.base import PatternRecord, check_limit
from katoray.store.mongo_batch import record_of
from katoray.store.sampling import sample_records

FREQUENCY_BATCH = 10_000   # documents per getMore while streaming (name, frequency)
RECORD_FIELDS = {"_id": 0, "name": 1, "pattern_data": 1, "length": 1, "frequency": 1, "emotives": 1, "metadata": 1}


class MongoAggregates:
    """Mixed into ``MongoStore``: needs its ``_patterns`` collection, ``_client``, ``kb_id`` and
    ``get_patterns``."""

    def frequency_histogram(self) -> dict[int, int]:
        return self._histogram("$frequency")

    def length_histogram(self) -> dict[int, int]:
        return self._histogram("$length")

    def _histogram(self, field: str) -> dict[int, int]:
        groups = self._patterns.aggregate([{"$group": {"_id": field, "n": {"$sum": 1}}}], allowDiskUse=True)
        return dict(sorted((doc["_id"], doc["n"]) for doc in groups))

    def most_frequent(self, limit: int | None = None, min_frequency: int = 1,
                      max_frequency: int | None = None) -> list[PatternRecord]:
        check_limit(limit)
        if limit == 0:   # (pymongo's limit(0) means no limit)
            return []
        bounds = {"$gte": min_frequency, **({"$lte": max_frequency} if max_frequency is not None else {})}
        cursor = self._patterns.find({"frequency": bounds}, RECORD_FIELDS).sort(
            [("frequency", -1), ("name", 1)]).allow_disk_use(True)
        if limit is not None:
            cursor = cursor.limit(limit)
        return list(map(record_of, cursor))

    def iter_frequencies(self) -> Iterator[tuple[str, int]]:
        cursor = self._patterns.find({}, {"_id": 0, "name": 1, "frequency": 1}, batch_size=FREQUENCY_BATCH)
        return ((doc["name"], doc["frequency"]) for doc in cursor)

    def sample_by_frequency(self, num_samples: int, seed: int = 0) -> list[PatternRecord]:
        return sample_records(self, num_samples, seed)

    def size_on_disk(self) -> int | None:
        """The database's storage and index bytes (``dbStats``)."""
        stats = self._client[self.kb_id].command("dbStats")
        return int(stats.get("storageSize", 0)) + int(stats.get("indexSize", 0))
