"""Segmentation on real books (KJV) and hand-made articles; sentence splitting per tokenizer."""
from __future__ import annotations

import gzip
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katoray.errors import ConfigError
from katoray.text import (
    CorpusSegmenter,
    Document,
    chunk_pieces,
    load_tokenizer,
    segment,
    split_paragraphs,
    split_sentences,
    tokenize_segmented,
)

# Chapters per book of the Protestant canon, in KJV order (an independent count: 1,189 in all).
KJV_CHAPTERS = [50, 40, 27, 36, 34, 24, 21, 4, 31, 24, 22, 25, 29, 36, 10, 13, 10, 42, 150, 31,
                12, 8, 66, 52, 5, 48, 12, 14, 3, 9, 1, 4, 7, 3, 3, 3, 2, 14, 4, 28, 16, 24, 21,
                28, 16, 16, 13, 6, 6, 4, 4, 5, 3, 6, 4, 3, 1, 13, 5, 5, 3, 5, 1, 1, 1, 22]


@pytest.fixture(scope="module")
def books(kjv_books_path):
    with gzip.open(kjv_books_path, "rt", encoding="utf-8") as rows:
        return [json.loads(line) for line in rows]


# -- books -------------------------------------------------------------------------------------------
def test_kjv_chapters_per_book(books):
    counts = [len(segment(Document(b["text"], b["abbrev"]), "book").sections) for b in books]
    assert len(books) == 66
    assert counts == KJV_CHAPTERS
    assert counts[0] == 50 and sum(counts) == 1189


def test_kjv_book_keeps_every_verse(books):
    genesis = books[0]["text"]
    seg = segment(genesis, "book")
    assert [s.title for s in seg.sections] == [f"CHAPTER {i}" for i in range(1, 51)]
    assert all(len(s.paragraphs) == 1 for s in seg.sections)       # a chapter's verses
    rebuilt = "\n\n".join(f"{s.title}\n\n{s.paragraphs[0]}" for s in seg.sections)
    assert rebuilt == genesis
    assert (seg.dropped_empty, seg.dropped_short) == (0, 0)


@pytest.mark.parametrize("method", ["simple", "book", "article"])
def test_segments_keep_the_text_between_paragraphs(books, method):
    for book in books[:8]:
        seg = segment(Document(book["text"], book["abbrev"]), method)
        assert seg.text() == book["text"]          # leads, paragraphs and tail: nothing lost
    seg = segment("  CHAPTER 1\n\n  In the beginning.  \n\nCHAPTER 2\n\nAnd.\n", "book")
    assert [s.leads for s in seg.sections] == [["  CHAPTER 1\n\n  "], ["  \n\nCHAPTER 2\n\n"]]
    assert seg.tail == "\n"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" \n\t\r#1.aZ", max_size=60), st.sampled_from(["simple", "book", "article"]))
def test_segments_concatenate_to_the_text(text, method):
    seg = segment(text, method)
    assert seg.text() == (text if seg.num_paragraphs else "")
    assert list(seg.paragraphs()) == [p for p in seg.paragraphs() if p == p.strip() and p]


def test_dropped_paragraphs_leave_the_text():
    seg = segment("a\n\nbb\n\nlong enough paragraph\n\nc", min_chars=3)
    assert seg.text() == "\n\n\n\nlong enough paragraph\n\n" and seg.dropped_short == 3


@pytest.mark.parametrize("heading", [
    "CHAPTER 12", "Chapter XII", "Chapter Twelve", "chapter twenty-one", "CHAPTER Twenty One",
    "  Chapter 3: The Voyage", "CHAPTER I. Loomings.", "Chapter Nineteen", "Chapter vii",
])
def test_chapter_headings(heading):
    seg = segment(f"Preface text.\n\n{heading}\nFirst line.\n\nSecond paragraph.", "book")
    assert [s.title for s in seg.sections] == ["", heading.strip()]
    assert seg.sections[1].paragraphs == ["First line.", "Second paragraph."]


@pytest.mark.parametrize("line", [
    "Chapter 3 of this book explains it.", "The chapter 3 heading", "Chapters 1 and 2", "CHAPTER",
])
def test_chapter_mentions_are_not_headings(line):
    seg = segment(f"Intro.\n\n{line}\n\nEnd.", "book")
    assert [s.title for s in seg.sections] == [""]
    assert seg.sections[0].paragraphs == ["Intro.", line, "End."]


