"""Analyzers and prediction transfer on a trained learner (KJV, GPT-2)."""
from __future__ import annotations

import gzip
import json
from itertools import islice

import matplotlib
import pytest

from katoray import HierarchicalConceptLearner, KatoSession, train_hierarchical_single_pass
from katoray.compat.analyzers import (MongoDBAnalyzer, StandaloneMongoDBAnalyzer, analyze_all_nodes,
                                      sample_pattern_by_frequency)
from katoray.compat.transfer import (transfer_all_names, transfer_predictions, transfer_threshold, transfer_top_n,
                                     transfer_weighted)
from katoray.generation import decode_pattern

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def learner(gpt2_dir, kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in islice(f, 2)]
    lrn = HierarchicalConceptLearner(num_nodes=3, chunk_size=4, tokenizer_name=str(gpt2_dir), store="memory://")
    train_hierarchical_single_pass(texts, lrn)
    return lrn


def test_histogram_and_stats_agree_with_the_store(learner):
    analyzer = MongoDBAnalyzer(learner.nodes["node0"])
    records = list(learner.kbs[0].iter_patterns())
    histogram = analyzer.get_frequency_histogram()
    assert sum(histogram.values()) == len(records) and histogram[1] > 0 and max(histogram) > 10
    stats = analyzer.get_stats()
    assert stats["total_patterns"] == len(records)
    assert stats["total_frequency"] == sum(r.frequency for r in records)
    assert stats["average_frequency"] == stats["avg_frequency"] == pytest.approx(stats["total_frequency"] / len(records))
    assert sum(stats["frequency_ranges"].values()) == len(records)
    top = analyzer.get_patterns_by_frequency(min_freq=5)
    assert top and all(p["frequency"] >= 5 for p in top) and top[0]["frequency"] == stats["max_frequency"]
    fig = analyzer.visualize_frequency_distribution(max_freq=10)
    assert fig.axes[0].get_yscale() in ("log", "linear") and len(fig.axes[0].patches) <= 10
    shown = sum(n for f, n in analyzer.get_frequency_histogram().items() if f <= 10)
    assert fig.axes[0].get_title().startswith(f"{analyzer.kb.kb_id}: {len(records):,} patterns")   # all, not those shown
    assert shown == len(records) or f"({shown:,} with frequency <= 10 shown)" in fig.axes[0].get_title()


def test_analyze_all_nodes_and_sampling(learner):
    stats = analyze_all_nodes(learner)
    assert set(stats) == {"node0", "node1", "node2"} and stats["node0"]["total_patterns"] > stats["node2"]["total_patterns"]
    samples = sample_pattern_by_frequency(learner.nodes["node1"], num_samples=3, seed=1)
    assert len({s["name"] for s in samples}) == 3
    text = decode_pattern(learner.kbs, 1, samples[0]["name"], learner.token_processor.tokenizer)
    assert len(text.split()) >= 4  # a node1 pattern stands for 4 node0 chunks of 4 tokens
    assert samples == sample_pattern_by_frequency(learner.nodes["node1"], num_samples=3, seed=1)
    # The notebook's generation cell: node1's events hold PTRN| names, looked up in node0's collection.
    collection = MongoDBAnalyzer(learner.nodes["node0"]).patterns_collection
    child = collection.find_one({"name": samples[0]["pattern_data"][0][0]}, {"pattern_data": 1, "_id": 0})
    assert list(child) == ["pattern_data"] and len(child["pattern_data"]) == 4
    assert collection.count_documents({}) == learner.kbs[0].count() == len(list(collection.find({}, {"name": 1})))


def test_standalone_analyzer_on_mongodb(mongo_uri, node_id):
    s = KatoSession(node_id, mongo_uri)
    for _ in range(2):
        s.observe(strings=["a"]); s.observe(strings=["b"]); s.learn()
    analyzer = StandaloneMongoDBAnalyzer(s.kb_id, mongo_uri)
    assert analyzer.get_frequency_histogram() == {2: 1}
    assert analyzer.patterns_collection.count_documents({}) == 1
    (doc,) = analyzer.patterns_collection.find({}, {"_id": 0, "name": 1, "frequency": 1})
    assert doc["frequency"] == 2 and analyzer.patterns_collection.find_one({"name": "PTRN|" + doc["name"]})
    analyzer.close()
    s.clear_all()


