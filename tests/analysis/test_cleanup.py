"""The hierarchy-safe cleanup: planned top-down, a dry run says exactly what the real one deletes."""
from __future__ import annotations

import gzip
import json
from itertools import islice

import pytest

from katoray import HierarchicalConceptLearner, train_hierarchical_single_pass
from katoray.analysis.cleanup import cleanup_levels
from katoray.errors import ConfigError
from katoray.store.memory import MemoryStore
from tests.store.test_congruence import delta


def test_a_rare_child_goes_only_when_every_parent_holding_it_goes():
    node0, node1 = MemoryStore("n0"), MemoryStore("n1")
    kept_child, lost_child, common = delta(["a"], ["b"]), delta(["c"], ["d"]), delta(["e"], ["f"], count=5)
    node0.apply([kept_child, lost_child, common])
    survivor = delta(["PTRN|" + kept_child.name], ["PTRN|" + common.name], count=2)
    doomed_parent = delta(["PTRN|" + lost_child.name], ["PTRN|" + kept_child.name])
    node1.apply([survivor, doomed_parent])
    dry = cleanup_levels([node0, node1], ["node0", "node1"], threshold=2, dry_run=True)
    assert (node0.count(), node1.count()) == (3, 2)    # a dry run deletes nothing
    assert [(p.deleted, p.kept_for_parents, p.doomed) for p in dry] == [
        (1, 1, (lost_child.name,)), (1, 0, (doomed_parent.name,))]
    assert "would delete 1 of 3 patterns with frequency < 2" in dry[0].describe(2, dry_run=True)
    assert cleanup_levels([node0, node1], ["node0", "node1"], threshold=2) == dry
    assert {r.name for r in node0.iter_patterns()} == {kept_child.name, common.name}
    assert [r.name for r in node1.iter_patterns()] == [survivor.name]


def test_dry_run_matches_the_real_cleanup_on_the_kjv(gpt2_dir, kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in islice(f, 1)]
    learner = HierarchicalConceptLearner(num_nodes=3, chunk_size=4, tokenizer_name=str(gpt2_dir), store="memory://")
    train_hierarchical_single_pass(texts, learner)
    nodes = ["node0", "node1", "node2"]
    before = [kb.count() for kb in learner.kbs]
    dry = cleanup_levels(learner.kbs, nodes, threshold=3, dry_run=True)
    assert [kb.count() for kb in learner.kbs] == before
    # (a parent learned n times learned each child n times too: trained levels keep none for parents)
    assert all(p.deleted > 0 for p in dry) and sum(p.kept_for_parents for p in dry) == 0
    real = cleanup_levels(learner.kbs, nodes, threshold=3)
    assert real == dry and [kb.count() for kb in learner.kbs] == [b - p.deleted for b, p in zip(before, dry)]
    for upper, lower in ((learner.kbs[1], learner.kbs[0]), (learner.kbs[2], learner.kbs[1])):
        children = {s[len("PTRN|"):] for r in upper.iter_patterns() for e in r.pattern_data for s in e}
        assert not children - {r.name for r in lower.iter_patterns()}   # every parent still unravels


def test_threshold_is_checked():
    with pytest.raises(ConfigError, match="threshold must be an int >= 1"):
        cleanup_levels([MemoryStore("n0")], ["node0"], threshold=0)