# -- articles ----------------------------------------------------------------------------------------
ARTICLE = """An opening paragraph
before any heading.

# Introduction
Intro text.

## 1.1 not numbered, markdown
Body.

1. Background
Background text.

2.3 Results

Results one.

Results two.

Section 4: Discussion
Discussion.

####### seven hashes is not a heading
1. Buy milk.
"""


def test_article_sections():
    seg = segment(ARTICLE, "article")
    assert [s.title for s in seg.sections] == [
        "", "# Introduction", "## 1.1 not numbered, markdown", "1. Background", "2.3 Results",
        "Section 4: Discussion"]
    assert seg.sections[0].paragraphs == ["An opening paragraph\nbefore any heading."]
    assert seg.sections[4].paragraphs == ["Results one.", "Results two."]
    assert seg.sections[5].paragraphs == [
        "Discussion.", "####### seven hashes is not a heading\n1. Buy milk."]


def test_simple_is_one_section():
    seg = segment(ARTICLE, "simple")
    assert len(seg.sections) == 1 and seg.sections[0].title == ""
    assert "# Introduction\nIntro text." in seg.sections[0].paragraphs


# -- paragraphs --------------------------------------------------------------------------------------
def test_paragraphs_split_on_blank_lines():
    text = "  one\nstill one  \n \t \ntwo\r\n\r\n\n\nthree\n"
    assert split_paragraphs(text).paragraphs == ["one\nstill one", "two", "three"]


def test_min_chars_drops_and_counts():
    text = "a\n\nbb\n\nlong enough paragraph"
    assert split_paragraphs(text).paragraphs == ["a", "bb", "long enough paragraph"]
    split = split_paragraphs(text, min_chars=3)
    assert split.paragraphs == ["long enough paragraph"] and split.dropped_short == 2
    seg = segment(text, min_chars=3)
    assert seg.dropped_short == 2 and seg.num_paragraphs == 1
    with pytest.raises(ConfigError, match="min_chars"):
        segment(text, min_chars=0)


def test_empty_and_whitespace_documents():
    assert segment("").num_paragraphs == 0 and segment("").dropped_empty == 0
    blank = segment(" \n\n\t\n")
    assert blank.num_paragraphs == 0 and blank.dropped_empty == 1


def test_unknown_method_and_bad_text():
    with pytest.raises(ConfigError, match="simple"):
        segment("text", "chapters")
    with pytest.raises(TypeError, match="doc-1"):
        Document(b"bytes", "doc-1")


def test_no_truncation_of_a_huge_paragraph(books, gpt2):
    paragraph = " ".join(s.paragraphs[0] for s in segment(books[0]["text"], "book").sections) * 3
    seg = segment(paragraph)
    assert seg.sections[0].paragraphs == [paragraph]
    pieces = tokenize_segmented(seg, gpt2)[0][0]
    assert len(pieces) > 100_000 and gpt2.decode(pieces) == paragraph


def test_tokenize_segmented_matches_per_paragraph(books, gpt2):
    seg = segment(books[7]["text"], "book")         # Ruth: 4 chapters
    nested = tokenize_segmented(seg, gpt2)
    assert [len(s) for s in nested] == [len(s.paragraphs) for s in seg.sections]
    assert nested[2][0] == gpt2.tokenize(seg.sections[2].paragraphs[0])


# -- sentences and chunks ----------------------------------------------------------------------------
SENTENCES = 'Hello world. "Yes," he said. Mr. Smith went.\nNext? “Go.” Then (see 3.5.) Done!) ok'


def test_sentences_gpt2(gpt2):
    sentences = split_sentences(gpt2.tokenize(SENTENCES), gpt2)
    assert [gpt2.decode(s) for s in sentences] == [
        "Hello world.", ' "Yes," he said.', " Mr.", " Smith went.", "\nNext?", " “Go.”",
        " Then (see 3.5.)", " Done!)", " ok"]