def test_transfer_functions():
    preds = [{"name": "aa", "potential": 0.9, "confidence": 1.0, "future": [["x"], ["y"]]},
             {"name": "bb", "potential": 0.2, "confidence": 0.4, "future": [["z"]]}]
    assert transfer_all_names(preds) == ["PTRN|aa", "PTRN|bb"]
    assert transfer_threshold(preds, metric="potential", threshold=0.5) == ["PTRN|aa"]
    assert transfer_threshold(preds, threshold=5) == ["PTRN|aa"]  # none pass: the first (best)
    assert transfer_top_n(preds, "future", n=1, sort_by="potential") == ["x", "y"]
    assert transfer_weighted(preds, weight_by="confidence", max_repeats=5) == ["PTRN|aa"] * 5 + ["PTRN|bb"] * 2
    with pytest.raises(ValueError, match="field must be one of"):
        transfer_all_names(preds, "nope")


def test_transfer_predictions_between_nodes(learner):
    source = learner.nodes["node0"]
    source.clear_stm()
    for piece in learner.token_processor.tokenize_segment("In the beginning God")[:4]:
        source.observe(strings=[piece])
    target = KatoSession("target", "memory://")
    result = transfer_predictions(source, target, field="name", modeling_function=transfer_top_n, num_predictions=5)
    assert result["items_transferred"] == 3 and result["modeling_applied"]
    assert [e[0] for e in target.get_stm()] == transfer_top_n(source.get_predictions()[:5], "name")
    # A custom function (the notebook's my_custom_filter) returns the bare hashes predictions carry:
    # the target gets PTRN| names, as from the built-in functions.
    custom = KatoSession("custom", "memory://")
    transfer_predictions(source, custom, "name", lambda preds, field: [p[field] for p in preds[:3]])
    assert [e[0] for e in custom.get_stm()] == [e[0] for e in target.get_stm()]
    assert all(e[0].startswith("PTRN|") for e in custom.get_stm())
    source.clear_stm()


def test_cleanup_keeps_the_hierarchy_whole(gpt2_dir, kjv_books_path):
    from katoray.compat.analyzers import cleanup_all_nodes
    from katoray.store.base import PatternDelta
    from katoray.store.memory import MemoryStore

    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in islice(f, 1)]
    lrn = HierarchicalConceptLearner(num_nodes=2, chunk_size=4, tokenizer_name=str(gpt2_dir), store="memory://")
    train_hierarchical_single_pass(texts, lrn)
    before = [kb.count() for kb in lrn.kbs]
    deleted = cleanup_all_nodes(lrn, threshold=2)
    assert deleted["node1"] == before[1] - lrn.kbs[1].count() > 0
    assert 0 < deleted["node0"] == before[0] - lrn.kbs[0].count()
    for record in lrn.kbs[1].iter_patterns():  # every surviving parent still unravels
        assert len(unravel_all(lrn, record)) == 16
    assert all(r.frequency >= 2 or _referenced(lrn, r.name) for r in lrn.kbs[0].iter_patterns())
    # the knowledge base is as if only the surviving patterns had ever been learned
    rebuilt = MemoryStore("rebuilt")
    rebuilt.apply([PatternDelta(r.name, r.pattern_data, r.frequency) for r in lrn.kbs[0].iter_patterns()])
    symbols = {s for r in rebuilt.iter_patterns() for e in r.pattern_data for s in e} | {"Ġthe", "never-seen"}
    assert lrn.kbs[0].totals() == rebuilt.totals()
    assert lrn.kbs[0].symbol_pmf(symbols) == rebuilt.symbol_pmf(symbols)
    assert lrn.kbs[0].symbol_frequencies(symbols) == rebuilt.symbol_frequencies(symbols)
    assert sorted(lrn.kbs[0].patterns_with_any(["Ġthe"])) == sorted(rebuilt.patterns_with_any(["Ġthe"]))


def unravel_all(lrn, record):
    from katoray.generation import unravel

    return unravel(lrn.kbs, 1, record.name)


def _referenced(lrn, name):
    return bool(lrn.kbs[1].symbol_pmf(["PTRN|" + name]))
