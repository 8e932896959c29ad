"""``patterns_collection`` answers the notebook's pymongo calls alike on every backend."""
from __future__ import annotations

import pytest

from katoray.store.collection import PatternsCollection
from tests.store.test_congruence import delta

FIELDS = ["name", "pattern_data", "length", "frequency", "emotives", "metadata"]


@pytest.fixture
def collection(kb):
    kb.apply([delta(["a"], ["b"], count=3, metadata={"book": ["t1"]}), delta(["b"], ["c"], ["d"]),
              delta(["x"], ["y"], count=3, emotives=[{"joy": 1.0}])], "b1")
    return PatternsCollection(kb)


def test_documents_in_kato_layout_sorted_by_name(collection, kb):
    docs = list(collection.find())
    assert [d["name"] for d in docs] == sorted(r.name for r in kb.iter_patterns())
    assert all(list(d) == FIELDS for d in docs) and list(collection) == docs
    ab = next(d for d in docs if d["pattern_data"] == [["a"], ["b"]])
    assert (ab["length"], ab["frequency"], ab["metadata"], ab["emotives"]) == (2, 3, {"book": ["t1"]}, [])


def test_find_one_by_name_with_or_without_prefix(collection):
    name = delta(["b"], ["c"], ["d"]).name
    bare = collection.find_one({"name": name}, {"pattern_data": 1, "_id": 0})
    assert bare == {"pattern_data": [["b"], ["c"], ["d"]]} == collection.find_one({"name": "PTRN|" + name},
                                                                               {"pattern_data": 1, "_id": 0})
    assert collection.find_one({"name": "PTRN|" + "0" * 40}) is None


def test_equality_filters_projections_and_counts(collection):
    assert collection.count_documents({}) == 3 and collection.count_documents({"frequency": 3}) == 2
    assert [d["pattern_data"] for d in collection.find({"frequency": 1}, ["pattern_data"])] == [[["b"], ["c"], ["d"]]]
    excluded = collection.find_one({"length": 2, "frequency": 3, "metadata": {"book": ["t1"]}}, {"emotives": 0, "_id": 0})
    assert list(excluded) == ["name", "pattern_data", "length", "frequency", "metadata"]
    assert collection.count_documents({"name": "PTRN|" + delta(["x"], ["y"]).name, "frequency": 3}) == 1
    assert collection.count_documents({"name": delta(["x"], ["y"]).name, "frequency": 2}) == 0


@pytest.mark.parametrize("filter, projection, error", [
    ({"frequency": {"$gt": 1}}, None, "equality filters only"), ({"$or": []}, None, "equality filters only"),
    ({"seq": 1}, None, "cannot filter on 'seq'"), ({}, {"name": 1, "frequency": 0}, "mixes fields"),
    ({}, {"symbols": 1}, "cannot project")])
def test_what_it_refuses_says_what_to_do(collection, filter, projection, error):
    with pytest.raises(ValueError, match=error):
        collection.find(filter, projection)
