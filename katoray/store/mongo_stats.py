"""Aggregate reads of the MongoDB store (``base.KnowledgeBase``'s analysis half), on the server.

Both histograms come from one ``$group`` pipeline (the server scans ``patterns_kb`` and returns
one small document per distinct (frequency, length)), kept until the totals document changes:
every apply and every deletion rewrites it (``last_batch``, ``last_delete`` and the counts), so
``get_stats`` after ``frequency_histogram`` costs one small read. The most frequent patterns are a sorted, limited ``find``
(a top-k sort on the server; ``allowDiskUse`` lets a real mongod spill an unlimited sort past
its in-memory limit instead of failing); the weighted sample streams (name, frequency) in
batches. Size on disk is ``dbStats``. Every operator here is in MongoDB 4.4+ and SecantusDB.
"""
from __future__ import annotations

from typing import Iterator

from katoray.store.base import PatternRecord, check_limit
from katoray.store.mongo_batch import record_of
from katoray.store.sampling import sample_records

TOTALS = {"class": "totals"}   # the totals document's filter (as katoray.store.mongo writes it)
FREQUENCY_BATCH = 10_000   # documents per getMore while streaming (name, frequency)
RECORD_FIELDS = {"_id": 0, "name": 1, "pattern_data": 1, "length": 1, "frequency": 1, "emotives": 1, "metadata": 1}


class MongoAggregates:
    """Mixed into ``MongoStore``: needs its ``_patterns`` and ``_meta`` collections, ``_client``,
    ``kb_id`` and ``get_patterns``."""

    _histograms_at: tuple | None = None   # (totals document, frequency histogram, length histogram)

    def frequency_histogram(self) -> dict[int, int]:
        return self._histograms()[0]

    def length_histogram(self) -> dict[int, int]:
        return self._histograms()[1]

    def _histograms(self) -> tuple[dict[int, int], dict[int, int]]:
        marks = self._meta.find_one(TOTALS, {"_id": 0})
        if self._histograms_at is None or self._histograms_at[0] != marks:
            frequencies: dict[int, int] = {}
            lengths: dict[int, int] = {}
            pipeline = [{"$group": {"_id": {"f": "$frequency", "l": "$length"}, "n": {"$sum": 1}}}]
            for doc in self._patterns.aggregate(pipeline, allowDiskUse=True):
                frequency, length = doc["_id"]["f"], doc["_id"]["l"]
                frequencies[frequency] = frequencies.get(frequency, 0) + doc["n"]
                lengths[length] = lengths.get(length, 0) + doc["n"]
            self._histograms_at = (marks, dict(sorted(frequencies.items())), dict(sorted(lengths.items())))
        return dict(self._histograms_at[1]), dict(self._histograms_at[2])

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
