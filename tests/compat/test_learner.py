"""The notebook's learner on real text: GPT-2 tokens of KJV books, both modes, on real stores."""
from __future__ import annotations

import gzip
import json
from itertools import islice

import pytest

from katoray import HierarchicalConceptLearner, HierarchicalNode, train_hierarchical_single_pass
from katoray.errors import ConfigError
from katoray.generation import decode_pattern, unravel
from katoray.hierarchy.prepare import DocumentPreparer
from katoray.hierarchy.sessions import SessionHierarchy
from katoray.text.segment import END_OF_DOCUMENT, Document, segment


def kjv_docs(path, n):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in islice(f, n)]
    return [Document(r["text"], doc_id=r["abbrev"], source="kjv", title=r["title"]) for r in rows]


def make_learner(gpt2_dir, store, mode="chunking", sizes=(8, 8, 8, 8)):
    nodes = [HierarchicalNode(f"node{i}", chunk_size=c, mode=mode) for i, c in enumerate(sizes)]
    return HierarchicalConceptLearner(nodes=nodes, tokenizer_name=str(gpt2_dir), store=store, node0_batch_size=2)


def state(learner):
    return [(list(kb.iter_patterns()), kb.totals()) for kb in learner.kbs]


@pytest.mark.parametrize("mode,method", [("chunking", "simple"), ("structure", "book")])
def test_map_equals_session_driven_on_kjv_gpt2(gpt2_dir, kjv_books_path, tmp_path, mode, method):
    docs = kjv_docs(kjv_books_path, 2)  # Genesis, Exodus
    mapped = make_learner(gpt2_dir, f"sqlite:///{tmp_path}/mapped", mode)
    stats = train_hierarchical_single_pass(docs, mapped, segment_method=method)
    driven = make_learner(gpt2_dir, "memory://", mode)
    config = driven.hierarchy_config()
    driver = SessionHierarchy([driven.nodes[f"node{i}"] for i in range(4)], config)
    for doc in DocumentPreparer(driven.token_processor.tokenizer, method, mode).prepare(docs):
        driver.learn_document(doc)
    assert state(mapped) == state(driven)
    assert [stats[f"node{i}_observations"] for i in range(4)] == driver.learned
    assert [stats[f"node{i}_unlearned"] for i in range(4)] == driver.unlearned


def test_chunk_counts_are_exact(gpt2_dir, kjv_books_path):
    docs = kjv_docs(kjv_books_path, 3)
    learner = make_learner(gpt2_dir, "memory://", sizes=(8, 8, 8, 8))
    stats = train_hierarchical_single_pass(docs, learner)
    tok = learner.token_processor.tokenizer
    expected_learned, expected_unlearned = [0] * 4, [0] * 4
    for doc in docs:
        # node0 reads the document's paragraphs, the text between them and an end-of-document symbol
        n = sum(len(tok.tokenize(part)) for part in segment(doc.text).parts()) + 1
        for level in range(4):
            full, rest = divmod(n, 8)
            learned = full + (rest >= 2)
            expected_learned[level] += learned
            expected_unlearned[level] += rest if rest < 2 else 0
            n = learned
    assert [stats[f"node{i}_observations"] for i in range(4)] == expected_learned
    assert [stats[f"node{i}_unlearned"] for i in range(4)] == expected_unlearned
    assert stats["tokens_processed"] > 100_000 and stats["num_documents"] == 3
    assert stats["node0_patterns"] == learner.kbs[0].count() < stats["node0_observations"]  # some reuse
    assert 0 < stats["node0_reuse_rate"] < 1


def _paragraphs(text):
    return [p.strip() for p in text.strip().split("\n\n") if p.strip()]


def test_structure_mode_learns_chapters_and_sentences(gpt2_dir, kjv_books_path):
    (genesis,) = kjv_docs(kjv_books_path, 1)
    learner = make_learner(gpt2_dir, "memory://", mode="structure")
    stats = train_hierarchical_single_pass([genesis], learner, segment_method="book")
    # KJV chapters are one paragraph each: node1 learns each of Genesis's 50 chapters as a sequence
    # of sentence names; a one-paragraph chapter cannot be learned at node2 (1 symbol), and is counted.
    assert stats["node1_observations"] == 50
    assert stats["node2_observations"] == 0 and stats["node2_unlearned"] == 50
    assert stats["node0_observations"] > 1000
    chapter1 = next(r for r in learner.kbs[1].iter_patterns() if decode_pattern(
        learner.kbs, 1, r.name, learner.token_processor.tokenizer).startswith("CHAPTER 1\n\nIn the beginning"))
    text = decode_pattern(learner.kbs, 1, chapter1.name, learner.token_processor.tokenizer)
    # the whole of chapter 1, sentence by sentence, after its heading (the text before the paragraph)
    assert text == "CHAPTER 1\n\n" + _paragraphs(genesis.text)[1]


