"""The next-token decoder and the indexes it reads, on real text (GPT-2 tokens of KJV books)
learned into memory and SQLite stores, against brute force over every pattern and against KATO's
own predictions. No Ray."""
from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from itertools import islice

import pytest

from katoray import HierarchicalConceptLearner, HierarchicalNode, train_hierarchical_single_pass
from katoray.engine.config import SessionConfig
from katoray.engine.predict import predict
from katoray.generation import unravel
from katoray.generation.unravel import decode_pieces
from katoray.hierarchy.mapping import chunk_levels
from katoray.model.decoder import DISCOUNT, NextTokenDecoder
from katoray.model.index import HierarchyIndex
from katoray.text.segment import END_OF_DOCUMENT, Document
from tests.model import DISCOUNT as BRUTE_DISCOUNT
from tests.model import BruteHierarchy

SIZES = (4, 4, 4)


def books(path, first, count):
    with gzip.open(path, "rt", encoding="utf-8") as rows:
        return [Document(b["text"], doc_id=b["abbrev"], source="kjv", title=b["title"])
                for b in map(json.loads, islice(rows, first, first + count))]


@pytest.fixture(scope="module")
def trained(gpt2_dir, kjv_books_path, tmp_path_factory):
    """Ruth and 1 Samuel's first half (books 7, 8), 3 levels of chunk 4, in memory and in SQLite."""
    docs = books(kjv_books_path, 7, 2)
    docs[1] = Document(docs[1].text[:60_000], docs[1].doc_id, docs[1].source, docs[1].title)
    learners = {}
    for store in ("memory://", f"sqlite:///{tmp_path_factory.mktemp('kb')}"):
        nodes = [HierarchicalNode(f"node{i}", chunk_size=c) for i, c in enumerate(SIZES)]
        learners[store.split(":")[0]] = learner = HierarchicalConceptLearner(
            nodes=nodes, tokenizer_name=str(gpt2_dir), store=store)
        train_hierarchical_single_pass(docs, learner)
    from katoray.hierarchy.prepare import DocumentPreparer

    streams = [d.tokens() for d in DocumentPreparer(learner.token_processor.tokenizer).prepare(docs)]
    return learners, streams, docs


def contexts(streams, count, seed=0, length=7):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        stream = rng.choice(streams)
        end = rng.randrange(length, len(stream))
        out.append(stream[end - length:end])
    return out


def test_brute_force_states_the_same_discount():
    assert DISCOUNT == BRUTE_DISCOUNT


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_counts_and_ranking_equal_brute_force(trained, levels):
    learners, streams, _ = trained
    kbs = learners["memory"].kbs
    decoder = NextTokenDecoder(HierarchyIndex(kbs), levels)
    brute = BruteHierarchy(kbs, levels)
    held_out = [["ĠAnd", "Ġthe", "Ġkingdom", "Ġof", "Ġheaven", "Ġis", "Ġlike"], ["Ġzzz", "Ġunknown"], ["Ġthe"]]
    for context in contexts(streams, 40) + held_out:
        ids = decoder.token_ids(context)
        got = [{decoder.node0.symbols[t]: c for t, c in enumerate(n.tolist()) if c} for n in decoder.counts(ids)]
        assert got == [dict(n) for n in brute.counts(context)], context
        assert [piece for piece, _ in decoder.top(ids, 5)] == brute.top(context, 5), context


def test_the_levels_above_supply_what_follows_a_pattern_end(trained):
    """A context that ends a node0 pattern: node0's futures are empty there; the whole hierarchy
    counts the chunk that followed it in training (the future of level 1's predictions)."""
    learners, streams, _ = trained
    index = HierarchyIndex(learners["memory"].kbs)
    alone, whole = NextTokenDecoder(index, 1), NextTokenDecoder(index, None)
    stream = streams[0]
    for end in range(8, 400, 4):                  # every node0 chunk end of Ruth's first 400 tokens
        ids = whole.token_ids(stream[end - 4:end])
        if end % 64 == 0:                         # a top-level pattern ends: no level knows what follows
            assert len(whole.counts(ids)) < 4
            continue
        assert len(whole.counts(ids)) == 4, end    # the whole chunk is a state with a future above
        assert whole.counts(ids)[3][whole.node0.symbol_ids[stream[end]]] >= 1
        assert len(alone.counts(ids)) < 4          # node0 alone: that state predicts nothing


def test_exact_predictions_are_katos(trained):
    """Inside node0 patterns, the counts are KATO's own predictions for the state: those whose
    matches are the whole state in one block, read at the first symbol of their future."""
    learners, streams, _ = trained
    kb = learners["memory"].kbs[0]
    decoder = NextTokenDecoder(HierarchyIndex([kb]), 1)
    config = SessionConfig(recall_threshold=0.01, max_predictions=10_000)
    for context in contexts(streams, 15, seed=3, length=3):
        for length, n in enumerate(decoder.counts(decoder.token_ids(context)), 1):
            state = context[-length:]
            kato = Counter()
            for p in predict(kb, [[s] for s in state], config).predictions:
                present = [s for e in p["present"] for s in e]
                if p["matches"] == state and present == state and p["fragmentation"] == 0 and p["future"]:
                    kato[p["future"][0][0]] += p["frequency"]
            ours = {decoder.node0.symbols[t]: c for t, c in enumerate(n.tolist()) if c}
            if length > 1:   # one symbol: KATO's single-symbol path predicts patterns starting with it only
                assert kato == ours, state


def test_memory_and_sqlite_give_the_same_answers(trained):
    learners, streams, _ = trained
    mem, lite = (NextTokenDecoder(HierarchyIndex(learners[k].kbs)) for k in ("memory", "sqlite"))
    for context in contexts(streams, 20, seed=5):
        assert mem.top(mem.token_ids(context), 5) == lite.top(lite.token_ids(context), 5)
    assert mem.node0.names == lite.node0.names and mem.node0.symbols == lite.node0.symbols


def test_a_book_unravels_back_to_its_text(trained):
    """Ruth's top-level patterns, unravelled in order, give back Ruth's text: separators and
    all. What KATO cannot learn (a level's 1-symbol remainder) is missing only at the end."""
    learners, streams, docs = trained
    kbs, tok = learners["sqlite"].kbs, learners["sqlite"].token_processor.tokenizer
    for stream, doc in zip(streams, docs):
        top_names = list(chunk_levels(stream, SIZES, complete=True))[-1][2]
        pieces = [p for name in top_names for p in unravel(kbs, len(SIZES) - 1, name)]
        lost = stream[len(pieces):]
        assert stream[:len(pieces)] == pieces and len(lost) < 4 ** len(SIZES)
        assert decode_pieces(pieces, tok) + decode_pieces(lost, tok) == doc.text
    top_names = list(chunk_levels(streams[0], SIZES, complete=True))[-1][2]
    pieces = [p for name in top_names for p in unravel(kbs, len(SIZES) - 1, name)]
    lost = streams[0][len(pieces):]
    # Ruth: 3,264 tokens and the end = 4 x 816 + 1: node0 cannot learn the end alone (1 symbol); node1
    # learns 4 x 204 names, node2 4 x 51. KATO's limit costs Ruth nothing but its end.
    assert len(streams[0]) == 3265 and lost == [END_OF_DOCUMENT]
    assert HierarchyIndex(kbs).pieces(2, HierarchyIndex(kbs).levels[2].name_ids[top_names[0]]) == pieces[:64]
