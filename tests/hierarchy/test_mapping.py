"""The pure map equals driving KATO sessions node by node (both modes), and it is order-free."""
from __future__ import annotations

import gzip
import json
import random

import pytest

from katoray import KatoSession, pattern_name
from katoray.config import HierarchyConfig
from katoray.hierarchy.mapping import HierarchyDeltas, TokenizedDocument, map_documents
from katoray.hierarchy.sessions import SessionHierarchy
from katoray.store.memory import MemoryStore


def kb_state(kb):
    return [r for r in kb.iter_patterns()], kb.totals()


def apply_map(deltas: HierarchyDeltas, config: HierarchyConfig):
    kbs = [MemoryStore(f"node{i}") for i in range(config.num_levels)]
    for kb, level in zip(kbs, deltas.levels):
        kb.apply(level.to_deltas(), metadata_cap=config.metadata_cap)
    return kbs


def drive_sessions(docs, config: HierarchyConfig):
    sessions = [KatoSession(f"node{i}", MemoryStore(f"node{i}"), metadata_cap=config.metadata_cap)
                for i in range(config.num_levels)]
    driver = SessionHierarchy(sessions, config)
    for doc in docs:
        driver.learn_document(doc)
    return [s.kb for s in sessions], driver


def kjv_documents(kjv_books_path, n_books=3, words_per_par=None):
    """Real text: KJV books, chapters as sections, verses-sentences split on '. ' (whitespace tokens)."""
    docs = []
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as f:
        for i, line in zip(range(n_books), f):
            book = json.loads(line)
            sections = []
            for chapter in book["text"].split("CHAPTER ")[1:]:
                body = chapter.split("\n\n", 1)[1]
                sentences = [s.split() for s in body.split(". ") if s.strip()]
                sections.append([sentences[j:j + 7] for j in range(0, len(sentences), 7)])
            docs.append(TokenizedDocument(book["abbrev"], sections, {"title": book["title"], "source": "kjv"}))
    return docs


@pytest.mark.parametrize("mode,sizes", [("chunking", (8, 8, 8, 8)), ("chunking", (3, 2, 5)), ("structure", (2, 2, 2, 2)),
                                        ("structure", (2, 2))])
def test_map_equals_sessions_on_kjv(kjv_books_path, mode, sizes):
    config = HierarchyConfig(mode, sizes, frozenset(range(1, len(sizes))), metadata_cap=2)
    docs = kjv_documents(kjv_books_path)
    deltas = map_documents(docs, config)
    mapped = apply_map(deltas, config)
    driven, driver = drive_sessions(docs, config)
    for level in range(config.num_levels):
        assert kb_state(mapped[level]) == kb_state(driven[level]), f"node{level} differs"
        assert deltas.levels[level].learned == driver.learned[level]
        assert deltas.levels[level].unlearned == driver.unlearned[level]
    assert mapped[0].count() > 100 and deltas.levels[0].learned > mapped[0].count()  # some reuse


def test_chunking_counts_exact():
    config = HierarchyConfig("chunking", (3, 2))
    doc = TokenizedDocument("d", [[[list("abcdefghij")]]])  # 10 tokens
    deltas = map_documents([doc], config)
    # node0: abc def ghi | j (1 token unlearned); node1: (abc,def) | (ghi) unlearned
    assert deltas.levels[0].learned == 3 and deltas.levels[0].unlearned == 1
    assert deltas.levels[1].learned == 1 and deltas.levels[1].unlearned == 1
    node1 = deltas.levels[1].to_deltas()[0]
    assert node1.events == [[pattern_name([["a"], ["b"], ["c"]])], [pattern_name([["d"], ["e"], ["f"]])]]


def test_structure_levels_follow_text():
    config = HierarchyConfig("structure", (2, 2, 2, 2))
    sections = [[[["In", "the"], ["x"]], [["A", "b"], ["C", "d"]], [["y", "z"], ["w", "v"]]],
                [[["e", "f"], ["g", "h"]], [["i", "j"], ["k", "l"]]]]
    deltas = map_documents([TokenizedDocument("d", sections)], config)
    assert [lv.learned for lv in deltas.levels] == [9, 4, 2, 1]
    # ["x"] is one token (unlearned); its paragraph then has one sentence (unlearned at node1).
    assert [lv.unlearned for lv in deltas.levels] == [1, 1, 0, 0]
    lonely = map_documents([TokenizedDocument("d", [sections[0][:1], sections[1][:1]])], config)
    assert [lv.learned for lv in lonely.levels] == [3, 1, 0, 0]
    assert [lv.unlearned for lv in lonely.levels] == [1, 1, 1, 0]  # one-paragraph section: node2 unlearned