def test_sentences_default(default):
    sentences = split_sentences(default.tokenize(SENTENCES), default)
    assert [default.decode(s) for s in sentences] == [
        "Hello world.", ' "Yes," he said.', " Mr.", " Smith went.", "\nNext?", " “Go.”",
        " Then (see 3.5.)", " Done!)", " ok"]


def test_sentences_wordpiece(tmp_path, books):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tk.train_from_iterator([books[0]["text"], '"quoted"'], trainers.WordPieceTrainer(
        vocab_size=800, special_tokens=["[UNK]"]))
    tk.save(str(tmp_path / "tokenizer.json"))
    wordpiece = load_tokenizer(str(tmp_path))
    text = 'And God said, "Let there be light." And it was so. God saw'
    sentences = split_sentences(wordpiece.tokenize(text), wordpiece)
    # A bare quote after a mark is read as closing (WordPiece cannot tell closing from opening).
    assert [s[0] for s in sentences] == ["and", "and", "god"]
    assert sentences[0][-2:] == [".", '"'] and sentences[1][-1] == "."


@pytest.mark.parametrize("which", ["gpt2", "default"])
def test_sentences_concatenate_to_the_pieces(books, gpt2, default, which):
    tokenizer = gpt2 if which == "gpt2" else default
    pieces = tokenizer.tokenize(books[39]["text"])           # Matthew
    sentences = split_sentences(pieces, tokenizer)
    assert [p for s in sentences for p in s] == pieces
    assert len(sentences) > 500
    ends = re.compile(r"[.!?][\"')\]}”’»]*$")
    assert all(ends.search(tokenizer.decode(s)) for s in sentences[:-1])


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('ab .!?"”)\n ')), max_size=80))
def test_sentences_never_drop_pieces(gpt2, default, text):
    for tokenizer in (gpt2, default):
        pieces = tokenizer.tokenize(text)
        assert [p for s in split_sentences(pieces, tokenizer) for p in s] == pieces


def test_chunk_pieces_keeps_the_tail():
    pieces = [str(i) for i in range(19)]
    chunks = chunk_pieces(pieces, 8)
    assert [len(c) for c in chunks] == [8, 8, 3]
    assert [p for c in chunks for p in c] == pieces
    assert chunk_pieces([], 8) == []


# -- the notebook's CorpusSegmenter ------------------------------------------------------------------
def test_segment_book_dict(books, gpt2):
    segmenter = CorpusSegmenter(gpt2, mode="chunking", chunk_size=8)
    book = segmenter.segment_book(books[0]["text"], {"title": "Genesis", "abbrev": "Ge"})
    assert book["title"] == "Genesis" and book["author"] == "Unknown"
    assert book["metadata"] == {"title": "Genesis", "abbrev": "Ge"}
    assert len(book["chapters"]) == 50 and book["chapters"][0]["title"] == "CHAPTER 1"
    paragraph = book["chapters"][0]["paragraphs"][0]
    assert paragraph["text"].startswith("In the beginning God")
    assert paragraph["tokens"] == gpt2.tokenize(paragraph["text"])
    assert all(len(c) == 8 for c in paragraph["chunks"][:-1])
    assert [p for c in paragraph["chunks"] for p in c] == paragraph["tokens"]


def test_segment_simple_and_article_dicts(default):
    segmenter = CorpusSegmenter(mode="sentences", chunk_size=4)     # kato-lm's name for structure
    assert segmenter.mode == "structure" and segmenter.tokenizer.name == "katoray-bytes"
    simple = segmenter.segment_simple_text("One. Two!\n\nThree?")
    assert "author" not in simple and simple["title"] == "Untitled Text"
    assert simple["chapters"][0]["title"] == "Main Content"
    assert [len(p["sentences"]) for p in simple["chapters"][0]["paragraphs"]] == [2, 1]
    article = segmenter.segment_article(ARTICLE, {"title": "Paper", "author": "A. Writer"})
    assert article["author"] == "A. Writer" and len(article["chapters"]) == 6
    assert article["stats"] == {"dropped_empty": 0, "dropped_short": 0}


@pytest.mark.parametrize("kwargs, match", [
    ({"chunk_size": 1}, "chunk_size"), ({"mode": "paragraphs"}, "mode"),
])
def test_segmenter_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CorpusSegmenter(**kwargs)
