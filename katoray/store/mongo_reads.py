"""The reads of a MongoDB knowledge base (``MongoStore``'s, kept apart to keep ``mongo`` small).

Each is one query on the KB's collections (layout in :mod:`katoray.store.mongo`); ``MongoStore``
wraps them so that a lost server is katoray's error naming the host.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from katoray.store.base import KBTotals, PatternRecord
from katoray.store.mongo_batch import record_of

_PATTERN_FIELDS = {"_id": 0, "name": 1, "pattern_data": 1, "length": 1, "frequency": 1,
                   "emotives": 1, "metadata": 1}
TOTALS = {"class": "totals"}


class MongoReads:
    """Reads over ``self._patterns``, ``self._symbols`` and ``self._meta`` (a ``MongoStore``'s)."""

    def get_pattern(self, name: str) -> PatternRecord | None:
        doc = self._patterns.find_one({"name": name}, _PATTERN_FIELDS)
        return None if doc is None else record_of(doc)

    def get_patterns(self, names: Iterable[str]) -> dict[str, PatternRecord]:
        wanted = list(dict.fromkeys(names))
        found = {doc["name"]: record_of(doc)
                 for doc in self._patterns.find({"name": {"$in": wanted}}, _PATTERN_FIELDS)}
        return {n: found[n] for n in wanted if n in found}

    def patterns_with_any(self, symbols: Iterable[str]) -> set[str]:
        cursor = self._patterns.find({"symbols": {"$in": list(set(symbols))}}, {"_id": 0, "name": 1})
        return {doc["name"] for doc in cursor}

    def patterns_starting_with(self, symbol: str) -> list[str]:
        cursor = self._patterns.find({"first_symbol": symbol}, {"_id": 0, "name": 1}).sort("seq", 1)
        return [doc["name"] for doc in cursor]

    def symbol_pmf(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_field(symbols, "pmf")

    def symbol_frequencies(self, symbols: Iterable[str]) -> dict[str, int]:
        return self._symbol_field(symbols, "frequency")

    def stored_symbols(self) -> set[str]:
        return {doc["name"] for doc in self._symbols.find({"pmf": {"$gt": 0}}, {"_id": 0, "name": 1})}

    def _symbol_field(self, symbols: Iterable[str], key: str) -> dict[str, int]:
        wanted = list(dict.fromkeys(symbols))
        found = {doc["name"]: doc[key]
                 for doc in self._symbols.find({"name": {"$in": wanted}}, {"_id": 0, "name": 1, key: 1})}
        return {s: found[s] for s in wanted if s in found}

    def symbol_affinity(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        query: dict[str, Any] = {"affinity": {"$exists": True}}
        if symbols is not None:
            query["name"] = {"$in": list(dict.fromkeys(symbols))}
        return {doc["name"]: doc["affinity"] for doc in self._symbols.find(query, {"_id": 0, "name": 1, "affinity": 1})}

    def totals(self) -> KBTotals:
        doc = self._meta.find_one(TOTALS) or {}
        return KBTotals(doc.get("total_unique_patterns", 0), doc.get("total_pattern_frequencies", 0),
                        doc.get("total_symbols_in_patterns_frequencies", 0), doc.get("num_symbols", 0))

    def count(self) -> int:
        """Distinct patterns, from the totals document (O(1); a full count is slow on big KBs)."""
        return self.totals().total_unique_patterns

    def iter_patterns(self) -> Iterator[PatternRecord]:
        for doc in self._patterns.find({}, _PATTERN_FIELDS).sort("name", 1):
            yield record_of(doc)
