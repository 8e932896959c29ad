"""``patterns_collection``: a read-only, pymongo-shaped view of any knowledge base's patterns.

kato-lm's notebook reads patterns straight from MongoDB (``analyzer.patterns_collection.find(...)``,
``.find_one({'name': ...}, {'pattern_data': 1, '_id': 0})``). This view answers that code on every
backend with documents in KATO's MongoDB-era layout::

    {"name": <bare 40-hex sha1>, "pattern_data": [[str]], "length": int, "frequency": int,
     "emotives": [{key: value}], "metadata": {key: [str]}}

What it takes, and no more: ``find(filter, projection)`` (a lazy iterator, sorted by name),
``find_one``, ``count_documents(filter)`` and iteration. A filter is ``{}`` or equality on those
fields; a ``name`` may be given with its ``PTRN|`` prefix (as a higher level's ``pattern_data``
holds it) or bare, and is found by name rather than by a scan. A projection is pymongo's: a dict
of fields to include (``1``) or to leave out (``0``), or a list of fields; ``_id`` (which these
documents do not have) may be named either way. Query operators (``$gt``, ``$in``, ...) are
refused with a message naming what to use instead.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from katoray.engine.naming import strip_prefix
from katoray.store.base import KnowledgeBase, PatternRecord

FIELDS = ("name", "pattern_data", "length", "frequency", "emotives", "metadata")


class PatternsCollection:
    """The patterns of ``kb`` as a read-only collection of KATO-layout documents."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    def __repr__(self) -> str:
        return f"PatternsCollection({self.kb.kb_id!r})"

    def find(self, filter: Mapping[str, Any] | None = None,
             projection: Mapping[str, Any] | Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Documents matching ``filter`` (equality only), sorted by name, with ``projection``'s fields."""
        wanted = _check_filter(filter)
        fields = _fields(projection)
        return (_document(record, fields) for record in self._matching(wanted))

    def find_one(self, filter: Mapping[str, Any] | None = None,
                 projection: Mapping[str, Any] | Sequence[str] | None = None) -> dict[str, Any] | None:
        """The first document ``find`` would give, or None."""
        return next(self.find(filter, projection), None)

    def count_documents(self, filter: Mapping[str, Any]) -> int:
        """How many documents match ``filter`` (``{}``: the KB's pattern count, no scan)."""
        wanted = _check_filter(filter)
        if not wanted:
            return self.kb.count()
        return sum(1 for _ in self._matching(wanted))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.find()

    def _matching(self, wanted: dict[str, Any]) -> Iterator[PatternRecord]:
        if "name" in wanted:   # by name, never a scan
            name = wanted["name"]
            record = self.kb.get_pattern(strip_prefix(name)) if isinstance(name, str) else None
            candidates: Iterator[PatternRecord] = iter([record] if record is not None else [])
        else:
            candidates = self.kb.iter_patterns()
        rest = {key: value for key, value in wanted.items() if key != "name"}
        return (record for record in candidates if all(getattr(record, k) == v for k, v in rest.items()))


def _check_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise TypeError(f"patterns_collection filter must be a dict such as {{'name': 'PTRN|...'}}, got {filter!r}")
    for key, value in filter.items():
        if key.startswith("$") or (isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)):
            raise ValueError(f"patterns_collection takes equality filters only, got {{{key!r}: {value!r}}}; for "
                             "frequency ranges use analyzer.get_patterns_by_frequency(min_freq, max_freq), for "
                             "other queries iterate find() and filter in Python")
        if key not in FIELDS:
            raise ValueError(f"patterns_collection documents have the fields {', '.join(FIELDS)}; "
                             f"cannot filter on {key!r}")
    return dict(filter)


def _fields(projection: Mapping[str, Any] | Sequence[str] | None) -> tuple[str, ...]:
    """The fields a pymongo projection keeps, in document order."""
    if projection is None:
        return FIELDS
    if not isinstance(projection, Mapping):
        projection = {field: 1 for field in projection}
    chosen = {key: bool(value) for key, value in projection.items() if key != "_id"}
    unknown = set(chosen) - set(FIELDS)
    if unknown:
        raise ValueError(f"patterns_collection documents have the fields {', '.join(FIELDS)}; "
                         f"cannot project {sorted(unknown)}")
    if len(set(chosen.values())) > 1:
        raise ValueError(f"projection {dict(projection)!r} mixes fields to include and to leave out; "
                         "MongoDB refuses that too: use one kind")
    if not chosen or not next(iter(chosen.values())):   # only exclusions (or only _id)
        return tuple(field for field in FIELDS if field not in chosen)
    return tuple(field for field in FIELDS if field in chosen)


def _document(record: PatternRecord, fields: tuple[str, ...]) -> dict[str, Any]:
    return {field: getattr(record, field) for field in fields}