def test_map_is_order_and_batch_independent(kjv_books_path):
    config = HierarchyConfig("chunking", (4, 3, 2), frozenset({1, 2}), metadata_cap=2)
    docs = kjv_documents(kjv_books_path, n_books=4)
    whole = apply_map(map_documents(docs, config), config)
    shuffled = docs[:]
    random.Random(7).shuffle(shuffled)
    parts = [map_documents(shuffled[i:i + 1], config) for i in range(len(shuffled))]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    for a, b in zip(whole, apply_map(merged, config)):
        assert kb_state(a) == kb_state(b)


def test_metadata_cap_keeps_smallest_values():
    config = HierarchyConfig("chunking", (2, 2), frozenset({0}), metadata_cap=2)
    docs = [TokenizedDocument(f"d{i}", [[[["same", "pair"]]]], {"doc_id": f"d{i}"}) for i in (3, 1, 2)]
    kb = apply_map(map_documents(docs, config), config)[0]
    (record,) = kb.iter_patterns()
    assert record.frequency == 3 and record.metadata == {"doc_id": ["d1", "d2"]}


@pytest.mark.parametrize("symbols", [
    ["a", "b"], ["it's", "x"], ['say "hi"', "it's"], ["back\\slash", "y"], ["new\nline", "tab\t"],
    ["é", "ü", "Ġthe"], ["", "z"], ["\x00", "\u2028"], ["'", '"'], ["PTRN|" + "a" * 40, "PTRN|" + "b" * 40],
])
def test_fast_names_equal_kato_names(symbols):
    config = HierarchyConfig("chunking", (len(symbols),))
    deltas = map_documents([TokenizedDocument("d", [[[symbols]]])], config)
    (name,) = deltas.levels[0].counts
    assert "PTRN|" + name == pattern_name([[s] for s in symbols])


def test_symbol_repr_cache_is_safe_for_concurrent_maps(monkeypatch):
    """A lone pool actor maps two batches at once in threads: a thread whose symbols fill the
    cache past its cap must not break another thread still reading it."""
    import sys
    import threading

    from katoray.hierarchy import mapping

    monkeypatch.setattr(mapping, "_REPRS_MAX", 8)                 # replaced every few calls
    monkeypatch.setattr(mapping, "_REPRS", {})
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                                   # switch threads as often as possible
    try:
        failures: list[BaseException] = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(300):
                    symbols = [f"t{rng.randrange(50)}'\\" for _ in range(20)]
                    assert mapping.symbol_reprs(symbols) == [repr(s) for s in symbols]
            except BaseException as err:   # noqa: BLE001 (reported below)
                failures.append(err)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures[0]


@pytest.mark.parametrize("mode,sizes", [("chunking", (8, 8, 8, 8)), ("chunking", (3, 2, 5)), ("structure", (2, 2, 2, 2))])
def test_level_symbols_are_what_each_level_learns_from(kjv_books_path, mode, sizes):
    """A whole document's level k+1 observes the names level k learns, in the document's order."""
    from collections import Counter

    from katoray.hierarchy.mapping import PREFIX, level_symbols

    config = HierarchyConfig(mode, sizes, frozenset())
    for doc in kjv_documents(kjv_books_path, n_books=2):
        levels = level_symbols(doc, config, complete=True)
        deltas = map_documents([doc], config)
        assert levels[0] == doc.tokens()
        for level in range(config.num_levels - 1):
            learned = Counter({PREFIX + name: n for name, n in deltas.levels[level].counts.items()})
            assert Counter(levels[level + 1]) == learned, f"node{level + 1}"


def test_level_symbols_of_a_context_keep_only_finished_units():
    from katoray.hierarchy.mapping import chunk_levels, level_symbols

    config = HierarchyConfig("chunking", (2, 2))
    doc = TokenizedDocument("c", [[[list("abcde")]]])
    finished = level_symbols(doc, config)
    assert finished[0] == list("abcde") and len(finished[1]) == 2      # [ab] [cd]; e goes on
    assert len(level_symbols(doc, config, complete=True)[1]) == 2    # e alone cannot be learned either
    assert [len(names) for _, _, names in chunk_levels(list("abcdefg"), (2, 2), complete=True)] == [3, 1]  # g, then 1 name left
    structure = HierarchyConfig("structure", (2, 2, 2))
    doc = TokenizedDocument("s", [[[list("ab"), list("cd")], [list("ef"), list("gh")]]])
    names = level_symbols(doc, structure)
    assert (len(names[1]), len(names[2])) == (3, 1)      # the last sentence and paragraph go on
    assert names[1][0] == "PTRN|" + pattern_name([["a"], ["b"]])[5:]