def test_chunking_unravels_back_to_the_text(gpt2_dir, kjv_books_path, tmp_path):
    learner = make_learner(gpt2_dir, f"sqlite:///{tmp_path}/kb", sizes=(4, 4))
    text = "In the beginning God created the heaven and the earth. And the earth was without form."
    stats = train_hierarchical_single_pass([text], learner)
    tok = learner.token_processor.tokenizer
    pieces = tok.tokenize(text) + [END_OF_DOCUMENT]
    assert len(pieces) == 19  # node0: 4 chunks of 4 + a 3-symbol remainder (the end included) = 5 names
    assert stats["node1_observations"] == 1 and stats["node1_unlearned"] == 1  # 4 names + 1 left over
    (top,) = learner.kbs[1].iter_patterns()
    assert unravel(learner.kbs, 1, top.name) == pieces[:16]
    assert tok.decode(unravel(learner.kbs, 1, "PTRN|" + top.name)) == tok.decode(pieces[:16])
    tail = next(r for r in learner.kbs[0].iter_patterns() if r.length == 3)
    assert unravel(learner.kbs, 0, tail.name) == ["Ġform", ".", END_OF_DOCUMENT]
    assert decode_pattern(learner.kbs, 0, tail.name, tok) == " form."   # the end is a symbol, not text


def test_learner_nodes_are_working_sessions(gpt2_dir, kjv_books_path):
    learner = make_learner(gpt2_dir, "memory://")
    train_hierarchical_single_pass(kjv_docs(kjv_books_path, 1), learner)
    node0 = learner.nodes["node0"]
    for piece in learner.token_processor.tokenize_segment("In the beginning God created")[:4]:
        node0.observe(strings=[piece])
    assert node0.get_stm() == [["In"], ["Ġthe"], ["Ġbeginning"], ["ĠGod"]]
    predictions = node0.get_predictions()
    assert predictions and predictions[0]["similarity"] > 0.5 and "ĠGod" in predictions[0]["matches"]
    assert learner.num_nodes == 4 and learner.node_configs[0].chunk_size == 8 and learner.node0_batch_size == 2


@pytest.mark.parametrize("kwargs,message", [
    ({"nodes": [HierarchicalNode("node0"), HierarchicalNode("node2")]}, "node1"),
    ({"nodes": []}, "at least one node"),
    ({"num_nodes": 0}, "at least one node"),
    ({"nodes": [HierarchicalNode("node0", mode="chunking"), HierarchicalNode("node1", mode="structure")]}, "same mode"),
])
def test_bad_learner_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        HierarchicalConceptLearner(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"chunk_size": 1}, "chunk_size must be an integer >= 2"),
    ({"mode": "sentences"}, "structure"),
    ({"mode": "paragraphs"}, "mode must be one of"),
    ({"max_pattern_length": 5}, "max_pattern_length must be 0"),
    ({"recall_threshold": 2}, "recall_threshold"),
])
def test_bad_node_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        HierarchicalNode("node0", **kwargs)


def test_num_levels_validated(gpt2_dir):
    learner = make_learner(gpt2_dir, "memory://")
    for bad in (0, 5):
        with pytest.raises(ConfigError, match="num_levels must be between 1 and the number of nodes"):
            train_hierarchical_single_pass(["some text here"], learner, num_levels=bad)
    stats = train_hierarchical_single_pass(["one two three four five six seven eight nine"], learner, num_levels=1)
    assert "node1_patterns" not in stats and stats["node0_observations"] >= 1


def test_unknown_tokenizer_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="no-such-tokenizer-xyz"):
        HierarchicalConceptLearner(num_nodes=2, tokenizer_name="no-such-tokenizer-xyz")


def test_structure_mode_refuses_more_than_four_levels():
    nodes = [HierarchicalNode(f"node{i}", mode="structure") for i in range(5)]
    with pytest.raises(ConfigError, match="structure mode has 4 levels"):
        HierarchicalConceptLearner(nodes=nodes)


def test_a_misspelled_argument_is_refused():
    # Silently ignored, it would train another hierarchy than the one asked for.
    with pytest.raises(TypeError, match="chunk_sizes"):
        HierarchicalConceptLearner(num_nodes=3, chunk_sizes=[4, 4, 4])


@pytest.mark.parametrize("bad", [".hidden", "a\x00b", "r" * 300])
def test_the_notebook_takes_the_one_run_id_rule(bad, tmp_path):
    """The notebook's functions refuse what the command line refuses, before anything exists."""
    from katoray import create_training_run_nodes, train_from_streaming_dataset_parallel

    with pytest.raises(ConfigError, match="run id"):
        create_training_run_nodes(run_id=bad)
    with pytest.raises(ConfigError, match="run id"):
        HierarchicalConceptLearner(num_nodes=2, run_id=bad, store="memory://")
    with pytest.raises(ConfigError, match="run id"):
        train_from_streaming_dataset_parallel(dataset_key="pydoc", run_id=bad, checkpoint_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
