"""``evaluate`` on a small fixed split (short KJV books, every 5th held out) equals a brute-force
computation: positions, every model's rankings, top-1 / top-5, the unigram and coverage."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import katoray
from katoray.errors import KatorayError
from katoray.evaluation.evaluate import CONTEXT_TOKENS, evaluate, sample_positions
from katoray.evaluation.infinigram import InfiniGram
from katoray.text.segment import END_OF_DOCUMENT
from tests.model import BruteHierarchy, brute_infinigram_top, trained_run

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def setting(ray_session, tmp_path_factory, kjv_books_path):
    from katoray.text.corpora import iter_local_documents

    runs_dir, run_id, train, held_out = trained_run(tmp_path_factory, kjv_books_path)
    hierarchy = katoray.open_run(run_id, runs_dir=runs_dir)
    result = evaluate(hierarchy, str(held_out), positions=40, seed=2, details=True)
    held = [d.tokens() for d in hierarchy.preparer.prepare(list(iter_local_documents(held_out)))]
    trained = [d.tokens() for d in hierarchy.preparer.prepare(list(iter_local_documents(train)))]
    yield hierarchy, result, held, trained, held_out
    hierarchy.close()


def test_positions_are_distinct_eligible_tokens(setting):
    _, result, held, _, _ = setting
    rows = result["details"]
    assert result["positions"] == len(rows) == 40
    assert len({(r["document"], r["offset"]) for r in rows}) == 40
    for r in rows:
        stream = held[r["document"]]
        assert r["offset"] >= CONTEXT_TOKENS and r["token"] == stream[r["offset"]] != END_OF_DOCUMENT


def test_rankings_and_figures_equal_brute_force(setting):
    hierarchy, result, held, trained, _ = setting
    brute = BruteHierarchy(hierarchy.kbs)
    ours, theirs = [], []
    for r in result["details"]:
        context = held[r["document"]][r["offset"] - CONTEXT_TOKENS:r["offset"]]
        ours.append(brute.top(context, 5))
        theirs.append(brute_infinigram_top(trained, context, 5))
    assert [r["katoray"] for r in result["details"]] == ours
    assert [r["infinigram"] for r in result["details"]] == theirs
    truth = [r["token"] for r in result["details"]]
    for model, ranked in (("katoray", ours), ("infinigram", theirs)):
        assert result[model]["top1"] == sum(t == r[0] for t, r in zip(truth, ranked)) / 40
        assert result[model]["top5"] == sum(t in r for t, r in zip(truth, ranked)) / 40
        assert result[model]["ms"] > 0
    counts = Counter(p for stream in trained for p in stream)
    first = {}
    for p in (p for stream in trained for p in stream):
        first.setdefault(p, len(first))
    most = min(counts, key=lambda p: (-counts[p], first[p]))
    assert result["unigram"]["top1"] == sum(t == most for t in truth) / 40


def test_coverage_equals_session_driven_learning(setting):
    """Each level's share of the held-out documents' pattern occurrences already known: what fresh
    KATO sessions learn from them (one observe per symbol), looked up in the run's stores."""
    from katoray import KatoSession
    from katoray.hierarchy.sessions import SessionHierarchy
    from katoray.store.memory import MemoryStore

    hierarchy, result, _, _, held_out = setting
    from katoray.text.corpora import iter_local_documents

    sessions = [KatoSession(f"node{i}", MemoryStore(f"node{i}")) for i in range(4)]
    driver = SessionHierarchy(sessions, hierarchy.config)
    for doc in hierarchy.preparer.prepare(list(iter_local_documents(held_out))):
        driver.learn_document(doc)
    for level, (session, kb) in enumerate(zip(sessions, hierarchy.kbs)):
        learned = {r.name: r.frequency for r in session.kb.iter_patterns()}
        known = sum(f for name, f in learned.items() if kb.get_pattern(name) is not None)
        assert result["levels"][level] == {"level": level, "coverage": known / sum(learned.values())}
    assert result["levels"][0]["coverage"] > 0


def test_infinigram_suffix_array_is_sorted_and_counts_exactly():
    streams = [["a", "b", "a", "b", "c"], ["b", "a", "b", "d"], ["x"]]
    gram = InfiniGram(streams)
    suffixes = [tuple(gram.tokens[i:].tolist()) for i in gram.suffixes]
    assert suffixes == sorted(suffixes)
    assert gram.next_counts(["z", "a", "b"]) == (2, {"a": 1, "c": 1, "d": 1})
    assert gram.next_counts(["q"]) == (0, {}) and gram.most_frequent == "b"     # b 4, a 3, c d x 1
    assert [p for p, _ in gram.top(["b"], 2)] == brute_infinigram_top(streams, ["b"], 2)
    # "x" is followed by nothing but a document end: the empty suffix, the most frequent pieces
    assert [p for p, _ in gram.top(["x"], 3)] == brute_infinigram_top(streams, ["x"], 3) == ["b", "a", "c"]


def test_bad_positions_and_held_out_text_are_clear_errors():
    with pytest.raises(KatorayError, match="positions must be"):
        sample_positions([["a"] * 10], 0, 0)
    with pytest.raises(KatorayError, match="7 tokens before it"):
        sample_positions([["a"] * 5], 10, 0)
    assert sample_positions([list("abcdefghij")], 100, 0) == sample_positions([list("abcdefghij")], 100, 0)
    assert sorted(sample_positions([list("abcdefghij")], 100, 0)) == [(0, i) for i in range(7, 10)]
    assert np.all(np.diff(sorted(i for _, i in sample_positions([list("abcdefghijklmnop")], 5, 3))) > 0)
